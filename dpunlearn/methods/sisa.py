"""SISA training (Bourtoule et al., IEEE S&P 2021) as a method of the common interface.

Sharded, Isolated, Sliced, Aggregated: the training rows are split into ``S``
disjoint **shards**, one constituent model per shard; each shard is split
into ``R`` **slices** and trained incrementally (slice 1, checkpoint; slices
1–2, checkpoint; ...; slices 1..R, checkpoint); predictions **aggregate** the
constituents by majority vote (or averaged probabilities). Removing a row of
shard ``k`` and slice ``r`` deletes it, reloads shard ``k``'s checkpoint taken
before slice ``r`` and retrains slices ``r..R`` of shard ``k`` only: the
unlearned model is *exactly* a model trained without the row (ε = 0; the
ledger currency ``"exact"``).

Layout. ``train`` draws one random permutation of all ``n`` rows from its
key: the row at position ``p`` goes to shard ``p mod S`` at place
``j = p div S`` of that shard, and to slice ``j div P`` with
``P = ceil(ceil(n/S)/R)`` places per slice. Shards and slices therefore have
one fixed capacity (rows masked out at training, or removed since, are
padding with weight zero), so the ``S`` constituents train together under
one ``jax.vmap`` over the shard axis, and one request size compiles once. The
layout depends on the key and ``n`` only, never on the mask.

Training of one shard. Slice step ``r`` (``r = 0..R-1``) restarts the
optimiser (a fresh ``optimizer.init``) from the previous checkpoint and runs
``slice_epochs`` epochs over the rows of slices ``0..r``; an epoch shuffles the
``(r+1)·P`` places with a key folded from the shard's key, ``r`` and the epoch,
and takes minibatches of ``batch_size`` places in that order; a minibatch's
loss is the mean over its real rows (padding and removed rows weigh zero; a
minibatch with none still takes an optimiser step with a zero gradient, a
no-op for SGD, while Adam's momentum moves). ``slice_epochs`` defaults to
``round(2·epochs/(R+1))`` (at least 1), the schedule of the authors' code, so
that the work of all slice steps together is about ``epochs`` epochs over
the shard. Everything is a deterministic function of the shard's key, its
rows' places and the mask.

Exactness. The state keeps every shard's key, so ``unlearn`` reruns, for each
affected shard only (one ``lax.cond`` per request row, dynamic indexing into
the shard axis), the very computation ``train`` ran with the removed rows'
weights set to zero. The unlearned state is bit-identical to
``train(same key, data, mask without the request)`` (tested), so ``unlearn``
ignores its key: SISA needs no fresh randomness to unlearn. Bit-identity
needs the per-shard arithmetic to be the same whether it runs for one shard
or vmapped over ``S``. Two things make it so on CPU: the training step has no
data-dependent select (which changed XLA's fusion of the optimiser update
between the two), and the method's own compiled programs turn off XLA:CPU's
YNNPACK offload, whose reductions sum in a shape-dependent order (compile
option ``xla_cpu_experimental_ynn_fusion_type=""``; dropped, with the check
left to the tests, if an XLA does not know it). Called inside a caller's
``jit`` the caller's compilation decides, and identity is then to rounding
only; other backends (GPU) are not checked.

Cost of a request: the affected shards' slice steps from their first affected
slice on, ``Σ_{r ≥ r₀} (r+1)·P·slice_epochs`` example-gradients per shard;
for one row drawn uniformly, on average ``(2R+1)/(3R)`` of a shard retrain
(Bourtoule et al.), i.e. a speed-up of about ``3RS/(2R+1)`` over retraining
one model on everything.

Checkpoints: ``state.checkpoints`` is a pytree whose leaves have leading axes
``[S, R]`` (the constituent parameters after each slice step); the whole
state is a pytree of arrays (save it with :func:`dpunlearn.checkpoints.save`,
restore it with :func:`dpunlearn.checkpoints.restore`).

Data: ``Data(x [n, ...], y [n])`` for any :class:`dpunlearn.models.Model`
(per-example ``loss``/``apply``/``predict``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dpunlearn import _sharding, _validate
from dpunlearn.methods.base import (
    Data,
    Method,
    check_data,
    check_mask,
    check_request,
    request_valid,
)
from dpunlearn.models import Model
from dpunlearn.types import Array, PRNGKey, PyTree

__all__ = [
    "SisaCharge",
    "SisaInfo",
    "SisaParams",
    "SisaState",
    "expected_speedup",
    "sisa",
    "slice_epochs",
]


class SisaParams(NamedTuple):
    """What a SISA model releases: the constituents and which ones vote.

    Attributes:
      constituents: The parameter pytree of the model, every leaf with a
        leading shard axis ``[S, ...]``.
      active: ``bool[S]``: the shard still holds at least one row (a shard
        whose rows were all removed is left out of the aggregation).
    """

    constituents: PyTree
    active: Array


class SisaState(NamedTuple):
    """A SISA ensemble: parameters, per-slice checkpoints, layout, mask, keys.

    Attributes:
      params: :class:`SisaParams` (the released ensemble; the constituents
        equal ``checkpoints[:, R-1]``).
      checkpoints: The model's parameter pytree with leaves ``[S, R, ...]``:
        shard ``s`` after slice step ``r``.
      layout: ``int32[S, R, P]``: the row at each place (``-1``: padding).
      shard: ``int32[n]``: the shard of every row.
      slice: ``int32[n]``: the slice of every row within its shard.
      mask: ``bool[n]``: rows trained on, minus those removed.
      keys: The per-shard training keys ``[S]`` (secret; ``unlearn`` reuses
        them, which is what makes it exact).
    """

    params: SisaParams
    checkpoints: PyTree
    layout: Array
    shard: Array
    slice: Array
    mask: Array
    keys: Array


class SisaCharge(NamedTuple):
    """What a training or a request cost, in the ``"exact"`` currency.

    Attributes:
      num_removed: Rows removed (0 for a training).
      num_shards_retrained: Constituents (re)trained, at least in part.
      num_slice_steps: Slice steps run (``S·R`` for a training; for a request
        ``Σ (R − r₀)`` over the affected shards).
      valid: The request was valid (else the model is unchanged and the
        ledger must not record it: the currency refuses the charge).
    """

    num_removed: Array
    num_shards_retrained: Array
    num_slice_steps: Array
    valid: Array


class SisaInfo(NamedTuple):
    """Which shards a request retrained and from where.

    Attributes:
      first_slice: ``int32[S]``: the first slice retrained per shard (``R``
        for an untouched shard).
      valid: The request was valid.
    """

    first_slice: Array
    valid: Array


def slice_epochs(epochs: int, num_slices: int) -> int:
    """Epochs per slice step: ``max(1, round(2·epochs/(R+1)))``.

    With ``R`` slice steps over ``1, 2, ..., R`` slices the total work is
    ``slice_epochs·(R+1)/2`` shard-epochs, about ``epochs`` (the schedule of
    Bourtoule et al.'s code).
    """
    _validate.positive_int(epochs=epochs, num_slices=num_slices)
    return max(1, int(round(2.0 * epochs / (num_slices + 1))))


def expected_speedup(num_shards: int, num_slices: int) -> float:
    """``3RS/(2R+1)``: expected speed-up of one uniformly drawn single-row
    request over retraining one model on all rows (Bourtoule et al. 2021),
    counting example-gradients; ignores fixed overheads."""
    _validate.positive_int(num_shards=num_shards, num_slices=num_slices)
    return 3.0 * num_slices * num_shards / (2.0 * num_slices + 1.0)


def _layout(key: PRNGKey, n: int, num_shards: int, num_slices: int):
    """``(layout [S, R, P], shard [n], slice [n])`` from one permutation."""
    S, R = num_shards, num_slices
    cap = -(-n // S)
    P = -(-cap // R)
    perm = jax.random.permutation(key, n).astype(jnp.int32)
    padded = jnp.full((S * cap,), -1, jnp.int32).at[:n].set(perm)
    by_shard = padded.reshape(cap, S).T  # [S, cap]: place j of shard s = p // S
    by_shard = jnp.pad(by_shard, ((0, 0), (0, R * P - cap)), constant_values=-1)
    layout = by_shard.reshape(S, R, P)
    pos = jnp.arange(n, dtype=jnp.int32)
    shard = jnp.zeros((n,), jnp.int32).at[perm].set(pos % S)
    slc = jnp.zeros((n,), jnp.int32).at[perm].set((pos // S) // P)
    return layout, shard, slc


# XLA:CPU hands large reductions to YNNPACK, whose summation order depends on
# the shape: a reduction under ``vmap`` over S shards then differs in the last
# bit from the same reduction for one shard. SISA's exactness (unlearning a
# shard alone reproduces the vmapped training bit for bit) needs
# batch-invariant numerics, so its own compiled programs turn that offload off.
_CPU_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": ""}


def _batch_invariant_jit(fn):
    """``jax.jit(fn)``, compiled on CPU without the YNNPACK offload.

    Inside a caller's trace (``jit``/``vmap`` around the method) ``fn`` is
    traced inline and the caller's compilation decides the numerics.
    """
    plain = jax.jit(fn)
    pinned = [None]

    def call(*args):
        if not _validate.is_concrete(args):
            return plain(*args)
        if pinned[0] is None:
            pinned[0] = plain
            if jax.default_backend() == "cpu":
                candidate = jax.jit(fn, compiler_options=_CPU_OPTIONS)
                try:
                    out = candidate(*args)
                except jax.errors.JaxRuntimeError as e:  # option unknown to this XLA
                    if "compile option" not in str(e):
                        raise
                else:
                    pinned[0] = candidate
                    return out
        return pinned[0](*args)

    return call


def _where_tree(pred, a, b):
    return jax.tree.map(lambda u, v: jnp.where(pred, u, v), a, b)


def _index(tree, i):
    """Entry ``i`` of every leaf's leading axis (on an axis split over an
    explicit mesh axis, e.g. the constituents over ``model``, the entry is
    all-reduced to every device)."""

    def one(a):
        if _sharding.explicit(a):
            return _sharding.index(a, i)
        return jax.lax.dynamic_index_in_dim(a, i, 0, keepdims=False)

    return jax.tree.map(one, tree)


def _set_index(tree, i, value):
    """Every leaf with entry ``i`` of its leading axis replaced (sharding kept)."""

    def one(a, v):
        v = v.astype(a.dtype)
        if _sharding.explicit(a):
            return _sharding.scatter(a, jnp.reshape(i, (1,)), v[None])
        return jax.lax.dynamic_update_index_in_dim(a, v, i, 0)

    return jax.tree.map(one, tree, value)


def sisa(
    *,
    model: Model,
    num_shards: int,
    num_slices: int = 1,
    epochs: int = 10,
    batch_size: int = 32,
    optimizer: optax.GradientTransformation | None = None,
    learning_rate: float = 1e-3,
    aggregation: Literal["vote", "mean"] = "vote",
    init: Callable[[PRNGKey], PyTree] | None = None,
    slice_epochs_override: int | None = None,
    vectorize: bool = True,
    model_axis: str | None = "model",
) -> Method:
    """SISA over constituents of one :class:`~dpunlearn.models.Model`.

    Args:
      model: The constituent model (per-example ``loss``, ``apply``,
        ``predict``); every shard starts from ``model.params`` unless ``init``.
      num_shards: ``S >= 1`` (at most the number of training rows).
      num_slices: ``R >= 1`` slices per shard (at most the rows per shard).
      epochs: ``e``: the shard-epochs the whole slice schedule amounts to
        (see :func:`slice_epochs`).
      batch_size: Minibatch size (places; padding places weigh zero).
      optimizer: An optax transformation, restarted at every slice step;
        default ``optax.adam(learning_rate)``.
      learning_rate: Used only for the default optimiser.
      aggregation: ``"vote"`` (label majority over the active shards; a tie
        goes to the smallest label) or ``"mean"`` (averaged softmax, or
        sigmoid for a scalar output, then the most likely label).
      init: Optional ``init(key) -> params``, drawn per shard from its key
        (default: ``model.params`` for every shard).
      slice_epochs_override: Epochs per slice step instead of
        :func:`slice_epochs` (``epochs``, ``R``).
      vectorize: ``True`` (default): the shards train together under one
        ``jax.vmap``. ``False``: a Python loop over shards (for benchmarks;
        same result bit for bit).
      model_axis: Mesh axis for the constituents: when the context mesh
        (``jax.set_mesh``) has an axis of this name whose size divides ``S``,
        the vmapped shards are split over it (``S/size`` constituents per
        device; rows may be sharded over another axis at the same time).
        ``None``: never placed.

    Returns:
      A :class:`~dpunlearn.methods.base.Method` in the ``"exact"`` currency.
    """
    _validate.positive_int(
        num_shards=num_shards, num_slices=num_slices, epochs=epochs, batch_size=batch_size
    )
    if aggregation not in ("vote", "mean"):
        raise ValueError(f"Expected aggregation in ('vote', 'mean'), got {aggregation!r}.")
    if not isinstance(model, Model):
        raise ValueError(f"Expected model to be a dpunlearn.models.Model, got {type(model).__name__}.")
    if slice_epochs_override is not None:
        _validate.positive_int(slice_epochs_override=slice_epochs_override)
    S, R, B = int(num_shards), int(num_slices), int(batch_size)
    E = int(slice_epochs_override or slice_epochs(epochs, R))
    opt = optimizer if optimizer is not None else optax.adam(learning_rate)

    def init_params(key_s):
        if init is None:
            return model.params
        return init(key_s)

    def batch_loss(params, xb, yb, w):
        losses = jax.vmap(model.loss, in_axes=(None, 0, 0))(params, xb, yb)
        w = w.astype(losses.dtype)
        return jnp.sum(w * losses) / jnp.maximum(jnp.sum(w), 1.0)

    def fit_shard(start, ckpts, layout_s, key_s, r_start, mask, x, y):
        """Slice steps ``r_start..R-1`` of one shard from ``start``; writes the
        checkpoints. The same function runs in ``train`` (vmapped) and
        ``unlearn`` (one shard)."""
        P = layout_s.shape[-1]
        fill = jnp.full((B,), -1, jnp.int32)
        rows = _sharding.concatenate([layout_s.reshape(-1), fill])
        slot_slice = jnp.arange(R * P, dtype=jnp.int32) // P
        present = (rows >= 0) & _sharding.gather_rows(mask, jnp.clip(rows, 0))
        safe_rows = jnp.clip(rows, 0)
        sentinel = jnp.full((B,), R * P, jnp.int32)

        def slice_step(carry):
            r, params, ckpts = carry
            avail = slot_slice <= r
            avail_rows = _sharding.concatenate([avail, jnp.zeros((B,), bool)])
            weight = (present & avail_rows).astype(jnp.float32)
            num_batches = ((r + 1) * P + B - 1) // B
            k_slice = jax.random.fold_in(key_s, r)

            def epoch(e, state):
                k = jax.random.fold_in(k_slice, e)
                u = jnp.where(avail, jax.random.uniform(k, (R * P,)), 2.0)
                perm = jnp.argsort(u).astype(jnp.int32)
                order = _sharding.concatenate([perm, sentinel])

                def step(c):
                    b, params, opt_state = c
                    slots = jax.lax.dynamic_slice_in_dim(order, b * B, B)
                    w = weight[slots]
                    idx = safe_rows[slots]
                    xb = jax.tree.map(lambda a: _sharding.gather_rows(a, idx), x)
                    yb = _sharding.gather_rows(y, idx)
                    g = jax.grad(batch_loss)(params, xb, yb, w)
                    upd, opt_state = opt.update(g, opt_state, params)
                    return b + 1, optax.apply_updates(params, upd), opt_state

                _, params, opt_state = _sharding.while_loop(
                    lambda c: c[0] < num_batches, step, (jnp.int32(0), *state)
                )
                return params, opt_state

            params, _ = _sharding.fori_loop(0, E, epoch, (params, opt.init(params)))
            ckpts = _set_index(ckpts, r, params)
            return r + 1, params, ckpts

        _, params, ckpts = _sharding.while_loop(
            lambda c: c[0] < R, slice_step, (jnp.asarray(r_start, jnp.int32), start, ckpts)
        )
        return params, ckpts

    def empty_checkpoints(params):
        return jax.tree.map(lambda p: jnp.zeros((R,) + jnp.shape(p), jnp.result_type(p)), params)

    @_batch_invariant_jit
    def train_all(key, mask, x, y):
        n = mask.shape[0]
        k_layout, k_shards = jax.random.split(key)
        layout, shard, slc = _layout(k_layout, n, S, R)
        keys = jax.random.split(k_shards, S)

        def one(key_s, layout_s):
            start = init_params(key_s)
            return fit_shard(start, empty_checkpoints(start), layout_s, key_s, 0, mask, x, y)

        placed_keys, placed_layout = _sharding.over_axis((keys, layout), model_axis)
        final, ckpts = jax.vmap(one)(placed_keys, placed_layout)
        return final, ckpts, layout, shard, slc, keys

    @_batch_invariant_jit
    def layout_only(key, mask):
        n = mask.shape[0]
        k_layout, k_shards = jax.random.split(key)
        layout, shard, slc = _layout(k_layout, n, S, R)
        return layout, shard, slc, jax.random.split(k_shards, S)

    @_batch_invariant_jit
    def train_one(key_s, layout_s, mask, x, y):
        start = init_params(key_s)
        return fit_shard(start, empty_checkpoints(start), layout_s, key_s, 0, mask, x, y)

    def active_shards(shard, mask):
        zero = jnp.zeros((S,), jnp.int32)
        counts = _sharding.scatter(zero, shard, mask.astype(jnp.int32), op="add")
        return counts > 0

    def check_layout(n, mask):
        if S > n:
            raise ValueError(
                f"Expected num_shards={S} <= the {n} rows of the data (a shard needs a row)."
            )
        cap = -(-n // S)
        if R > cap:
            raise ValueError(
                f"Expected num_slices={R} <= the {cap} rows per shard ({n} rows over "
                f"{S} shards); use fewer slices or shards."
            )
        if _validate.is_concrete(mask):
            kept = int(np.asarray(mask).sum())
            if S > kept:
                raise ValueError(
                    f"Expected num_shards={S} <= the {kept} rows the mask keeps."
                )

    def train(key: PRNGKey, data: Data, mask=None):
        _validate.prng_key("key", key)
        data = check_data(data)
        n = data.num_rows
        mask = check_mask(mask, n, data=data)
        check_layout(n, mask)
        x, y = data.x, jnp.asarray(data.y)
        if vectorize:
            final, ckpts, layout, shard, slc, keys = train_all(key, mask, x, y)
        else:
            layout, shard, slc, keys = layout_only(key, mask)
            outs = [train_one(keys[s], layout[s], mask, x, y) for s in range(S)]
            final = jax.tree.map(lambda *a: jnp.stack(a), *[o[0] for o in outs])
            ckpts = jax.tree.map(lambda *a: jnp.stack(a), *[o[1] for o in outs])
        active = active_shards(shard, mask)
        if _validate.is_concrete(active) and not bool(np.all(np.asarray(active))):
            empty = int(np.argmin(np.asarray(active)))
            raise ValueError(
                f"Shard {empty} holds no row of the mask; use fewer shards "
                f"(num_shards={S}, {int(np.asarray(mask).sum())} rows kept)."
            )
        state = SisaState(
            params=SisaParams(final, active),
            checkpoints=ckpts,
            layout=layout,
            shard=shard,
            slice=slc,
            mask=mask,
            keys=keys,
        )
        charge = SisaCharge(
            num_removed=jnp.zeros((), jnp.int32),
            num_shards_retrained=jnp.sum(active).astype(jnp.int32),
            num_slice_steps=jnp.asarray(S * R, jnp.int32),
            valid=jnp.asarray(True),
        )
        return state, charge

    @_batch_invariant_jit
    def unlearn_core(state: SisaState, request, x, y):
        valid, safe = request_valid(request, state.mask)
        mask = jnp.where(valid, _sharding.scatter(state.mask, safe, False), state.mask)
        rs = _sharding.gather_rows(state.shard, safe)
        rl = _sharding.gather_rows(state.slice, safe)
        first = jnp.full((S,), R, jnp.int32).at[rs].min(rl)
        first = jnp.where(valid, first, R)
        m = request.shape[0]

        def body(j, carry):
            s = rs[j]
            r0 = first[s]
            todo = (r0 < R) & (jnp.argmax(rs == s) == j)  # first occurrence only

            def retrain(args):
                final, ckpts, shards, steps = args
                key_s = state.keys[s]
                ck = _index(ckpts, s)
                prev = _index(ck, jnp.maximum(r0 - 1, 0))
                start = _where_tree(r0 > 0, prev, init_params(key_s))
                new_final, new_ck = fit_shard(
                    start, ck, state.layout[s], key_s, r0, mask, x, y
                )
                return (
                    _set_index(final, s, new_final),
                    _set_index(ckpts, s, new_ck),
                    shards + 1,
                    steps + (R - r0),
                )

            return jax.lax.cond(todo, retrain, lambda a: a, carry)

        final, ckpts, shards, steps = _sharding.fori_loop(
            0,
            m,
            body,
            (state.params.constituents, state.checkpoints, jnp.int32(0), jnp.int32(0)),
        )
        new = state._replace(
            params=SisaParams(final, active_shards(state.shard, mask)),
            checkpoints=ckpts,
            mask=mask,
        )
        charge = SisaCharge(
            num_removed=jnp.where(valid, m, 0).astype(jnp.int32),
            num_shards_retrained=shards,
            num_slice_steps=steps,
            valid=valid,
        )
        return new, charge, SisaInfo(first, valid)

    def unlearn(key: PRNGKey, state: SisaState, request, data: Data):
        del key  # exact: the state's per-shard keys replay the training
        data = check_data(data, num_rows=state.mask.shape[0])
        request = check_request(request, state.mask)
        request = jnp.asarray(request).astype(jnp.int32)
        return unlearn_core(state, request, data.x, jnp.asarray(data.y))

    def predict(params: SisaParams, inputs):
        active = params.active
        if aggregation == "mean":
            out = jax.vmap(lambda p: jax.vmap(lambda xi: model.apply(p, xi))(inputs))(
                params.constituents
            )
            w = active.astype(out.dtype)
            if out.ndim == 2 or out.shape[-1] == 1:  # scalar output: logistic, {±1}
                prob = jax.nn.sigmoid(out.reshape(out.shape[0], -1))
                mean = jnp.einsum("s,sn->n", w, prob) / jnp.sum(w)
                return jnp.where(mean >= 0.5, 1, -1)
            prob = jax.nn.softmax(out, axis=-1)
            mean = jnp.einsum("s,snk->nk", w, prob) / jnp.sum(w)
            return jnp.argmax(mean, axis=-1)
        labels = jax.vmap(lambda p: jax.vmap(lambda xi: model.predict(p, xi))(inputs))(
            params.constituents
        )  # [S, N]
        same = labels[:, None, :] == labels[None, :, :]  # [S, S, N]
        counts = jnp.sum(same & active[None, :, None], axis=1)  # votes for shard s's label
        counts = jnp.where(active[:, None], counts, -1)
        best = jnp.max(counts, axis=0)
        big = (
            jnp.iinfo(labels.dtype).max
            if jnp.issubdtype(labels.dtype, jnp.integer)
            else jnp.inf
        )
        return jnp.min(jnp.where(counts == best, labels, big), axis=0)

    return Method(
        name="sisa",
        currency="exact",
        train=train,
        unlearn=unlearn,
        predict=predict,
    )

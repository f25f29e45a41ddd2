"""A DP feature extractor with a certified-removal head (Guo et al., ICML 2020, §4.3).

``train`` fits a small network by DP-SGD (:mod:`dpunlearn.dpsgd`: Poisson
sampling, per-example clipping, Gaussian noise), maps every row to the
network's penultimate features, scales them to ℓ2 norm ``<= 1`` and fits
Guo et al.'s removal-enabled linear head (:func:`dpunlearn.certified.train`)
on them. ``unlearn`` never retrains the extractor: the head takes a Newton
removal step, and the extractor's DP covers the removed rows it saw by group
privacy. ``k`` rows removed from an ``(ε_DP, δ_DP)``-DP extractor and a head
certified at ``(ε_CR, δ_CR)`` give ``(kε_DP + ε_CR, k e^{(k−1)ε_DP} δ_DP + δ_CR)``
(Dwork & Roth 2014, Thm 2.2, composed with Guo et al.'s Theorem 3; currency
``"dp_extractor"``), so a target ``(ε, δ)`` caps ``k``
(:func:`dpunlearn.accounting.currencies.extractor_max_removals`, also
``dpunlearn budget dp-extractor``): past it the extractor itself must be
retrained.

Which rows train what (``split``):

* ``"shared"`` (Guo et al. §4.3): extractor and head both train on every row
  of the mask; every removal counts towards ``k``.
* ``"disjoint"``: a random ``extractor_fraction`` of the rows (drawn from the
  key) trains the extractor, the others the head. Removing a head row costs the
  head's residual only (the extractor never saw it); removing an extractor row
  costs group privacy only (the head never saw it, and the released model is
  a post-processing of the extractor and the head's rows).

The (D) ledger: :meth:`dpunlearn.dpsgd.DPSGDConfig.release` is the
extractor's mechanism (``T`` Poisson-subsampled Gaussian steps). The head is
not a DP mechanism (its guarantee is the (U) certificate), so a ledger entry
of a release that includes the head must say so (see the experiment).

When to retrain. The extractor's cap ``k`` (group privacy) depends on counts
only. The head's must not look at its secret noise ``b`` either: with
``num_shadows > 0`` (and the head's ``head_epsilon``, ``head_delta``), ``M``
shadow heads with independent keys follow every request on the same features
(:mod:`dpunlearn.retrain_schedule`, as in the ``certified_removal`` method);
a charge carries the number of marked shadows and the ledger's
``"dp_extractor"`` currency (head rule ``"schedule"``) refuses once their
Clopper–Pearson bound passes ``δ′``: every release is then
``(kε_DP + ε_CR, k·e^{(k−1)ε_DP}δ_DP + δ_CR)`` with ``(ε_CR, δ_CR) =
(head_epsilon, head_delta)``. Without shadows (``num_shadows=0``, the
default, kept for reproductions) the head's budget is Algorithm 2's, which
does look at ``b``: a request's ``residual_bound`` is Guo et al.'s
data-dependent bound (Corollary 1, or the integral form of
:mod:`dpunlearn.certified`), computed at the head's weights, which are a
function of the loss perturbation ``b``; the ``"dp_extractor"`` currency
refuses (retrain) once the accumulated ``β`` passes the head's budget, so the
refusal is a function of ``b``. That is Guo et al.'s Algorithm 2, whose
retrain decision leaks ``b``: the released heads then come only from the
region of ``b`` where no retrain fired, and the stated δ does not hold as
stated (``docs/certified_removal.md`` §6). The ``certified_removal`` method decides
from shadow models with independent keys instead
(:mod:`dpunlearn.retrain_schedule`); this method does not (yet) run shadows
for its head, so its head-side refusal is the paper's uncertified rule. A
caller who needs the stated δ retrains the head after a number of removals
fixed without looking at ``b`` (e.g. from shadow heads trained with other
keys) and treats a refusal before it as a failure, or reads the head's δ as
Algorithm 2's.

State: the extractor's parameters, the head's :class:`~dpunlearn.certified.CertifiedState`,
the rows the extractor was trained on, the mask; never the data or the
features (``unlearn`` recomputes the features from ``data`` with the same
compiled program, which the head's data fingerprint checks).
"""

from __future__ import annotations

import functools
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dpunlearn import _sharding, _validate, certified, dpsgd, retrain_schedule
from dpunlearn.methods.base import (
    Data,
    Method,
    check_data,
    check_mask,
    check_request,
    request_valid,
)
from dpunlearn.models import Model, make_loss
from dpunlearn.types import Array, PRNGKey, PyTree

__all__ = [
    "DPExtractorCharge",
    "DPExtractorInfo",
    "DPExtractorParams",
    "DPExtractorState",
    "dp_extractor",
    "extractor_mlp",
    "head_features",
    "unit_features",
]


class DPExtractorParams(NamedTuple):
    """What is released: the extractor's and the head's parameters."""

    extractor: PyTree
    head: Array


class DPExtractorState(NamedTuple):
    """Extractor parameters, the certified head, the split and the mask.

    Attributes:
      extractor: Parameters of the DP-SGD network.
      head: The head's :class:`~dpunlearn.certified.CertifiedState` (its own
        mask: the rows the head trains on, minus removals).
      in_extractor: ``bool[n]``: rows the extractor was trained on.
      mask: ``bool[n]``: rows the model was trained on, minus removals.
      schedule: The head's shadow heads (``None`` without a schedule).
    """

    extractor: PyTree
    head: certified.CertifiedState
    in_extractor: Array
    mask: Array
    schedule: retrain_schedule.RetrainSchedule | None = None

    @property
    def params(self) -> DPExtractorParams:
        return DPExtractorParams(self.extractor, self.head.params)


class DPExtractorCharge(NamedTuple):
    """What a training or a request costs (currency ``"dp_extractor"``).

    Attributes:
      num_removed: Rows removed (0 for a training).
      num_extractor_removed: Of those, rows the extractor was trained on (the
        group-privacy count k grows by this).
      residual_bound: The head's residual-bound increment of this request
        (sum form, summed over the Newton steps; for a training, the head's
        training residual). ``+inf`` for an invalid request.
      valid: The request was valid (else the model is unchanged).
      num_exceeded: Shadow heads marked since training (the head's sound
        currency; 0 without a schedule).
      num_shadows: ``M`` (0: no schedule, the head's charge is Algorithm 2's
        ``residual_bound``).
    """

    num_removed: Array
    num_extractor_removed: Array
    residual_bound: Array
    valid: Array
    num_exceeded: Array = 0
    num_shadows: Array = 0


class DPExtractorInfo(NamedTuple):
    """Where a request's rows were: ``in_extractor`` (``bool[m]``), and validity."""

    in_extractor: Array
    valid: Array


def unit_features(feats: Array) -> Array:
    """Rows scaled to ℓ2 norm ``<= 1`` (the head's assumption): ``f/‖f‖``, zero rows kept.

    The norm is rounded up by two float32 ulps of 1 before dividing, so the
    float32 row norm never exceeds 1.
    """
    norms = jnp.linalg.norm(feats, axis=-1, keepdims=True)
    scale = jnp.maximum(norms * (1.0 + 4.0 * jnp.finfo(feats.dtype).eps), 1e-30)
    return feats / scale


@functools.partial(jax.jit, static_argnums=0, static_argnames="dtype")
def head_features(features, params: PyTree, x, *, dtype=None) -> Array:
    """What the head sees: ``unit_features(features(params, x))`` (cast to
    ``dtype`` first), as one compiled program per ``features``/``dtype``.

    ``train`` and ``unlearn`` both call it, so the features of ``unlearn``
    are bit for bit those the head was trained on (its data fingerprint
    checks them); compute features for the head the same way.
    """
    f = features(params, x)
    if dtype is not None:
        f = f.astype(dtype)
    return unit_features(f)


def extractor_mlp(
    key: PRNGKey, sizes: tuple[int, ...], *, kind: Literal["softmax", "logistic"] = "softmax"
):
    """A small flax nnx MLP for DP-SGD and its feature map.

    ``sizes = (d_in, h_1, ..., h_k, out)``: ReLU hidden layers; the features
    are the last hidden layer's activations (``h_k`` of them), the output
    layer is the classifier DP-SGD trains through.

    Returns:
      ``(model, features)``: a :class:`~dpunlearn.models.Model` (per-example
      ``kind`` loss) and ``features(params, x [N, d_in]) -> [N, h_k]``.
    """
    from flax import nnx

    if len(sizes) < 3:
        raise ValueError(f"Expected sizes with a hidden layer (len >= 3), got {sizes}.")

    class FeatureMLP(nnx.Module):
        def __init__(self, sizes, rngs):
            self.layers = nnx.List(
                [nnx.Linear(a, b, rngs=rngs) for a, b in zip(sizes[:-1], sizes[1:])]
            )

        def features(self, x):
            for layer in self.layers[:-1]:
                x = jax.nn.relu(layer(x))
            return x

        def __call__(self, x):
            return self.layers[-1](self.features(x))

    module = FeatureMLP(tuple(int(s) for s in sizes), nnx.Rngs(params=key))
    graphdef, params, rest = nnx.split(module, nnx.Param, ...)

    def apply(p, x):
        out = nnx.merge(graphdef, p, rest)(x[None])[0]
        return out[0] if kind == "logistic" else out

    def features(p, x):
        return nnx.merge(graphdef, p, rest).features(x)

    loss, predict = make_loss(apply, kind)
    return Model(params, apply, loss, predict), features


def dp_extractor(
    *,
    extractor: Model,
    features,
    dpsgd_config: dpsgd.DPSGDConfig,
    lam: float,
    sigma: float,
    split: Literal["shared", "disjoint"] = "shared",
    extractor_fraction: float = 0.5,
    head_dtype=None,
    num_shadows: int = 0,
    head_epsilon: float | None = None,
    head_delta: float | None = None,
    **head_config,
) -> Method:
    """DP-SGD extractor + Guo et al.'s certified head, as a :class:`Method`.

    Args:
      extractor: The network DP-SGD trains (a :class:`~dpunlearn.models.Model`;
        :func:`extractor_mlp` builds one).
      features: ``features(params, x [N, ...]) -> [N, d]``, the representation
        the head sees (scaled by :func:`unit_features`).
      dpsgd_config: The DP-SGD schedule (:func:`dpunlearn.dpsgd.calibrate`
        finds ``σ`` for a target ε); a non-private schedule gives the baseline.
      lam, sigma: The head's L2 strength and loss-perturbation std.
      split: ``"shared"`` or ``"disjoint"`` (module docstring).
      extractor_fraction: For ``"disjoint"``: the fraction of rows, drawn from
        the training key, that train the extractor.
      head_dtype: dtype of the features the head sees (default: the
        extractor's); ``jnp.float64`` (with ``JAX_ENABLE_X64``) makes the
        head's certificate float64 (no float32 rounding charges).
      num_shadows: Shadow heads deciding, without looking at ``b``, when the
        head must be retrained (:mod:`dpunlearn.retrain_schedule`); needs
        ``head_epsilon`` and ``head_delta``, the head's ``(ε_CR, δ_CR)``.
        ``0`` (default): Algorithm 2's uncertified residual budget.
      head_epsilon, head_delta: The head's certificate (with ``num_shadows``).
      **head_config: :func:`dpunlearn.certified.make_config` fields (e.g.
        ``num_classes=10`` for one-vs-rest heads on integer labels).
    """
    if split not in ("shared", "disjoint"):
        raise ValueError(f"Expected split in ('shared', 'disjoint'), got {split!r}.")
    if not isinstance(dpsgd_config, dpsgd.DPSGDConfig):
        raise ValueError("Expected dpsgd_config to be a dpunlearn.dpsgd.DPSGDConfig.")
    _validate.open_interval(0.0, 1.0, extractor_fraction=extractor_fraction)
    _validate.positive(lam=lam)
    _validate.non_negative(sigma=sigma)
    config = certified.make_config(**head_config)
    disjoint = split == "disjoint"
    _validate.array_non_negative_int("num_shadows", num_shadows)
    target = None
    if num_shadows:
        if head_epsilon is None or head_delta is None:
            raise ValueError(
                f"Expected head_epsilon and head_delta with num_shadows={num_shadows} "
                f"(the certificate the shadow schedule keeps), got {head_epsilon}, "
                f"{head_delta}."
            )
        target = retrain_schedule.make_target(head_epsilon, head_delta, int(num_shadows))

    def feature_rows(params, x):
        return head_features(features, params, x, dtype=head_dtype)

    # One compiled DP-SGD program per method (and data shape): called eagerly,
    # dpsgd.train's fori_loop closes over this call's data and was compiled
    # anew on every call (seconds each for a small MLP).
    @jax.jit
    def train_extractor(init, key, x, y, mask):
        return dpsgd.train(key, extractor._replace(params=init), x, y, mask, dpsgd_config)

    def labels(y):
        y = jnp.asarray(y)
        if config.num_classes is not None and not jnp.issubdtype(y.dtype, jnp.integer):
            y = y.astype(jnp.int32)
        return y

    def train(key: PRNGKey, data: Data, mask=None):
        _validate.prng_key("key", key)
        data = check_data(data)
        n = data.num_rows
        mask = check_mask(mask, n, data=data)
        k_split, k_ext, k_head = jax.random.split(key, 3)
        if disjoint:
            m = int(round(float(extractor_fraction) * n))
            if not 0 < m < n:
                raise ValueError(
                    f"Expected extractor_fraction={extractor_fraction} to leave rows for "
                    f"both the extractor and the head ({n} rows)."
                )
            perm = jax.random.permutation(k_split, n)
            in_ext = jnp.zeros((n,), bool).at[perm[:m]].set(True)
        else:
            in_ext = jnp.ones((n,), bool)
        ext_mask = mask & in_ext
        head_mask = mask & ~in_ext if disjoint else mask
        if _validate.is_concrete(mask) and not (
            bool(np.any(np.asarray(ext_mask))) and bool(np.any(np.asarray(head_mask)))
        ):
            raise ValueError("Expected the mask to keep rows for both the extractor and the head.")
        y = jnp.asarray(data.y)
        params, _ = train_extractor(extractor.params, k_ext, data.x, y, ext_mask)
        feats = feature_rows(params, data.x)
        if target is not None:  # the shadows' key is split off the head's
            k_head, k_shadows = jax.random.split(k_head)
        head = certified.train(
            k_head, feats, labels(y), lam=lam, sigma=sigma, mask=head_mask, config=config
        )
        schedule = (
            retrain_schedule.init_shadows(k_shadows, head, feats, labels(y), target)
            if target is not None
            else None
        )
        state = DPExtractorState(params, head, in_ext, mask, schedule)
        charge = DPExtractorCharge(
            num_removed=jnp.zeros((), jnp.int32),
            num_extractor_removed=jnp.zeros((), jnp.int32),
            residual_bound=head.grad_residual_bound,
            valid=jnp.isfinite(head.grad_residual_bound),
            **_schedule_fields(schedule),
        )
        return state, charge

    def _schedule_fields(schedule):
        if schedule is None:
            return {}
        return {
            "num_exceeded": jnp.sum(schedule.exceeded).astype(jnp.int32),
            "num_shadows": jnp.asarray(target.num_shadows, jnp.int32),
        }

    def unlearn(key: PRNGKey, state: DPExtractorState, request, data: Data):
        del key  # the extractor is kept; the head's Newton step is deterministic
        data = check_data(data, num_rows=state.mask.shape[0])
        request = jnp.asarray(check_request(request, state.mask)).astype(jnp.int32)
        feats = feature_rows(state.extractor, data.x)
        return unlearn_core(state, request, feats, labels(data.y))

    @jax.jit
    def unlearn_core(state: DPExtractorState, request, feats, y):
        valid, safe = request_valid(request, state.mask)
        in_ext = _sharding.gather_rows(state.in_extractor, safe)
        ext_removed = jnp.sum(in_ext).astype(jnp.int32)
        if not disjoint:
            head, info = certified.remove(state.head, request, feats, y)
            ok = valid & info.valid
            bound = info.bound_increment
            schedule = state.schedule
            if schedule is not None:
                schedule, _ = retrain_schedule.advance(schedule, request, feats, y)
        else:
            in_head = _sharding.gather_rows(state.head.mask, safe)

            def body(j, carry):
                head, schedule, bound, ok = carry

                def step(hs):
                    h, sch = hs
                    new, info = certified.remove(h, safe[j][None], feats, y)
                    if sch is not None:
                        sch, _ = retrain_schedule.advance(sch, safe[j][None], feats, y)
                    return (new, sch), info.bound_increment, info.valid

                (new, schedule), inc, good = jax.lax.cond(
                    in_head[j] & valid,
                    step,
                    lambda hs: (hs, jnp.zeros_like(bound), jnp.asarray(True)),
                    (head, schedule),
                )
                return new, schedule, bound + inc, ok & good

            zero = jnp.zeros((), state.head.residual_bounds.dtype)
            head, schedule, bound, ok = _sharding.fori_loop(
                0, request.shape[0], body, (state.head, state.schedule, zero, valid)
            )
        keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, old)
        mask = jnp.where(ok, _sharding.scatter(state.mask, safe, False), state.mask)
        head = keep(head, state.head)
        if schedule is not None:
            schedule = keep(schedule, state.schedule)
        new = DPExtractorState(state.extractor, head, state.in_extractor, mask, schedule)
        m = request.shape[0]
        charge = DPExtractorCharge(
            num_removed=jnp.where(ok, m, 0).astype(jnp.int32),
            num_extractor_removed=jnp.where(ok, ext_removed, 0),
            residual_bound=jnp.where(ok, bound, jnp.inf),
            valid=ok,
            **_schedule_fields(schedule),
        )
        return new, charge, DPExtractorInfo(in_ext, ok)

    def predict(params: DPExtractorParams, inputs):
        feats = features(params.extractor, inputs)
        feats = unit_features(feats.astype(head_dtype) if head_dtype is not None else feats)
        w = params.head
        scores = jnp.matmul(feats, w.T if w.ndim == 2 else w, precision=jax.lax.Precision.HIGHEST)
        if config.num_classes is not None:
            return jnp.argmax(scores, axis=-1)
        return jnp.where(scores >= 0, 1, -1)

    return Method(
        name="dp_extractor",
        currency="dp_extractor",
        train=train,
        unlearn=unlearn,
        predict=predict,
    )

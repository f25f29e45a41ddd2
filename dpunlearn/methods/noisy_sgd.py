"""Noisy-SGD unlearning (Chien, Wang, Chen, Li, NeurIPS 2024) as a method.

**Learning** is projected noisy stochastic gradient descent (PNSGD, the
paper's eq. 3) with **cyclic mini-batches over one fixed permutation**: at
training a permutation ``π`` of the ``n`` rows is drawn from the key and cut
into ``N_b = ⌈n/b⌉`` batches of ``b`` slots (the last one padded with null
slots); every epoch visits the batches in the same order, one noisy step per
batch, so each row is used exactly once per epoch and every step sees a fresh
batch:

    θ ← Π_R(θ − η·((1/b)Σ_{i ∈ B_j, kept} clip_M(∇ℓ(θ, x_i, y_i)) + λθ) + √(2ησ²)·ξ).

The L2 term is added after clipping (never clipped). Training runs
``train_epochs`` epochs from ``Π_R(model.params)``. **Unlearning** a request
turns its rows into null slots (zero gradient, same batch positions, same
normaliser ``b``) and continues the same cyclic PNSGD from the current
weights for the smallest number of epochs ``K`` the W∞ accountant certifies.
Every step is :func:`dpunlearn.transforms.noisy_clipped_step`'s update (computed
as :func:`dpunlearn.methods._noisy.clipped_grad_sum` then
:func:`dpunlearn.transforms.noisy_step_from_sum`).

**Certificate** (W∞ tracking, the paper's Theorem 3.3 as
:mod:`dpunlearn.accounting.currencies` cites it, ``wsgd_*``): with
``c = 1 − ηm`` (``m = λ``, ``η <= 1/L``) the processes on two data sets that
differ in ``S`` rows, started together and coupled through the same noise and
batches, stay within ∞-Wasserstein distance

    Z_B = S · 2ηM / (b(1 − c^{n/b}))

(one visit of each differing row per epoch moves the iterates apart by at most
``2ηM/b``; the projection caps it at ``2R``). ``K`` more epochs of the same
kernel turn a W∞ radius ``Z`` into the Rényi bound (privacy amplification by
iteration, Feldman, Mironov, Talwar, Thakurta 2018, in the paper's form)

    ε(α) = α·Z²·c^{2Kn/b} / (2ησ²)     (``bound="loose"``, the authors' default)

converted by ``min_α ε(α) + ln(1/δ)/(α − 1)``. Sequential requests compose the
radius linearly, ``Z^{(s+1)} = c^{K_s n/b}·Z^{(s)} + Z_B`` (W∞ triangle
inequality): it saturates at ``Z_B/(1 − c^{Kn/b})``, so with a fixed ``K``
unboundedly many requests can certify the same ε. The method uses
:func:`~dpunlearn.accounting.currencies.wsgd_min_epochs`,
:func:`~dpunlearn.accounting.currencies.wsgd_update`,
:func:`~dpunlearn.accounting.currencies.wsgd_epsilon` (padding the last batch
makes an epoch ``⌈n/b⌉ >= n/b`` steps, so the accountant's ``n/b`` is
conservative).

**Comparator.** The coupling argument holds for any number of training
epochs ``T``: the radius between the two learning processes grows from 0 to at
most ``Z_B``. The law after unlearning is therefore compared with *retraining
on the remaining rows for the same total number of epochs* ``T + ΣK`` (state
``total_epochs``) from the same initialisation (a fresh permutation: the
bound holds for each permutation, hence for the mixture). When ``T`` is long
enough for the learning process to have converged (the papers' setting) that
is ordinary retraining. The released parameters are the only output; the
permutation stays in the state (a secret).

**Adjacency**: ``"replace"`` only (the papers' definition): a removed row
becomes a null row in its batch slot and batches keep the normaliser ``b``;
the paper's sensitivity ``2M/b`` per visit covers it (a null replacement moves
a batch gradient by at most ``M/b``). A ``"remove"`` variant would reshuffle the
batches after every removal and is not covered by the coupling: refused.

**Assumptions, escape hatch, jittable K**: as for
:func:`dpunlearn.methods.langevin.langevin` (convex, ``β``-smooth loss with
gradients bounded by ``G <= M``; derived for :func:`dpunlearn.models.linear`;
``allow_nonconvex=True`` gives uncertified charges). ``K_s`` is a static
schedule computed when the factory is built; the state carries the position
and ``unlearn`` runs ``lax.fori_loop(0, K_s, epoch)`` with a traced ``K_s``.
With ``max_requests=None`` the schedule ends as soon as the saturated radius
certifies the target with the current ``K``: from then on every request uses
that ``K`` and reports the fixed-point bound (unlimited requests).

References:
  Chien, Wang, Chen, Li. Certified Machine Unlearning via Noisy Stochastic
  Gradient Descent. NeurIPS 2024. https://arxiv.org/abs/2403.17105
  Feldman, Mironov, Talwar, Thakurta. Privacy Amplification by Iteration.
  FOCS 2018. https://arxiv.org/abs/1808.06651
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dpunlearn.errors import RetrainRequired
from dpunlearn import _sharding, _validate, transforms
from dpunlearn.accounting import currencies as cur
from dpunlearn.accounting.currencies._common import _check_count
from dpunlearn.methods import _noisy
from dpunlearn.methods._noisy import LossConstants
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
    "NoisySGDCalibration",
    "NoisySGDCharge",
    "NoisySGDInfo",
    "NoisySGDPlan",
    "NoisySGDState",
    "cyclic_batches",
    "noisy_sgd",
    "noisy_sgd_calibration",
    "noisy_sgd_plan",
]


class NoisySGDState(NamedTuple):
    """A noisy-SGD model (a pytree; never holds the data).

    Attributes:
      params: The released parameters.
      mask: ``bool[n]``: rows still in the training set.
      perm: ``int32[n]``: the permutation of the rows fixed at training (secret).
      position: Requests served since the last (re)training.
      total_epochs: Epochs run since the last (re)training.
    """

    params: PyTree
    mask: Array
    perm: Array
    position: Array
    total_epochs: Array


class NoisySGDCharge(NamedTuple):
    """What one (re)training or request costs, in the ``"wsgd"`` currency.

    Attributes:
      num_removed: ``S``, rows removed by this call (0 for training).
      epochs: Epochs run (``T`` for training, ``K_s`` for a request).
      epsilon: ``ε`` certified at ``delta`` against retraining (0 after
        training; for ``request_size`` rows, an upper bound for smaller
        requests); ``inf`` when poisoned.
      delta: The ``δ`` of ``epsilon``.
      radius: ``Z^{(s)}``, the W∞ bound between the model's law and the
        retraining law just after the removal, before unlearning.
      radius_after: ``Z^{(s)}·c^{K_s n/b}``, the same after the ``K_s`` epochs.
      position: ``s`` (0 for training).
      certified: ``valid``, ``epsilon <= target`` and the constants checked.
      valid: The call was valid (else the model is unchanged).
    """

    num_removed: Array
    epochs: Array
    epsilon: Array
    delta: Array
    radius: Array
    radius_after: Array
    position: Array
    certified: Array
    valid: Array


class NoisySGDInfo(NamedTuple):
    """Diagnostics of one unlearning call (see :class:`~.langevin.LangevinInfo`)."""

    valid: Array
    num_newly_removed: Array
    epochs: Array
    max_grad_norm: Array


class NoisySGDCalibration(NamedTuple):
    """The static calibration of a noisy-SGD method (host-side, float64).

    Attributes:
      config: The accountant's ``currencies.WassersteinConfig``.
      noise_std: Per-coordinate std of one step's noise, ``√(2η)·σ``.
      step_radius: ``Z_B`` for ``request_size`` rows.
      epochs: ``K_s``, one per position; with ``unlimited`` the last entry
        serves every position from ``len(epochs)`` on (a constant ``K``).
      epsilons: ``ε`` after request ``s`` (with ``unlimited``, the last entry
        bounds every later position: the radius never exceeds
        ``max(Z^{(s)}, Z_B/(1 − c^{Kn/b}))`` under a constant ``K``).
      radii: ``Z^{(s)}`` before request ``s``'s unlearning (last: the bound).
      radii_after: ``Z^{(s)}·c^{K_s n/b}``.
      unlimited: Requests beyond the table reuse its last entry.
      request_size, target_epsilon, delta: As given.
    """

    config: cur.WassersteinConfig
    noise_std: float
    step_radius: float
    epochs: tuple[int, ...]
    epsilons: tuple[float, ...]
    radii: tuple[float, ...]
    radii_after: tuple[float, ...]
    unlimited: bool
    request_size: int
    target_epsilon: float
    delta: float


def noisy_sgd_calibration(
    *,
    num_rows: int,
    strong_convexity: float,
    step_size: float,
    sigma: float,
    clip_norm: float,
    batch_size: int,
    epsilon: float,
    delta: float,
    radius: float | None = None,
    request_size: int = 1,
    max_requests: int | None = None,
    unlearn_epochs: int | Sequence[int] | None = None,
    bound: Literal["loose", "tight"] = "loose",
    conversion: cur.Conversion = "classic",
    max_order: float = cur.DEFAULT_MAX_ORDER,
    search_limit: int = 1000,
) -> NoisySGDCalibration:
    """The schedule of unlearning epochs a noisy-SGD method runs (module doc).

    At each position ``s`` since training, ``K_s`` =
    :func:`~dpunlearn.accounting.currencies.wsgd_min_epochs` for the radius the
    recursion has reached; ``wsgd_update`` moves to the next position.

    Args:
      num_rows, strong_convexity, step_size, sigma, clip_norm, batch_size:
        ``n``, ``m``, ``η``, ``σ``, ``M``, ``b``.
      epsilon, delta: The target.
      radius: ``R`` of the projection (caps the radius at ``2R``), or None.
      request_size: ``S``, the largest request covered.
      max_requests: Positions to compute; ``None``: until the fixed point
        certifies (then unlimited), at most ``search_limit`` positions.
      unlearn_epochs: Override ``K`` (int or one per position; an int with
        ``max_requests=None`` is used for every request): the charges report
        the ε this certifies, which may exceed the target.
      bound, conversion, max_order: Accountant options.

    Raises:
      ValueError: Unreachable target, or no fixed point within ``search_limit``.

    Example (MNIST constants, one removal at ε = 1, b = 128):
      >>> n = 11_982
      >>> m, L = 1e-6 * n, 0.25 + 1e-6 * n
      >>> cal = noisy_sgd_calibration(num_rows=n, strong_convexity=m, step_size=1 / L,
      ...     sigma=0.03, clip_norm=1.0, batch_size=128, epsilon=1.0, delta=1 / n,
      ...     max_requests=1)
      >>> round(cal.step_radius, 4), cal.epochs
      (0.0604, (1,))
    """
    _validate.positive_int(
        num_rows=num_rows, request_size=request_size, search_limit=search_limit
    )
    if max_requests is not None:
        _validate.positive_int(max_requests=max_requests)
    if request_size >= num_rows:
        raise ValueError(
            f"request_size={request_size} would remove all {num_rows} rows."
        )
    cfg = cur.WassersteinConfig(
        strong_convexity=float(strong_convexity),
        step_size=float(step_size),
        sigma=float(sigma),
        gradient_clip=float(clip_norm),
        n=int(num_rows),
        batch_size=int(batch_size),
        projection_radius=None if radius is None else float(radius),
        bound=bound,
        max_order=max_order,
        conversion=conversion,
    )
    count = max_requests if max_requests is not None else search_limit
    if unlearn_epochs is None or isinstance(unlearn_epochs, (int, np.integer)):
        overrides = None if unlearn_epochs is None else [int(unlearn_epochs)] * count
        if overrides is not None:
            _check_count("unlearn_epochs", overrides[0])
    else:
        overrides = list(unlearn_epochs)
        if len(overrides) != count:
            raise ValueError(
                f"Expected unlearn_epochs to give {count} values, got {len(overrides)}."
            )
        for v in overrides:
            _check_count("unlearn_epochs", v)
    z_b = cfg.step_radius(request_size)

    def tail_bound(z_s: float, k: int) -> tuple[float, float]:
        """(radius, ε) bounding every position from now on if each uses ``k``
        epochs: the map Z ↦ c^{kn/b}Z + Z_B moves monotonically towards its
        fixed point Z*, so every later pre-radius is <= max(Z_s, Z*)."""
        decay = cfg.decay(k)
        z_star = z_b / (1.0 - decay) if decay < 1.0 else math.inf
        if radius is not None:
            z_star = min(z_star, 2.0 * float(radius))
        z = max(z_s, z_star)
        if not math.isfinite(z):
            return math.inf, math.inf
        return z, float(
            cur.wsgd_epsilon(cur.WassersteinState(z, int(k), 1), cfg, delta)[0]
        )

    state = cur.wsgd_init()
    epochs, eps, radii, after = [], [], [], []
    unlimited = False

    def record(st, k):
        epochs.append(int(k))
        eps.append(float(cur.wsgd_epsilon(st, cfg, delta)[0]))
        radii.append(float(st.pre_radius))
        after.append(float(cur.wsgd_radius(st, cfg)))

    for s in range(count):
        if overrides is None:
            try:
                k = cur.wsgd_min_epochs(
                    state,
                    cfg,
                    removed=request_size,
                    target_epsilon=epsilon,
                    delta=delta,
                )
            except ValueError as e:
                raise ValueError(
                    f"Request {s + 1} of {request_size} rows cannot certify "
                    f"epsilon={epsilon} at delta={delta} ({s} can): {e}"
                ) from None
        else:
            k = int(overrides[s])
        nxt = cur.wsgd_update(state, cfg, removed=request_size, epochs=int(k))
        if max_requests is None:
            # Switch to a constant K from this position on as soon as that costs
            # no more epochs than the dearest request so far; the table then
            # ends with one entry bounding every later position.
            k_tail, (z_t, e_t) = k, tail_bound(nxt.pre_radius, k)
            while overrides is None and e_t > epsilon and k_tail <= max(epochs + [k]):
                k_tail += 1
                z_t, e_t = tail_bound(nxt.pre_radius, k_tail)
            if overrides is not None or (
                e_t <= epsilon and k_tail <= max(epochs + [k])
            ):
                record(
                    cur.wsgd_update(state, cfg, removed=request_size, epochs=k_tail),
                    k_tail,
                )
                epochs.append(int(k_tail))
                eps.append(max(e_t, eps[-1]))
                radii.append(max(z_t, radii[-1]))
                after.append(max(z_t * cfg.decay(k_tail), after[-1]))
                unlimited = True
                break
        state = nxt
        record(state, k)
    if max_requests is None and not unlimited:
        raise ValueError(
            f"The W∞ radius does not reach a certifying fixed point within "
            f"{search_limit} requests; pass max_requests."
        )
    return NoisySGDCalibration(
        config=cfg,
        noise_std=math.sqrt(2.0 * step_size) * float(sigma),
        step_radius=float(cfg.step_radius(request_size)),
        epochs=tuple(epochs),
        epsilons=tuple(eps),
        radii=tuple(radii),
        radii_after=tuple(after),
        unlimited=unlimited,
        request_size=int(request_size),
        target_epsilon=float(epsilon),
        delta=float(delta),
    )


def cyclic_batches(perm: Array, batch_size: int) -> Array:
    """``int32[⌈n/b⌉, b]``: the batches of one epoch, in order; ``-1`` pads the last.

    Row ``perm[j·b + k]`` is slot ``k`` of batch ``j``: each row once per epoch.
    """
    n = perm.shape[0]
    num_batches = -(-n // batch_size)
    pad = num_batches * batch_size - n
    fill = jnp.full((pad,), -1, jnp.int32)
    idx = _sharding.concatenate([perm.astype(jnp.int32), fill])
    return idx.reshape(num_batches, batch_size)


class NoisySGDPlan(NamedTuple):
    """The static plan of a noisy-SGD method (see :func:`noisy_sgd_plan`).

    Attributes:
      constants: ``m = λ``, ``L``, ``η``, ``M``, the row-norm contract, whether
        the constants are assumed.
      calibration: The epoch schedule, the W∞ radii and the accountant's config.
    """

    constants: _noisy.ObjectiveConstants
    calibration: NoisySGDCalibration


def noisy_sgd_plan(
    model: Model,
    *,
    num_rows: int,
    lam: float,
    sigma: float,
    radius: float,
    epsilon: float,
    delta: float,
    batch_size: int,
    train_epochs: int,
    learning_rate: float | None = None,
    loss_constants: LossConstants | None = None,
    clip_norm: float | None = None,
    adjacency: Literal["replace"] = "replace",
    request_size: int = 1,
    max_requests: int | None = None,
    unlearn_epochs: int | Sequence[int] | None = None,
    bound: Literal["loose", "tight"] = "loose",
    allow_nonconvex: bool = False,
    probe_iters: int = 32,
    conversion: cur.Conversion = "classic",
    max_order: float = cur.DEFAULT_MAX_ORDER,
) -> NoisySGDPlan:
    """What :func:`noisy_sgd` resolves before it builds its functions.

    Same arguments as :func:`noisy_sgd`; ``dataclasses.asdict(plan.calibration.config)``
    is the ledger's ``params`` for the ``"wsgd"`` currency.
    """
    if adjacency != "replace":
        raise ValueError(
            f"noisy_sgd supports adjacency='replace' only (got {adjacency!r}): a "
            "removed row becomes a null row in its batch slot. Removal with "
            "renormalised batches would change every later batch and is not covered "
            "by the W∞ coupling."
        )
    setup = _noisy.resolve(
        model,
        lam=lam,
        sigma=sigma,
        radius=radius,
        epsilon=epsilon,
        delta=delta,
        learning_rate=learning_rate,
        loss_constants=loss_constants,
        clip_norm=clip_norm,
        allow_nonconvex=allow_nonconvex,
        adjacency=adjacency,
        probe_iters=probe_iters,
    )
    _validate.positive_int(
        num_rows=num_rows, batch_size=batch_size, train_epochs=train_epochs
    )
    if batch_size > num_rows:
        raise ValueError(f"Expected batch_size={batch_size} <= num_rows={num_rows}.")
    cal = noisy_sgd_calibration(
        num_rows=num_rows,
        strong_convexity=setup.lam,
        step_size=setup.step_size,
        sigma=sigma,
        clip_norm=setup.clip_norm,
        batch_size=batch_size,
        epsilon=epsilon,
        delta=delta,
        radius=radius,
        request_size=request_size,
        max_requests=max_requests,
        unlearn_epochs=unlearn_epochs,
        bound=bound,
        conversion=conversion,
        max_order=max_order,
    )
    return NoisySGDPlan(setup, cal)


def noisy_sgd(
    model: Model,
    *,
    num_rows: int,
    lam: float,
    sigma: float,
    radius: float,
    epsilon: float,
    delta: float,
    batch_size: int,
    train_epochs: int,
    learning_rate: float | None = None,
    loss_constants: LossConstants | None = None,
    clip_norm: float | None = None,
    adjacency: Literal["replace"] = "replace",
    request_size: int = 1,
    max_requests: int | None = None,
    unlearn_epochs: int | Sequence[int] | None = None,
    bound: Literal["loose", "tight"] = "loose",
    allow_nonconvex: bool = False,
    probe_iters: int = 32,
    conversion: cur.Conversion = "classic",
    max_order: float = cur.DEFAULT_MAX_ORDER,
) -> Method:
    """Noisy-SGD unlearning: cyclic PNSGD training, PNSGD fine-tuning (module doc).

    Args:
      model: Any :class:`~dpunlearn.models.Model`.
      num_rows: ``n`` (checked against the data).
      lam: ``λ > 0`` (L2 on the mean loss; ``m = λ``; authors' ``λ`` times ``n``).
      sigma: ``σ``; every step adds ``N(0, 2ησ²)`` per coordinate.
      radius: ``R`` of the projection (also caps the W∞ radius at ``2R``).
      epsilon, delta: Target of every request.
      batch_size: ``b`` (``n`` for full batch).
      train_epochs: ``T`` epochs of training.
      learning_rate: ``η`` (default ``1/L``).
      loss_constants, clip_norm, allow_nonconvex, probe_iters: As for
        :func:`dpunlearn.methods.langevin.langevin`.
      adjacency: ``"replace"`` (the only one the coupling covers).
      request_size: Largest request covered by the schedule.
      max_requests: Positions served before a retrain; ``None``: unlimited
        once the radius's fixed point certifies.
      unlearn_epochs: Override ``K`` (experiments, tests).
      bound: ``"loose"`` (authors') or ``"tight"`` W∞ → RDP bound.
      conversion, max_order: RDP → DP conversion.

    Returns:
      A :class:`~dpunlearn.methods.base.Method` with currency ``"wsgd"``.
    """
    plan = noisy_sgd_plan(
        model,
        num_rows=num_rows,
        lam=lam,
        sigma=sigma,
        radius=radius,
        epsilon=epsilon,
        delta=delta,
        batch_size=batch_size,
        train_epochs=train_epochs,
        learning_rate=learning_rate,
        loss_constants=loss_constants,
        clip_norm=clip_norm,
        adjacency=adjacency,
        request_size=request_size,
        max_requests=max_requests,
        unlearn_epochs=unlearn_epochs,
        bound=bound,
        allow_nonconvex=allow_nonconvex,
        probe_iters=probe_iters,
        conversion=conversion,
        max_order=max_order,
    )
    setup, cal = plan.constants, plan.calibration
    n, b, eta, R = int(num_rows), int(batch_size), setup.step_size, float(radius)
    table = len(cal.epochs)
    sched_k = np.asarray(cal.epochs, np.int32)
    sched_eps = np.asarray(cal.epsilons, np.float32)
    sched_ok = np.asarray([e <= float(epsilon) for e in cal.epsilons], bool)
    sched_z = np.asarray(cal.radii, np.float32)
    sched_z_after = np.asarray(cal.radii_after, np.float32)
    reference = model.params

    def params0():
        return optax.projections.projection_l2_ball(reference, R)

    probe = _noisy.Probe(model.loss, setup, params0, R)

    def run(key, params, mask, perm, data, num_epochs):
        """``num_epochs`` cyclic epochs (``num_epochs`` may be traced)."""
        tx = transforms.noisy_step_from_sum(
            learning_rate=eta,
            noise_std=sigma,
            radius=R,
            key=key,
            weight_decay=setup.lam,
            normalizer=b,
        )
        batches = cyclic_batches(perm, b)

        def step(carry, rows):
            params, opt, gmax = carry
            safe = jnp.clip(rows, 0, n - 1)
            keep = (rows >= 0) & _sharding.gather_rows(mask, safe)
            xb = jax.tree.map(lambda a: _sharding.gather_rows(a, safe), data.x)
            yb = _sharding.gather_rows(data.y, safe)
            grads, norms = _noisy.clipped_grad_sum(
                model.loss, params, xb, yb, keep, setup.clip_norm
            )
            updates, opt = tx.update(grads, opt, params)
            return (
                optax.apply_updates(params, updates),
                opt,
                jnp.maximum(gmax, jnp.max(norms).astype(jnp.float32)),
            ), None

        def epoch(_, carry):
            return _sharding.scan(step, carry, batches)[0]

        init = (params, tx.init(params), jnp.zeros((), jnp.float32))
        params, _, gmax = _sharding.fori_loop(0, num_epochs, epoch, init)
        return params, gmax

    @functools.partial(jax.jit, static_argnames="probed")
    def train_core(key, data, mask, probed):
        ok = _noisy.data_ok(data, setup.row_norm)
        if not probed:
            ok &= probe.in_graph(data)
        k_perm, k_noise = jax.random.split(key)
        perm = jax.random.permutation(k_perm, n).astype(jnp.int32)
        params, _ = run(k_noise, params0(), mask, perm, data, int(train_epochs))
        ok &= _noisy.tree_finite(params)
        zero_i, zero_f = jnp.zeros((), jnp.int32), jnp.zeros((), jnp.float32)
        state = NoisySGDState(
            params=params,
            mask=mask,
            perm=perm,
            position=zero_i,
            total_epochs=jnp.asarray(train_epochs, jnp.int32),
        )
        charge = NoisySGDCharge(
            num_removed=zero_i,
            epochs=jnp.asarray(train_epochs, jnp.int32),
            epsilon=jnp.where(ok, 0.0, jnp.inf).astype(jnp.float32),
            delta=jnp.asarray(delta, jnp.float32),
            radius=zero_f,
            radius_after=zero_f,
            position=zero_i,
            certified=ok & (not setup.assumed),
            valid=ok,
        )
        return state, charge

    def train(key: PRNGKey, data: Data, mask=None):
        """Draws the permutation, then ``train_epochs`` cyclic PNSGD epochs."""
        _validate.prng_key("key", key)
        data = check_data(data, num_rows=n)
        _noisy.check_row_norms(data, setup.row_norm)
        mask = check_mask(mask, n, data=data)
        probed = probe.eager(data)
        return train_core(key, data, mask, probed=probed)

    @jax.jit
    def unlearn_core(key, state, request, data):
        valid, safe = request_valid(request, state.mask)
        pos = state.position
        if not cal.unlimited:
            valid &= pos < table
        valid &= _noisy.data_ok(data, setup.row_norm) & _noisy.tree_finite(state.params)
        at = jnp.clip(pos, 0, table - 1)
        k = jnp.where(valid, jnp.asarray(sched_k)[at], 0)
        removed = _sharding.scatter(state.mask, safe, False)
        new_mask = jnp.where(valid, removed, state.mask)
        params, gmax = run(key, state.params, new_mask, state.perm, data, k)
        valid &= _noisy.tree_finite(params)
        k = jnp.where(valid, k, 0)
        size = jnp.asarray(request.shape[0], jnp.int32)
        new = NoisySGDState(
            params=_noisy.tree_select(valid, params, state.params),
            mask=jnp.where(valid, new_mask, state.mask),
            perm=state.perm,
            position=pos + valid.astype(jnp.int32),
            total_epochs=state.total_epochs + k,
        )
        inf = jnp.asarray(jnp.inf, jnp.float32)
        charge = NoisySGDCharge(
            num_removed=jnp.where(valid, size, 0),
            epochs=k,
            epsilon=jnp.where(valid, jnp.asarray(sched_eps)[at], inf),
            delta=jnp.asarray(delta, jnp.float32),
            radius=jnp.where(valid, jnp.asarray(sched_z)[at], inf),
            radius_after=jnp.where(valid, jnp.asarray(sched_z_after)[at], inf),
            position=jnp.where(valid, pos + 1, pos),
            certified=valid & jnp.asarray(sched_ok)[at] & (not setup.assumed),
            valid=valid,
        )
        return new, charge, NoisySGDInfo(valid, jnp.where(valid, size, 0), k, gmax)

    def unlearn(key: PRNGKey, state: NoisySGDState, request, data: Data):
        """Nulls ``request``'s rows and runs ``K_s`` more cyclic epochs."""
        _validate.prng_key("key", key)
        data = check_data(data, num_rows=n)
        if not isinstance(state, NoisySGDState):
            raise ValueError(f"Expected a NoisySGDState, got {type(state).__name__}.")
        _noisy.check_params_like("state.params", state.params, reference)
        if np.shape(state.mask)[-1:] != (n,) or np.shape(state.perm)[-1:] != (n,):
            raise ValueError(
                f"Expected state.mask and state.perm of shape ({n},), got "
                f"{np.shape(state.mask)} and {np.shape(state.perm)}."
            )
        _noisy.check_row_norms(data, setup.row_norm)
        request = check_request(request, state.mask)
        if not jnp.issubdtype(jnp.result_type(request), jnp.integer):
            raise ValueError(f"Expected request to hold integers, got {request.dtype}.")
        if request.shape[0] == 0:
            raise ValueError("Expected a non-empty request.")
        if request.shape[0] > request_size:
            raise ValueError(
                f"A request of {request.shape[0]} rows exceeds request_size="
                f"{request_size}, the size the epoch schedule was certified for."
            )
        if (
            not cal.unlimited
            and _validate.is_concrete(state.position)
            and np.ndim(state.position) == 0
            and int(state.position) >= table
        ):
            raise RetrainRequired(
                f"All max_requests={table} certified requests have been served since "
                "training: retrain (train on the remaining rows)."
            )
        if _validate.is_concrete(state.params):
            for leaf in jax.tree.leaves(state.params):
                _validate.finite_array("state.params", leaf)
        return unlearn_core(key, state, jnp.asarray(request, jnp.int32), data)

    def predict(params, inputs):
        return jax.vmap(model.predict, in_axes=(None, 0))(params, inputs)

    return Method(
        name="noisy_sgd", currency="wsgd", train=train, unlearn=unlearn, predict=predict
    )

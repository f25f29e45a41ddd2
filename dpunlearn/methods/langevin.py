"""Langevin unlearning (Chien, Wang, Chen, Li, NeurIPS 2024) as a method.

**Learning** is projected noisy gradient descent (PNGD, full batch), a
discretised Langevin dynamics (the paper's eq. 2):

    θ_{t+1} = Π_R(θ_t − η·(g_D(θ_t) + λθ_t) + √(2ησ²)·ξ_t),   ξ_t ~ N(0, I),
    g_D(θ) = (1/N)·Σ_{i kept} clip_M(∇ℓ(θ, x_i, y_i)),

run for ``train_steps`` steps from ``Π_R(model.params)``. **Unlearning** a
request removes its rows and keeps running the same PNGD on what remains, from
the current weights, for the smallest number of steps ``K`` that the
accountant certifies. Every step is
:func:`dpunlearn.transforms.noisy_clipped_step`'s update (computed as
:func:`dpunlearn.methods._noisy.clipped_grad_sum` then
:func:`dpunlearn.transforms.noisy_step_from_sum`) inside ``lax.fori_loop``.

**Certificate** (the paper's Theorem 3.2 with Corollary 3.4, strongly convex
case, numbered as in arXiv:2401.10371 and as :mod:`dpunlearn.accounting.currencies`
cites them):
with ``m = λ`` the strong convexity of the objective, ``L = β + λ`` its
smoothness and ``η <= 1/L``, the Rényi divergence of order ``α`` between the
law after ``K`` unlearning steps and the law of retraining on the remaining
rows is at most

    ε_K(α) = exp(−mηK/α)·ε₀(α),   ε₀(α) = 4αS²M²/(mσ²n²)

(the LSI contraction ``exp(−2σ²ηK/(α·C_LSI))`` with ``C_LSI = 2σ²/m``; ``ε₀``
is the RDP between the stationary laws of data sets that differ in ``S``
rows, each changing ``g_D`` by at most ``2M/n``), converted to ``(ε, δ)`` by
``min_α ε_K(α) + ln(1/δ)/(α − 1)`` (Mironov 2017, Prop. 3). Sequential
requests use the weak triangle inequality for Rényi divergences (Mironov 2017,
Prop. 11), ``ε_s(α) = e^{−mηK_s/α}·((α−½)/(α−1))·(ε₀(2α) + ε_{s−1}(2α))``.
All of this is :func:`dpunlearn.accounting.currencies.langevin_min_steps` /
``langevin_update`` / ``langevin_epsilon``; this module only decides which
constants go in.

**Adjacency** (explicit, ``adjacency=``):

* ``"replace"`` (the papers' definition; default): data sets of the same size
  ``n`` that differ in ``S`` rows. The gradient is normalised by the fixed
  ``N = n = num_rows``; a removed row is *replaced by a null row* (zero
  gradient), so the objective after a removal is ``(1/n)Σ_{kept}ℓ_i +
  (λ/2)‖θ‖²`` and "retraining" means training on that objective, i.e.
  ``train(key, data, mask_after)``. Sensitivity ``2M/n`` per row (a null
  replacement moves ``g_D`` by at most ``M/n``, so the paper's constant is
  conservative here by a factor of two). ``ε₀`` uses ``n = num_rows``.
* ``"remove"``: the usual empirical risk over the rows that remain,
  ``N = #kept``. Removing ``S`` rows from ``n'`` moves ``g_D`` by at most
  ``2SM/n'`` (``S`` terms go, the others are reweighted), so ``ε₀`` uses a
  lower bound on ``n'`` over the requests: ``num_rows − (max_requests − 1)·
  request_size``. A request made when fewer rows remain is refused.

**Comparator and assumptions** (state them when you report ε):

* The certificate compares with the **stationary** law of PNGD on the
  remaining rows (retraining "to convergence"), and treats the trained model
  as a sample of the stationary law on the training rows, as the paper's
  experiments do (burn-in). The training charge reports
  ``stationarity_gap = 2R·(1 − ηm)^T``, a bound on the ∞-Wasserstein distance
  between the law after ``T`` steps and the stationary one (synchronous
  coupling; the gradient step is a ``(1 − ηm)``-contraction for
  ``η <= 1/L``): choose ``train_steps`` to make it negligible.
* The loss is convex and ``β``-smooth with gradients bounded by ``G <= M``
  on the ball (so the clip is inactive and the drift is the gradient of an
  ``m``-strongly convex potential). Derived and checked for
  :func:`dpunlearn.models.linear` (rows of norm ``<= 1``); declared by you via
  ``loss_constants`` otherwise, with a curvature probe
  (:func:`dpunlearn.methods._noisy.curvature_probe`) that refuses a
  declaration the data contradict.

**Escape hatch** ``allow_nonconvex=True`` (e.g. an MLP): nothing is checked,
``λ`` is used as if it were the strong-convexity constant (equivalently, you
assert a log-Sobolev constant ``2σ²/λ`` for the Gibbs laws on the ball, the
paper's non-convex route, whose true constant is usually astronomically
worse). The charges then still carry the ``ε`` those formulas give, but
``certified`` is False: it is **not** a certificate.

**Jittable K.** ``K`` depends on the request's position ``s`` since the last
(re)training and on the sizes before it; the Rényi recursion is host-side
float64. The factory therefore computes, when it is built, the whole schedule
``K_1, …, K_{max_requests}`` for requests of ``request_size`` rows (the
accountant's smallest-K search at every position, the recursion over the
previous ones), and the state carries the position as an array. ``unlearn``
looks ``K_s`` up on device and runs ``lax.fori_loop(0, K_s, …)``: one
compiled program per request size, no recompilation across positions, exact
``K_s`` steps of work (a traced trip count), and ``vmap`` over states works.
A request of fewer rows than ``request_size`` uses the same schedule, which is
conservative (every bound is increasing in ``S``); one of more rows is refused
(a ``ValueError``: shapes are static). A request past ``max_requests`` is
refused: retrain.

References:
  Chien, Wang, Chen, Li. Langevin Unlearning: A New Perspective of Noisy
  Gradient Descent for Machine Unlearning. NeurIPS 2024.
  https://arxiv.org/abs/2401.10371
  Mironov. Rényi Differential Privacy. CSF 2017. https://arxiv.org/abs/1702.07476
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
from dpunlearn.methods._noisy import LossConstants, linear_constants
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
    "LangevinCalibration",
    "LangevinCharge",
    "LangevinInfo",
    "LangevinPlan",
    "LangevinState",
    "LossConstants",
    "langevin",
    "langevin_calibration",
    "langevin_plan",
    "linear_constants",
]


class LangevinState(NamedTuple):
    """A Langevin-unlearning model (a pytree; never holds the data).

    Attributes:
      params: The released parameters.
      mask: ``bool[n]``: rows still in the training set.
      position: Requests served since the last (re)training (int32).
      total_steps: Noisy steps run since the last (re)training (int32).
    """

    params: PyTree
    mask: Array
    position: Array
    total_steps: Array


class LangevinCharge(NamedTuple):
    """What one (re)training or request costs, in the ``"langevin"`` currency.

    Attributes:
      num_removed: ``S``, rows removed by this call (0 for training).
      steps: Noisy steps run (``T`` for training, ``K_s`` for a request).
      epsilon: ``ε`` certified at ``delta`` for the released model against
        retraining (0 after training; computed for ``request_size`` rows, an
        upper bound for smaller requests). ``inf`` when poisoned.
      delta: The ``δ`` of ``epsilon``.
      position: ``s``, the request's position since training (0 for training).
      stationarity_gap: ``2R(1 − ηm)^T`` (training only, else 0): ∞-Wasserstein
        bound between the trained law and the stationary law.
      certified: ``valid``, ``epsilon <= target`` and the constants checked
        (False under ``allow_nonconvex``).
      valid: The call was valid (else the model is unchanged).
    """

    num_removed: Array
    steps: Array
    epsilon: Array
    delta: Array
    position: Array
    stationarity_gap: Array
    certified: Array
    valid: Array


class LangevinInfo(NamedTuple):
    """Diagnostics of one unlearning call.

    Attributes:
      valid: The request was valid (else nothing changed).
      num_newly_removed: Rows removed (0 when invalid).
      steps: Noisy steps run.
      max_grad_norm: Largest per-example gradient norm seen before clipping;
        above ``clip_norm`` the clip was active (the convex certificate
        assumes it never is).
    """

    valid: Array
    num_newly_removed: Array
    steps: Array
    max_grad_norm: Array


class LangevinCalibration(NamedTuple):
    """The static calibration of a Langevin method (host-side, float64).

    Attributes:
      config: The accountant's :class:`~dpunlearn.accounting.currencies.LangevinConfig`
        (``m``, ``η``, ``σ``, ``M``, and the ``n`` of ``ε₀``).
      noise_std: Per-coordinate std of the noise of one step, ``√(2η)·σ``.
      steps: ``K_s`` for ``s = 1 … max_requests``.
      epsilons: ``ε`` certified after request ``s`` (with ``K_s`` steps).
      request_size: ``S`` the schedule is computed for.
      target_epsilon, delta: The target.
    """

    config: cur.LangevinConfig
    noise_std: float
    steps: tuple[int, ...]
    epsilons: tuple[float, ...]
    request_size: int
    target_epsilon: float
    delta: float


def langevin_calibration(
    *,
    num_rows: int,
    strong_convexity: float,
    step_size: float,
    sigma: float,
    clip_norm: float,
    epsilon: float,
    delta: float,
    request_size: int = 1,
    max_requests: int = 1,
    adjacency: Literal["replace", "remove"] = "replace",
    unlearn_steps: int | Sequence[int] | None = None,
    conversion: cur.Conversion = "classic",
    max_order: float = cur.DEFAULT_MAX_ORDER,
) -> LangevinCalibration:
    """The schedule of unlearning steps a Langevin method runs (see module doc).

    For ``s = 1 … max_requests`` requests of ``request_size`` rows since the
    last training, ``K_s`` is the smallest number of PNGD steps after which
    the Rényi recursion (Chien et al. 2024, Langevin Unlearning, Thm 3.2 /
    Cor. 3.4 and the weak triangle inequality for sequential requests)
    certifies ``(epsilon, delta)``: ``currencies.langevin_min_steps`` at each
    position, ``currencies.langevin_update`` between positions
    (:mod:`dpunlearn.accounting.currencies`).

    Args:
      num_rows: ``n``, rows of the training data.
      strong_convexity, step_size, sigma, clip_norm: ``m``, ``η``, ``σ``, ``M``.
      epsilon, delta: The target every request must certify.
      request_size: ``S``, the largest request the schedule covers.
      max_requests: Requests before a retrain is required.
      adjacency: ``"replace"`` (``ε₀`` with ``n = num_rows``) or ``"remove"``
        (``ε₀`` with ``n = num_rows − (max_requests − 1)·request_size``).
      unlearn_steps: Override ``K`` (one int for every request, or one per
        request): the schedule then reports the ε these steps certify, which
        may exceed the target (for experiments and tests).
      conversion, max_order: RDP → DP conversion and the largest order.

    Raises:
      ValueError: If the target cannot be met at some position (naming how
        many requests can be served), or on bad arguments.

    Example (MNIST 3-vs-8 constants of the paper, authors' ``λ = 1e-6`` ↔ ``m = λn``):
      >>> n = 11_982
      >>> m, L = 1e-6 * n, 0.25 + 1e-6 * n
      >>> cal = langevin_calibration(num_rows=n, strong_convexity=m, step_size=1 / L,
      ...     sigma=0.03, clip_norm=1.0, epsilon=1.0, delta=1 / n, request_size=100)
      >>> cal.steps
      (1997,)
    """
    _validate.positive_int(
        num_rows=num_rows, request_size=request_size, max_requests=max_requests
    )
    if adjacency not in _noisy.ADJACENCIES:
        raise ValueError(
            f"Expected adjacency in {_noisy.ADJACENCIES}, got {adjacency!r}."
        )
    n_cert = (
        num_rows
        if adjacency == "replace"
        else num_rows - (max_requests - 1) * request_size
    )
    if request_size >= n_cert:
        raise ValueError(
            f"request_size={request_size} and max_requests={max_requests} would remove "
            f"all {num_rows} rows."
        )
    cfg = cur.LangevinConfig(
        strong_convexity=float(strong_convexity),
        step_size=float(step_size),
        sigma=float(sigma),
        gradient_clip=float(clip_norm),
        n=int(n_cert),
        max_order=max_order,
        conversion=conversion,
    )
    overrides = _overrides("unlearn_steps", unlearn_steps, max_requests)
    state = cur.langevin_init()
    steps, eps = [], []
    for s in range(max_requests):
        if overrides is None:
            try:
                k = cur.langevin_min_steps(
                    state,
                    cfg,
                    removed=request_size,
                    target_epsilon=epsilon,
                    delta=delta,
                )
            except ValueError as e:
                raise ValueError(
                    f"Request {s + 1} of {request_size} rows cannot certify "
                    f"epsilon={epsilon} at delta={delta} (only {s} can; lower "
                    f"max_requests or raise sigma): {e}"
                ) from None
        else:
            k = overrides[s]
        state = cur.langevin_update(state, removed=request_size, steps=int(k))
        steps.append(int(k))
        eps.append(float(cur.langevin_epsilon(state, cfg, delta)[0]))
    return LangevinCalibration(
        config=cfg,
        noise_std=math.sqrt(2.0 * step_size) * float(sigma),
        steps=tuple(steps),
        epsilons=tuple(eps),
        request_size=int(request_size),
        target_epsilon=float(epsilon),
        delta=float(delta),
    )


def _overrides(name, value, count):
    if value is None:
        return None
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = [int(value)] * count
    value = list(value)
    if len(value) != count:
        raise ValueError(f"Expected {name} to give {count} values, got {len(value)}.")
    for v in value:
        _check_count(name, v)
    return [int(v) for v in value]


class LangevinPlan(NamedTuple):
    """The static plan of a Langevin method (see :func:`langevin_plan`).

    Attributes:
      constants: ``m = λ``, ``L``, ``η``, the clip ``M``, the row-norm contract,
        whether the constants are assumed (``allow_nonconvex``).
      calibration: The step schedule and the accountant's config.
      stationarity_gap: ``2R(1 − ηm)^T``.
    """

    constants: _noisy.ObjectiveConstants
    calibration: LangevinCalibration
    stationarity_gap: float


def langevin_plan(
    model: Model,
    *,
    num_rows: int,
    lam: float,
    sigma: float,
    radius: float,
    epsilon: float,
    delta: float,
    train_steps: int,
    learning_rate: float | None = None,
    loss_constants: LossConstants | None = None,
    clip_norm: float | None = None,
    adjacency: Literal["replace", "remove"] = "replace",
    request_size: int = 1,
    max_requests: int = 1,
    unlearn_steps: int | Sequence[int] | None = None,
    allow_nonconvex: bool = False,
    probe_iters: int = 32,
    conversion: cur.Conversion = "classic",
    max_order: float = cur.DEFAULT_MAX_ORDER,
) -> LangevinPlan:
    """What :func:`langevin` resolves before it builds its functions.

    Same arguments as :func:`langevin`. Use it to read the constants the
    factory derives (``η = 1/L`` …), the step schedule and the accountant's
    config (``dataclasses.asdict(plan.calibration.config)`` is the ledger's
    ``params`` for the ``"langevin"`` currency) without building the method.
    """
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
    _validate.positive_int(num_rows=num_rows, train_steps=train_steps)
    cal = langevin_calibration(
        num_rows=num_rows,
        strong_convexity=setup.lam,
        step_size=setup.step_size,
        sigma=sigma,
        clip_norm=setup.clip_norm,
        epsilon=epsilon,
        delta=delta,
        request_size=request_size,
        max_requests=max_requests,
        adjacency=adjacency,
        unlearn_steps=unlearn_steps,
        conversion=conversion,
        max_order=max_order,
    )
    return LangevinPlan(
        setup, cal, 2.0 * float(radius) * setup.contraction ** int(train_steps)
    )


def langevin(
    model: Model,
    *,
    num_rows: int,
    lam: float,
    sigma: float,
    radius: float,
    epsilon: float,
    delta: float,
    train_steps: int,
    learning_rate: float | None = None,
    loss_constants: LossConstants | None = None,
    clip_norm: float | None = None,
    adjacency: Literal["replace", "remove"] = "replace",
    request_size: int = 1,
    max_requests: int = 1,
    unlearn_steps: int | Sequence[int] | None = None,
    allow_nonconvex: bool = False,
    probe_iters: int = 32,
    conversion: cur.Conversion = "classic",
    max_order: float = cur.DEFAULT_MAX_ORDER,
) -> Method:
    """Langevin unlearning: PNGD training, PNGD fine-tuning on the rows that remain.

    See the module docstring for the update, the certificate, the adjacency,
    the assumptions and the jittable schedule.

    Args:
      model: Any :class:`~dpunlearn.models.Model` (parameter pytree plus a
        per-example loss).
      num_rows: ``n``, rows of the data the method is used with (checked).
      lam: ``λ > 0``: the objective's L2 term ``(λ/2)‖θ‖²`` (added to the MEAN
        loss), its strong convexity ``m``. The authors' MNIST ``λ = 1e-6``
        multiplies ``n`` (their L2 term is ``λn‖θ‖²/2``): pass ``lam = λn``.
      sigma: ``σ``; each step adds ``N(0, 2ησ²)`` per coordinate.
      radius: ``R`` of the projection ``Π_R`` (the ℓ2 ball).
      epsilon, delta: The ``(ε, δ)`` every request must certify.
      train_steps: ``T``, steps of training (see ``stationarity_gap``).
      learning_rate: ``η``; default ``1/L`` with ``L = β + λ``.
      loss_constants: ``(β, G)`` of the per-example loss. Default: derived by
        :func:`linear_constants` for :func:`dpunlearn.models.linear` (rows
        of norm ``<= 1``); any other model must declare them, or set
        ``allow_nonconvex``.
      clip_norm: ``M``, the per-example clip and the sensitivity constant
        (default ``G``; must be ``>= G`` unless ``allow_nonconvex``).
      adjacency: ``"replace"`` or ``"remove"`` (module doc).
      request_size: Largest request (rows) the schedule covers.
      max_requests: Requests served before a retrain is required.
      unlearn_steps: Override the calibrated ``K`` (int or per request); the
        charges then report the ε actually certified (experiments, tests).
      allow_nonconvex: The documented escape hatch (module doc): nothing is
        checked and no charge is ``certified``.
      probe_iters: Power iterations of the curvature probe at training (0: off).
      conversion, max_order: RDP → DP conversion.

    Returns:
      A :class:`~dpunlearn.methods.base.Method` with currency ``"langevin"``.

    Raises:
      ValueError: Not strongly convex (``lam <= 0``), constants that cannot be
        derived and are not declared, ``η > 1/L``, an unreachable target, or
        bad arguments. At training: data that break the row-norm contract or
        a curvature probe that contradicts the constants (under ``jit``: the
        charge is poisoned instead).
    """
    plan = langevin_plan(
        model,
        num_rows=num_rows,
        lam=lam,
        sigma=sigma,
        radius=radius,
        epsilon=epsilon,
        delta=delta,
        train_steps=train_steps,
        learning_rate=learning_rate,
        loss_constants=loss_constants,
        clip_norm=clip_norm,
        adjacency=adjacency,
        request_size=request_size,
        max_requests=max_requests,
        unlearn_steps=unlearn_steps,
        allow_nonconvex=allow_nonconvex,
        probe_iters=probe_iters,
        conversion=conversion,
        max_order=max_order,
    )
    setup, cal = plan.constants, plan.calibration
    n, eta, R = int(num_rows), setup.step_size, float(radius)
    schedule = np.asarray(cal.steps, np.int32)
    schedule_eps = np.asarray(cal.epsilons, np.float32)
    schedule_ok = np.asarray([e <= float(epsilon) for e in cal.epsilons], bool)
    n_cert = cal.config.n
    gap = plan.stationarity_gap
    reference = model.params

    def run(key, params, mask, data, num_steps):
        """``num_steps`` PNGD steps (``num_steps`` may be traced)."""
        normalizer = n if adjacency == "replace" else jnp.sum(mask)
        tx = transforms.noisy_step_from_sum(
            learning_rate=eta,
            noise_std=sigma,
            radius=R,
            key=key,
            weight_decay=setup.lam,
            normalizer=normalizer,
        )

        def body(_, carry):
            params, opt, gmax = carry
            grads, norms = _noisy.clipped_grad_sum(
                model.loss, params, data.x, data.y, mask, setup.clip_norm
            )
            updates, opt = tx.update(grads, opt, params)
            return (
                optax.apply_updates(params, updates),
                opt,
                jnp.maximum(gmax, jnp.max(norms).astype(jnp.float32)),
            )

        init = (params, tx.init(params), jnp.zeros((), jnp.float32))
        params, _, gmax = _sharding.fori_loop(0, num_steps, body, init)
        return params, gmax

    def params0():
        return optax.projections.projection_l2_ball(reference, R)

    probe = _noisy.Probe(model.loss, setup, params0, R)

    @functools.partial(jax.jit, static_argnames="probed")
    def train_core(key, data, mask, probed):
        ok = _noisy.data_ok(data, setup.row_norm)
        if not probed:
            ok &= probe.in_graph(data)
        params, _ = run(key, params0(), mask, data, int(train_steps))
        ok &= _noisy.tree_finite(params)
        state = LangevinState(
            params=params,
            mask=mask,
            position=jnp.zeros((), jnp.int32),
            total_steps=jnp.asarray(train_steps, jnp.int32),
        )
        charge = LangevinCharge(
            num_removed=jnp.zeros((), jnp.int32),
            steps=jnp.asarray(train_steps, jnp.int32),
            epsilon=jnp.where(ok, 0.0, jnp.inf).astype(jnp.float32),
            delta=jnp.asarray(delta, jnp.float32),
            position=jnp.zeros((), jnp.int32),
            stationarity_gap=jnp.asarray(gap, jnp.float32),
            certified=ok & (not setup.assumed),
            valid=ok,
        )
        return state, charge

    def train(key: PRNGKey, data: Data, mask=None):
        """PNGD for ``train_steps`` steps on the rows ``mask`` keeps."""
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
        valid &= pos < len(schedule)
        valid &= _noisy.data_ok(data, setup.row_norm) & _noisy.tree_finite(state.params)
        if adjacency == "remove":
            valid &= jnp.sum(state.mask) >= n_cert
        at = jnp.clip(pos, 0, len(schedule) - 1)
        k = jnp.where(valid, jnp.asarray(schedule)[at], 0)
        removed = _sharding.scatter(state.mask, safe, False)
        new_mask = jnp.where(valid, removed, state.mask)
        params, gmax = run(key, state.params, new_mask, data, k)
        valid &= _noisy.tree_finite(params)
        k = jnp.where(valid, k, 0)
        size = jnp.asarray(request.shape[0], jnp.int32)
        new = LangevinState(
            params=_noisy.tree_select(valid, params, state.params),
            mask=jnp.where(valid, new_mask, state.mask),
            position=pos + valid.astype(jnp.int32),
            total_steps=state.total_steps + k,
        )
        eps = jnp.where(valid, jnp.asarray(schedule_eps)[at], jnp.inf)
        charge = LangevinCharge(
            num_removed=jnp.where(valid, size, 0),
            steps=k,
            epsilon=eps,
            delta=jnp.asarray(delta, jnp.float32),
            position=jnp.where(valid, pos + 1, pos),
            stationarity_gap=jnp.zeros((), jnp.float32),
            certified=valid & jnp.asarray(schedule_ok)[at] & (not setup.assumed),
            valid=valid,
        )
        info = LangevinInfo(valid, jnp.where(valid, size, 0), k, gmax)
        return new, charge, info

    def unlearn(key: PRNGKey, state: LangevinState, request, data: Data):
        """Removes ``request`` and runs ``K_s`` PNGD steps on the remaining rows."""
        _validate.prng_key("key", key)
        data = check_data(data, num_rows=n)
        _check_state(state)
        _noisy.check_row_norms(data, setup.row_norm)
        request = check_request(request, state.mask)
        if not jnp.issubdtype(jnp.result_type(request), jnp.integer):
            raise ValueError(f"Expected request to hold integers, got {request.dtype}.")
        if request.shape[0] == 0:
            raise ValueError("Expected a non-empty request.")
        if request.shape[0] > request_size:
            raise ValueError(
                f"A request of {request.shape[0]} rows exceeds request_size="
                f"{request_size}, the size the step schedule was certified for."
            )
        if _validate.is_concrete(state.position) and np.ndim(state.position) == 0:
            if int(state.position) >= len(schedule):
                raise RetrainRequired(
                    f"All max_requests={len(schedule)} certified requests have been "
                    "served since training: retrain (train on the remaining rows)."
                )
            kept = (
                int(np.sum(np.asarray(state.mask)))
                if _validate.is_concrete(state.mask)
                else None
            )
            if adjacency == "remove" and kept is not None and kept < n_cert:
                raise ValueError(
                    f"Only {kept} rows remain, fewer than the n={n_cert} the "
                    "certificate assumes: retrain."
                )
        if _validate.is_concrete(state.params):
            for leaf in jax.tree.leaves(state.params):
                _validate.finite_array("state.params", leaf)
        return unlearn_core(key, state, jnp.asarray(request, jnp.int32), data)

    def _check_state(state):
        if not isinstance(state, LangevinState):
            raise ValueError(f"Expected a LangevinState, got {type(state).__name__}.")
        _noisy.check_params_like("state.params", state.params, reference)
        if np.shape(state.mask)[-1:] != (n,):
            raise ValueError(
                f"Expected state.mask of shape ({n},), got {np.shape(state.mask)}."
            )

    def predict(params, inputs):
        return jax.vmap(model.predict, in_axes=(None, 0))(params, inputs)

    method = Method(
        name="langevin",
        currency="langevin",
        train=train,
        unlearn=unlearn,
        predict=predict,
    )
    return method

"""Noisy-SGD unlearning (Chien et al., NeurIPS 2024): W∞ tracking of projected noisy SGD."""


from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Literal, NamedTuple

import numpy as np

from dpunlearn import _validate
from dpunlearn.accounting import _guards

from dpunlearn.accounting.currencies._common import (
    CertificateReport,
    Conversion,
    DEFAULT_MAX_ORDER,
    _check_conversion,
    _check_count,
    _check_delta,
    _check_max_order,
    _epsilon_report,
    _rdp_epsilon,
    _reach_target,
    _smallest_float,
    _smallest_int,
)
from dpunlearn.accounting.currencies.langevin import (
    _check_orders,
    _largest_count,
)

__all__ = [
    "wsgd_contraction",
    "wsgd_step_radius",
    "WassersteinConfig",
    "WassersteinState",
    "wsgd_init",
    "wsgd_update",
    "wsgd_reset",
    "wsgd_rdp",
    "wsgd_epsilon",
    "wsgd_min_epochs",
    "wsgd_max_requests",
    "wsgd_min_sigma",
    "wsgd_radius",
    "wsgd_report",
]

# ---------------------------------------------------------------------------
# (e) Noisy-SGD unlearning (W∞ tracking)
# ---------------------------------------------------------------------------


def wsgd_contraction(strong_convexity: float, step_size: float) -> float:
    """c = 1 − ηm, the per-step contraction of projected noisy (S)GD.

    For ηm below 1e-16, c rounds to 1.0; the accountants below never use c
    itself but ln c = log1p(−ηm), which keeps such tiny rates.
    """
    _wsgd_log_contraction(strong_convexity, step_size)  # validates 0 < ηm ≤ 1
    return 1.0 - float(strong_convexity) * float(step_size)


def _wsgd_log_contraction(strong_convexity: float, step_size: float) -> float:
    """ln c = log1p(−ηm) after checking 0 < ηm ≤ 1 (−inf for ηm = 1)."""
    _validate.positive(strong_convexity=strong_convexity, step_size=step_size)
    rate = float(strong_convexity) * float(step_size)
    if not 0.0 < rate <= 1.0:
        raise ValueError(f"Expected 0 < strong_convexity*step_size <= 1, got {rate}.")
    return math.log1p(-rate) if rate < 1.0 else -math.inf


def _pow_contraction(log_c: float, power: float) -> float:
    """c^power from ln c, with c^0 = 1 also for c = 0."""
    return 1.0 if power == 0.0 else math.exp(power * log_c)


def wsgd_step_radius(
    *,
    strong_convexity: float,
    step_size: float,
    gradient_clip: float,
    n: int,
    batch_size: int,
    removed: int = 1,
    projection_radius: float | None = None,
) -> float:
    """Converged W∞ distance Z_B = 2ηM/(b(1 − c^{n/b})) between adjacent processes.

    Chien et al. 2024 (Noisy-SGD unlearning), ``main_sgd.py``; 2M/(mn) for full
    batch. For ``removed`` = S points the W∞ triangle inequality through S
    single-point changes gives S·Z_B. Capped at 2R with a projection of
    radius R.
    """
    _validate.positive(gradient_clip=gradient_clip)
    n = _guards.count("n", n)
    batch_size = _guards.count("batch_size", batch_size)
    removed = _guards.count("removed", removed)
    if batch_size > n:
        raise ValueError(f"Expected batch_size={batch_size} <= n={n}.")
    log_c = _wsgd_log_contraction(strong_convexity, step_size)
    # 1 − c^{n/b} = −expm1((n/b) ln c): no cancellation for tiny ηm. A radius
    # beyond float64 is inf (a vacuous but honest bound).
    one_minus = -math.expm1((n / batch_size) * log_c) if log_c > -math.inf else 1.0
    zb = 2.0 * float(step_size) * float(gradient_clip) / (batch_size * one_minus)
    zb *= removed
    if projection_radius is not None:
        _validate.positive(projection_radius=projection_radius)
        zb = min(zb, 2.0 * float(projection_radius))
    return zb


@dataclasses.dataclass(frozen=True, kw_only=True)
class WassersteinConfig:
    """Constants of projected noisy mini-batch SGD unlearning (cyclic batches).

    Attributes:
      strong_convexity, step_size, sigma, gradient_clip, n: m, η, σ, M, n.
      batch_size: b (``n`` for full batch); one epoch is n/b steps.
      projection_radius: R of the projection (caps Z at 2R), or None.
      bound: ``"loose"`` (ε(α) = αZ²c^{2T}/(2ησ²), the authors' default) or
        ``"tight"`` (αZ²(1−c²)c^{2T}/((1−c^{2T})2ησ²)), T = Kn/b.
      max_order, conversion: as for :class:`LangevinConfig`.
    """

    strong_convexity: float
    step_size: float
    sigma: float
    gradient_clip: float
    n: int
    batch_size: int
    projection_radius: float | None = None
    bound: Literal["loose", "tight"] = "loose"
    max_order: float = DEFAULT_MAX_ORDER
    conversion: Conversion = "classic"

    def __post_init__(self):
        _validate.positive(sigma=self.sigma, max_order=self.max_order)
        wsgd_step_radius(
            strong_convexity=self.strong_convexity,
            step_size=self.step_size,
            gradient_clip=self.gradient_clip,
            n=self.n,
            batch_size=self.batch_size,
            projection_radius=self.projection_radius,
        )
        if self.bound not in ("loose", "tight"):
            raise ValueError(
                f"Expected bound in ('loose', 'tight'), got {self.bound!r}."
            )
        _check_conversion(self.conversion)
        _check_max_order(self.max_order)

    @property
    def contraction(self) -> float:
        return wsgd_contraction(self.strong_convexity, self.step_size)

    @property
    def _log_contraction(self) -> float:
        return _wsgd_log_contraction(self.strong_convexity, self.step_size)

    def step_radius(self, removed: int) -> float:
        return wsgd_step_radius(
            strong_convexity=self.strong_convexity,
            step_size=self.step_size,
            gradient_clip=self.gradient_clip,
            n=self.n,
            batch_size=self.batch_size,
            removed=removed,
            projection_radius=self.projection_radius,
        )

    def decay(self, epochs: float) -> float:
        """c^{Kn/b}: the W∞ contraction of K epochs."""
        return _pow_contraction(self._log_contraction, epochs * self.n / self.batch_size)


class WassersteinState(NamedTuple):
    """W∞ radius before the last request's unlearning, and that request's epochs.

    ``pre_radius`` is Z^{(s)} (current-law vs retrain-law distance before the
    K_s epochs of unlearning); after them it is ``pre_radius·c^{K_s n/b}``.
    A fresh (re)trained model has radius 0.
    """

    pre_radius: float = 0.0
    epochs: int = 0
    num_requests: int = 0


def wsgd_init() -> WassersteinState:
    """State after (re)training."""
    return WassersteinState()


def wsgd_radius(state: WassersteinState, config: WassersteinConfig) -> float:
    """Current W∞ radius Z·c^{Kn/b} between the model's law and retraining's."""
    return state.pre_radius * config.decay(state.epochs)


def wsgd_update(
    state: WassersteinState, config: WassersteinConfig, *, removed: int, epochs: int
) -> WassersteinState:
    """Z^{(s+1)} = c^{K_s n/b}·Z^{(s)} + Z_B (W∞ triangle inequality, linear)."""
    _guards.count("removed", removed)
    _check_count("epochs", epochs)
    pre = wsgd_radius(state, config) + config.step_radius(removed)
    if config.projection_radius is not None:
        pre = min(pre, 2.0 * config.projection_radius)
    return WassersteinState(pre, int(epochs), state.num_requests + 1)


def wsgd_reset(state: WassersteinState) -> WassersteinState:
    """Full retrain: Z ← 0 (a fresh sample of the learning law)."""
    del state
    return wsgd_init()


def wsgd_rdp(
    state: WassersteinState,
    config: WassersteinConfig,
    orders: np.ndarray | Sequence[float],
) -> np.ndarray:
    """RDP curve of the current model against retraining, vectorised in α.

    Loose: αZ²c^{2T}/(2ησ²); tight: αZ²(1−c²)c^{2T}/((1−c^{2T})·2ησ²), T = Kn/b
    (Chien et al. 2024, Noisy-SGD unlearning, Thm 3.3 / ``main_sgd.py``).
    """
    a = _check_orders(orders)
    if state.pre_radius == 0.0:
        return np.zeros_like(a)
    t = state.epochs * config.n / config.batch_size
    log_c = config._log_contraction
    # In logs: Z², c^{2T} and σ² under- or overflow at the ends of float64.
    if t == 0:
        log_g = 0.0
    elif log_c == -math.inf:  # c = 0: one step forgets everything
        return np.zeros_like(a)
    elif config.bound == "loose":
        log_g = 2.0 * t * log_c
    else:  # (1 − c²) c^{2T} / (1 − c^{2T})
        log_g = (
            math.log(-math.expm1(2.0 * log_c)) + 2.0 * t * log_c
            - math.log(-math.expm1(2.0 * t * log_c))
        )
    log_coef = (
        2.0 * math.log(state.pre_radius) + log_g - math.log(2.0)
        - math.log(config.step_size) - 2.0 * math.log(config.sigma)
    )
    coef = math.exp(log_coef) if log_coef < 709.0 else math.inf
    with np.errstate(over="ignore"):
        return a * coef


def wsgd_epsilon(
    state: WassersteinState, config: WassersteinConfig, delta: float
) -> tuple[float, float]:
    """(ε, α) of the current model (see :func:`langevin_epsilon` for guarantees)."""
    return _rdp_epsilon(
        lambda a: wsgd_rdp(state, config, a), state.pre_radius == 0.0, config, delta
    )


def wsgd_min_epochs(
    state: WassersteinState,
    config: WassersteinConfig,
    *,
    removed: int,
    target_epsilon: float,
    delta: float,
) -> int:
    """Smallest K (epochs) for the next request to certify ``target_epsilon``."""
    _validate.positive(target_epsilon=target_epsilon)
    _check_delta(delta)

    def eps_at(k: int) -> float:
        nxt = wsgd_update(state, config, removed=removed, epochs=int(k))
        return wsgd_epsilon(nxt, config, delta)[0]

    return _reach_target(_smallest_int, eps_at, target_epsilon, lo=0, name="epochs")


def _wsgd_identical_state(
    config: WassersteinConfig, removed: int, epochs: int, count: int
) -> WassersteinState:
    """The state after ``count`` identical requests, without iterating them all.

    Up to 64 requests the recursion of :func:`wsgd_update` is run (the same
    arithmetic, so the same floats); beyond, its closed form
    Z_s = Z_B (1 − d^s)/(1 − d) with d = c^{Kn/b} (s·Z_B for d = 1), capped
    at 2R: the capped recursion equals min(2R, uncapped) because the map
    Z ↦ dZ + Z_B is increasing.
    """
    if count <= 64:
        state = wsgd_init()
        for _ in range(count):
            state = wsgd_update(state, config, removed=removed, epochs=epochs)
        return state
    zb = config.step_radius(removed)
    t = epochs * config.n / config.batch_size
    log_d = t * config._log_contraction if t > 0 else 0.0
    if log_d == 0.0:
        z = count * zb
    elif log_d == -math.inf:
        z = zb
    else:  # (1 − d^s)/(1 − d) = expm1(s ln d)/expm1(ln d), no cancellation
        z = zb * math.expm1(count * log_d) / math.expm1(log_d)
    if config.projection_radius is not None:
        z = min(z, 2.0 * config.projection_radius)
    return WassersteinState(z, int(epochs), count)


def wsgd_max_requests(
    config: WassersteinConfig,
    *,
    removed: int,
    epochs: int,
    target_epsilon: float,
    delta: float,
    limit: int = 10_000,
) -> float:
    """Largest s with requests 1..s all certifying ``target_epsilon``.

    Returns ``inf`` when the fixed point Z* = Z_B/(1 − c^{Kn/b}) itself
    certifies the target (the per-request ε saturates below it). Otherwise
    Z_s, hence ε_s, is non-decreasing in s, and the first failing request is
    found by doubling and bisection on s with Z_s in closed form
    (:func:`_wsgd_identical_state`): O(log s) evaluations, ``limit`` up to
    2**53.
    """
    _validate.positive(target_epsilon=target_epsilon)
    limit = _guards.count("limit", limit)
    removed = _guards.count("removed", removed)
    _check_count("epochs", epochs)
    _check_delta(delta)
    decay = config.decay(epochs)
    if decay < 1.0:
        z_star = config.step_radius(removed) / (1.0 - decay)
        if config.projection_radius is not None:
            z_star = min(z_star, 2.0 * config.projection_radius)
        fixed = WassersteinState(z_star, int(epochs), 1)
        if wsgd_epsilon(fixed, config, delta)[0] <= target_epsilon:
            return math.inf

    def eps(count: int) -> float:
        return wsgd_epsilon(_wsgd_identical_state(config, removed, epochs, count), config, delta)[0]

    return float(_largest_count(eps, float(target_epsilon), limit))


def wsgd_min_sigma(
    config: WassersteinConfig,
    *,
    removed: int,
    epochs: int,
    target_epsilon: float,
    delta: float,
    requests: int = 1,
) -> float:
    """Smallest noise σ for which ``requests`` identical requests all certify
    ``target_epsilon`` (never-overshoot :func:`calibrate` on σ). Z_s is
    non-decreasing in s, so the last request is the worst; it is evaluated
    in O(1) (:func:`_wsgd_identical_state`)."""
    _validate.positive(target_epsilon=target_epsilon)
    requests = _guards.count("requests", requests)
    removed = _guards.count("removed", removed)
    _check_count("epochs", epochs)
    _check_delta(delta)
    state = _wsgd_identical_state(config, removed, epochs, requests)  # σ-free

    def worst(sigma: float) -> float:
        return wsgd_epsilon(state, dataclasses.replace(config, sigma=sigma), delta)[0]

    return _reach_target(
        _smallest_float, worst, target_epsilon, start=config.sigma, name="sigma"
    )


def wsgd_report(
    state: WassersteinState,
    config: WassersteinConfig,
    *,
    target_epsilon: float,
    delta: float,
) -> CertificateReport:
    """(U) certificate of the current model; certified iff ε ≤ ``target_epsilon``."""
    eps, _ = wsgd_epsilon(state, config, delta)
    return _epsilon_report("wsgd", eps, float(delta), float(target_epsilon))




def _register():
    from dpunlearn.accounting.currencies.registry import (
        Currency,
        check_keys,
        register,
        removed_count,
    )

    def config(params, eps, delta):
        check_keys("params", params, {f.name for f in dataclasses.fields(WassersteinConfig)})
        return WassersteinConfig(**params)

    def request(cfg, state, entry):
        if "epochs" not in entry:
            raise ValueError("Expected epochs in a wsgd request.")
        return wsgd_update(state, cfg, removed=removed_count(entry), epochs=entry["epochs"])

    def next_need(cfg, state, entry, eps, delta):
        k = wsgd_min_epochs(
            state, cfg, removed=removed_count(entry), target_epsilon=eps, delta=delta
        )
        return f"epochs >= {k}"

    register(
        Currency(
            name="wsgd",
            config=config,
            request_keys=frozenset({"removed", "epochs"}),
            train_keys=frozenset(),
            initial=lambda cfg: wsgd_init(),
            train=lambda cfg, entry: wsgd_init(),
            request=request,
            retrain=lambda cfg, state, entry: wsgd_reset(state),
            report=lambda cfg, state, eps, delta: wsgd_report(
                state, cfg, target_epsilon=eps, delta=delta
            ),
            budget=lambda cfg: {},
            from_charge=lambda charge: {
                "removed": int(charge.num_removed),
                "epochs": int(charge.epochs),
            },
            next_need=next_need,
        )
    )


_register()

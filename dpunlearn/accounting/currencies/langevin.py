"""Langevin unlearning (Chien, Wang, Chen, Li, NeurIPS 2024): the Rényi recursion over requests."""


from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

from dpunlearn import _validate
from dpunlearn.accounting import _guards, rdp
from dpunlearn.accounting.calibration import calibrate

from dpunlearn.accounting.currencies._common import (
    CertificateReport,
    Conversion,
    DEFAULT_MAX_ORDER,
    _check_conversion,
    _check_count,
    _check_delta,
    _check_max_order,
    _epsilon_report,
    _order_grid,
    _rdp_epsilon,
    _reach_target,
    _smallest_float,
    _smallest_int,
)

__all__ = [
    "langevin_constants",
    "LangevinConfig",
    "LangevinState",
    "langevin_init",
    "langevin_update",
    "langevin_reset",
    "langevin_rdp",
    "langevin_epsilon",
    "langevin_min_steps",
    "langevin_max_requests",
    "langevin_min_sigma",
    "langevin_report",
]

# ---------------------------------------------------------------------------
# (d) Langevin unlearning (Rényi recursion)
# ---------------------------------------------------------------------------


def langevin_constants(*, n: int, lam: float, loss_smoothness: float):
    """(m, L, η) as in Graph-COM/Langevin_unlearning ``main_lmc.py::get_metadata``.

    m = λn (strong convexity of Σℓ/n + λn‖θ‖²/2 per their scaling),
    L = loss_smoothness + λn, η = 1/L. ``loss_smoothness`` is 1/4 for the
    logistic loss with ‖x‖ ≤ 1.

    Returns:
      ``(strong_convexity, smoothness, step_size)``.

    Raises:
      ValueError: On invalid arguments, or when λn or 1/L leave float64's
        normal range (the message names ``lam`` and ``n``).
    """
    _guards.count("n", n)
    _validate.positive(lam=lam, loss_smoothness=loss_smoothness)
    hint = f"lam={lam}, n={n} and loss_smoothness={loss_smoothness} put it outside float64."
    m = _guards.positive_result(float(lam) * n, "strong convexity lam*n", hint)
    L = float(loss_smoothness) + m
    return m, L, _guards.positive_result(1.0 / L, "step size 1/(loss_smoothness + lam*n)", hint)


@dataclasses.dataclass(frozen=True, kw_only=True)
class LangevinConfig:
    """Constants of projected noisy GD (Langevin) learning/unlearning.

    Attributes:
      strong_convexity: m > 0.
      step_size: η > 0 (with m·η ≤ 1).
      sigma: Noise σ > 0 (update noise √(2ησ²)ξ).
      gradient_clip: M > 0, per-sample gradient clip.
      n: Dataset size used in ε₀ (the authors keep it fixed; pass a lower
        bound on the size over the lifetime to be conservative).
      max_order: Largest Rényi order searched.
      conversion: RDP→DP conversion (``"classic"`` as the authors' code).
    """

    strong_convexity: float
    step_size: float
    sigma: float
    gradient_clip: float
    n: int
    max_order: float = DEFAULT_MAX_ORDER
    conversion: Conversion = "classic"

    def __post_init__(self):
        _validate.positive(
            strong_convexity=self.strong_convexity,
            step_size=self.step_size,
            sigma=self.sigma,
            gradient_clip=self.gradient_clip,
            max_order=self.max_order,
        )
        _guards.count("n", self.n)
        _check_conversion(self.conversion)
        if self.strong_convexity * self.step_size > 1.0:
            raise ValueError(
                f"Expected strong_convexity*step_size="
                f"{self.strong_convexity * self.step_size} <= 1."
            )
        _check_max_order(self.max_order)

    def eps0(self, orders: np.ndarray, removed: int) -> np.ndarray:
        """ε₀(α) = 4αS²M²/(mσ²n²): RDP between stationary laws (S points differ)."""
        with np.errstate(over="ignore"):
            return np.exp(np.log(orders) + 2.0 * math.log(removed) + self._log_kappa0)

    @property
    def _log_kappa0(self) -> float:
        """ln(4M²/(mσ²n²)), from logs: the product under- or overflows for
        σ or n near the ends of float64."""
        return (
            math.log(4.0)
            + 2.0 * math.log(self.gradient_clip)
            - math.log(self.strong_convexity)
            - 2.0 * math.log(self.sigma)
            - 2.0 * math.log(self.n)
        )


class LangevinState(NamedTuple):
    """Requests since the last retrain: points removed Sₛ and steps Kₛ of each."""

    removed: tuple[int, ...] = ()
    steps: tuple[int, ...] = ()


def langevin_init() -> LangevinState:
    """State after (re)training: the model is a sample of the learning law."""
    return LangevinState()


def langevin_update(state: LangevinState, *, removed: int, steps: int) -> LangevinState:
    """Appends one request: remove ``removed`` points, fine-tune ``steps`` steps."""
    removed = _guards.count("removed", removed)
    _check_count("steps", steps)
    return LangevinState(state.removed + (removed,), state.steps + (int(steps),))


def langevin_reset(state: LangevinState) -> LangevinState:
    """Full retrain: ε ← 0 (the model is again a sample of the learning law)."""
    del state
    return langevin_init()


# The Langevin recursion is evaluated exactly from the newest request back,
# level j at order 2^j·α, until that order reaches
# A*_u = 2^53·max(1, mη·max(K_1..K_u)) for the requests 1..u still to expand.
# From there every factor e^{−mηK/(2^j α)} is within 2^-53 of 1, and the rest
# is bounded in closed form (see _langevin_log_rdp). At most
# 54 + log2(max(1, mη·K_max)) levels (≤ 117) are exact, whatever the number
# of requests: evaluating s requests costs O(orders × levels), not O(s·orders).
_LANGEVIN_EXACT_ORDER = 2.0**53


class _LangevinRequests(NamedTuple):
    """Requests of a Langevin state, as :func:`_langevin_log_rdp` reads them.

    ``removed``/``steps``/``kmax`` are for the newest ``J`` requests, newest
    first: S and K of request s − j and max(K_1..K_{s−j}). ``first`` is
    (S_1, K_1). ``log_w(u)`` is ln W_u, W_u = S_1²/2 + Σ_{t=2}^{u} 2^{1−t} S_t².
    """

    count: int
    removed: np.ndarray
    steps: np.ndarray
    kmax: np.ndarray
    first: tuple[float, float]
    log_w: Callable[[np.ndarray], np.ndarray]


def _levels(count: int, rate: float, kmax: float) -> int:
    """Exact levels needed: the order 2^j·α, α > 1, passes A* by j = log2(A*) + 1."""
    top = _LANGEVIN_EXACT_ORDER * max(1.0, rate * kmax)
    return min(count, math.ceil(math.log2(top)) + 1)


def _langevin_view(state: LangevinState, rate: float) -> _LangevinRequests:
    """The newest requests of ``state`` and the prefix sums of its tail."""
    removed = np.asarray(state.removed, dtype=np.float64)
    steps = np.asarray(state.steps, dtype=np.float64)
    s = removed.size
    kmax_all = np.maximum.accumulate(steps)  # max(K_1..K_u), oldest first
    levels = _levels(s, rate, float(kmax_all[-1]))
    newest = slice(s - 1, s - 1 - levels if s - 1 - levels >= 0 else None, -1)
    weights = np.exp2(1.0 - np.arange(1, s + 1, dtype=np.float64))
    weights[0] = 0.5
    w_cum = np.cumsum(weights * removed * removed)

    def log_w(u: np.ndarray) -> np.ndarray:
        return np.log(w_cum[np.asarray(u, dtype=np.int64) - 1])

    return _LangevinRequests(
        s, removed[newest], steps[newest], kmax_all[newest],
        (float(removed[0]), float(steps[0])), log_w,
    )


def _identical_view(removed: int, steps: int, count: int, rate: float) -> _LangevinRequests:
    """``count`` identical requests, without building the state: W_u in closed
    form S²(3/2 − 2^{1−u}); the same arrays as :func:`_langevin_view` otherwise."""
    levels = _levels(count, rate, float(steps))
    S, K = float(removed), float(steps)
    log_s2 = 2.0 * math.log(S)

    def log_w(u: np.ndarray) -> np.ndarray:
        return log_s2 + np.log(1.5 - np.exp2(1.0 - np.asarray(u, dtype=np.float64)))

    return _LangevinRequests(
        count, np.full(levels, S), np.full(levels, K), np.full(levels, K), (S, K), log_w
    )


def _langevin_log_rdp(
    req: _LangevinRequests, config: LangevinConfig, alpha: np.ndarray
) -> np.ndarray:
    """ln ε_s(α) of the Langevin recursion (see :func:`langevin_rdp`), in log space.

    Unrolled, with a_j = 2^j α, F_u(a) = e^{−mηK_u/a}·(a − ½)/(a − 1) and
    ε₀(a; S) = aS²κ₀, κ₀ = 4M²/(mσ²n²)::

        ε_s(α) = Σ_{j=0}^{s−2} [Π_{i≤j} F_{s−i}(a_i)] ε₀(a_{j+1}; S_{s−j})
                 + [Π_{i≤s−2} F_{s−i}(a_i)] e^{−mηK_1/a_{s−1}} ε₀(a_{s−1}; S_1).

    Level j is summed exactly while a_j < A*_{s−j}. At the first level L with
    a_L ≥ A*_{s−L} the remaining ε_{s−L}(a_L) is replaced by the upper bound

        ε_u(β) ≤ β·e^{2/β}·κ₀·2^u·W_u,   u = s − L,

    which drops the factors e^{−mηK/a} ≤ 1 (each ≥ 1 − 2^{-53} there) and
    bounds Π (a − ½)/(a − 1) over a = β, 2β, … by e^{2/β}. So the result is
    the recursion's value up to float64 rounding, and never below it.
    """
    rate = config.strong_convexity * config.step_size
    log_k0 = config._log_kappa0
    s, levels = req.count, req.removed.size
    alpha = np.asarray(alpha, dtype=np.float64)
    j = np.arange(levels, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        a = alpha[:, None] * np.exp2(j)  # [G, J]
        astar = _LANGEVIN_EXACT_ORDER * np.maximum(1.0, rate * req.kmax)
        to_tail = a >= astar
        cut = np.where(to_tail.any(axis=1), np.argmax(to_tail, axis=1), levels)  # L(α)
        log_f = -rate * req.steps / a + np.log1p(0.5 / (a - 1.0))
        cum_f = np.cumsum(log_f, axis=1)
        log_s2 = 2.0 * np.log(req.removed)
        exact = j[None, :] < cut[:, None]
        # Requests 2..s: Π_{i≤j} F · ε₀(a_{j+1}; S_{s−j}).
        terms = np.where(
            exact & (j[None, :] <= s - 2),
            cum_f + np.log(2.0 * a) + log_s2 + log_k0,
            -np.inf,
        )
        parts = [terms]
        if levels == s:  # request 1, when the recursion is exact down to it
            last = s - 1
            s1, k1 = req.first
            prev = cum_f[:, last - 1] if last >= 1 else 0.0
            first = prev - rate * k1 / a[:, last] + np.log(a[:, last]) + 2.0 * math.log(s1) + log_k0
            parts.append(np.where(cut == s, first, -np.inf)[:, None])
        tail_rows = cut < s
        if tail_rows.any():
            L = np.minimum(cut, levels - 1)
            beta = alpha * np.exp2(cut.astype(np.float64))
            before = np.take_along_axis(cum_f, np.maximum(L - 1, 0)[:, None], axis=1)[:, 0]
            prev = np.where(cut >= 1, before, 0.0)
            u = np.where(tail_rows, s - cut, 1)
            tail = (
                prev + np.log(beta) + 2.0 / beta + log_k0 + u * math.log(2.0) + req.log_w(u)
            )
            parts.append(np.where(tail_rows, tail, -np.inf)[:, None])
        return _logsumexp_rows(np.concatenate(parts, axis=1))


def _logsumexp_rows(x: np.ndarray) -> np.ndarray:
    """ln Σ_j e^{x_ij} per row; rows of −inf give −inf (a lean logsumexp for
    the hot path: scipy's generic one costs ~0.3 ms a call here)."""
    top = np.max(x, axis=1)
    safe = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        return safe + np.log(np.sum(np.exp(x - safe[:, None]), axis=1))


def _check_orders(orders) -> np.ndarray:
    a = np.asarray(orders, dtype=np.float64)
    _validate.array_in_range("orders", a, 1.0, math.inf)
    return a


def langevin_rdp(
    state: LangevinState, config: LangevinConfig, orders: np.ndarray | Sequence[float]
) -> np.ndarray:
    """RDP curve ε_s(α) of the current model against retraining, vectorised in α.

    ε₁(α) = e^{−mηK₁/α}·ε₀(α); for s ≥ 2 (weak triangle inequality, Mironov
    2017, Prop. 11, in the form of the authors' ``baseline.py::epsilon_s_with_alpha``)::

        ε_s(α) = e^{−mηK_s/α} · ((α − ½)/(α − 1)) · (ε₀(2α) + ε_{s−1}(2α)).

    (Chien et al. 2024, Langevin Unlearning, Thm 3.2 and Cor. 3.4;
    ``docs/accounting.md`` §5.) Evaluating ε_s at α needs the orders α·2^j,
    j < s. It is unrolled and summed in log space (no overflow at 2^s α, no
    Python loop over requests); requests more than ~54 + log2(mη·max K)
    levels back, whose factors e^{−mηK/(2^j α)} are within 2^-53 of 1, are
    summed in closed form as an upper bound (:func:`_langevin_log_rdp`), so
    the cost is O(orders × 117) at most for any number of requests.

    Returns:
      float64 array of RDP values (0 when no request since retrain; ``inf``
      only where the value exceeds float64, e.g. after ~1000 requests, since
      ε_s grows like 2^s).

    Raises:
      ValueError: If an order is not a number > 1.
    """
    a0 = _check_orders(orders)
    if not state.steps:
        return np.zeros_like(a0)
    rate = config.strong_convexity * config.step_size
    log_eps = _langevin_log_rdp(_langevin_view(state, rate), config, a0.ravel())
    with np.errstate(over="ignore"):
        return np.exp(log_eps).reshape(a0.shape)


def _langevin_log_rdp_scalar(req: _LangevinRequests, config: LangevinConfig, alpha: float) -> float:
    """:func:`_langevin_log_rdp` at one order, level by level in plain floats
    (the scalar refinement of the optimal α calls this ~15 times per ε)."""
    rate = config.strong_convexity * config.step_size
    log_k0 = config._log_kappa0
    s = req.count
    terms = []
    cum, a = 0.0, float(alpha)
    for j in range(req.removed.size):
        if a >= _LANGEVIN_EXACT_ORDER * max(1.0, rate * float(req.kmax[j])):
            u = s - j  # tail bound for requests 1..u at order a
            log_w = float(req.log_w(u))
            terms.append(cum + math.log(a) + 2.0 / a + log_k0 + u * math.log(2.0) + log_w)
            break
        if j <= s - 2:
            cum += -rate * float(req.steps[j]) / a + math.log1p(0.5 / (a - 1.0))
            terms.append(cum + math.log(2.0 * a) + 2.0 * math.log(float(req.removed[j])) + log_k0)
        else:  # request 1
            s1, k1 = req.first
            terms.append(cum - rate * k1 / a + math.log(a) + 2.0 * math.log(s1) + log_k0)
        a *= 2.0
    top = max(terms)
    if not math.isfinite(top):
        return top
    return top + math.log(math.fsum(math.exp(t - top) for t in terms))


def _langevin_curve(req: _LangevinRequests, config: LangevinConfig):
    def curve(a: np.ndarray) -> np.ndarray:
        a = np.asarray(a, np.float64).ravel()
        if a.size == 1:
            log_eps = _langevin_log_rdp_scalar(req, config, float(a[0]))
            return np.array([math.exp(log_eps) if log_eps < 709.0 else math.inf])
        with np.errstate(over="ignore"):
            return np.exp(_langevin_log_rdp(req, config, a))

    return curve


def langevin_epsilon(
    state: LangevinState, config: LangevinConfig, delta: float
) -> tuple[float, float]:
    """(ε, α) certified for the current model: min_α conversion of :func:`langevin_rdp`.

    Guarantees:
      Certified (α, ε_s(α))-Rényi unlearning converted to (ε, δ) at the
      returned α; the α is an estimated optimum over (1, max_order].

    Example:
      >>> m, _, eta = langevin_constants(n=10_000, lam=1e-6, loss_smoothness=0.25)
      >>> cfg = LangevinConfig(strong_convexity=m, step_size=eta, sigma=0.03,
      ...                      gradient_clip=1.0, n=10_000)
      >>> s = langevin_init()
      >>> for _ in range(3):
      ...     s = langevin_update(s, removed=1, steps=1000)
      ...     print(round(langevin_epsilon(s, cfg, 1e-4)[0], 4))
      0.2908
      0.4315
      0.509
    """
    if not state.steps:
        return _rdp_epsilon(None, True, config, delta)
    return _langevin_epsilon_cached(state, config, float(delta))


@functools.lru_cache(maxsize=8)
def _langevin_epsilon_cached(
    state: LangevinState, config: LangevinConfig, delta: float
) -> tuple[float, float]:
    # Pure function of hashable arguments: a search that ends by evaluating
    # the state it returns, followed by the caller's own evaluation of that
    # state (the CLI's request table), computes it once.
    rate = config.strong_convexity * config.step_size
    req = _langevin_view(state, rate)
    curve = _langevin_curve(req, config)
    grid = _order_grid(float(config.max_order))
    if len(state.steps) >= 2:
        # On the grid: the newest request's level times the earlier requests'
        # curve at 2α, which is cached, so the K searched by
        # langevin_min_steps costs O(orders) per try instead of O(orders·levels).
        prefix = LangevinState(state.removed[:-1], state.steps[:-1])
        top = _langevin_log_top(prefix, config, state.removed[-1], state.steps[-1], req, grid)
        plain = curve

        def curve(a: np.ndarray) -> np.ndarray:
            if a is grid:
                with np.errstate(over="ignore"):
                    return np.exp(top)
            return plain(a)

    return _rdp_epsilon(curve, False, config, delta)


@functools.lru_cache(maxsize=4)
def _langevin_prefix_on_grid(
    prefix: LangevinState, config: LangevinConfig, max_order: float
) -> np.ndarray:
    """ln ε_{s−1}(2α) of the earlier requests at every grid order α (cached)."""
    rate = config.strong_convexity * config.step_size
    grid = _order_grid(max_order)
    return _langevin_log_rdp(_langevin_view(prefix, rate), config, 2.0 * grid)


def _langevin_log_top(
    prefix: LangevinState,
    config: LangevinConfig,
    removed: int,
    steps: int,
    req: _LangevinRequests,
    grid: np.ndarray,
) -> np.ndarray:
    """ln ε_s on the grid as the recursion's last step over the cached prefix:
    ln F_s(α) + ln(ε₀(2α; S_s) + ε_{s−1}(2α)), or the closed-form bound of
    :func:`_langevin_log_rdp` where α ≥ A*_s (the same value up to rounding)."""
    rate = config.strong_convexity * config.step_size
    prev = _langevin_prefix_on_grid(prefix, config, float(config.max_order))
    log_k0 = config._log_kappa0
    with np.errstate(over="ignore", divide="ignore"):
        top = (
            -rate * steps / grid
            + np.log1p(0.5 / (grid - 1.0))
            + np.logaddexp(np.log(2.0 * grid) + 2.0 * math.log(removed) + log_k0, prev)
        )
        astar = _LANGEVIN_EXACT_ORDER * max(1.0, rate * float(req.kmax[0]))
        far = grid >= astar
        if far.any():
            top = np.where(far, _langevin_log_rdp(req, config, grid), top)
    return top


def _langevin_identical_epsilon(
    config: LangevinConfig, delta: float, removed: int, steps: int, count: int
) -> float:
    """ε after ``count`` identical requests, without building the state: O(1) in count."""
    rate = config.strong_convexity * config.step_size
    req = _identical_view(removed, steps, count, rate)
    return _rdp_epsilon(_langevin_curve(req, config), False, config, delta)[0]


def langevin_min_steps(
    state: LangevinState,
    config: LangevinConfig,
    *,
    removed: int,
    target_epsilon: float,
    delta: float,
) -> int:
    """Smallest K for the next request (``removed`` points) to meet the target.

    The target is ``target_epsilon`` at ``delta``.

    ε after the request is non-increasing in K. The search first solves the
    grid-only version of the problem, where the new request enters as one
    factor e^{−mηK/α} in front of a curve computed once from the earlier
    requests (O(orders) per K), then confirms and corrects that guess with
    the exact ε (:func:`langevin_epsilon`, usually two evaluations) and the
    never-overshoot integer :func:`calibrate`. The answer is the exact
    smallest K for :func:`langevin_epsilon`; the guess only saves time.

    Raises:
      ValueError: If no K reaches the target (it is below ln(1/δ)/(max_order−1)
        or below the inherited divergence), naming ``target_epsilon``.
    """
    _validate.positive(target_epsilon=target_epsilon)
    _check_delta(delta)
    removed = _guards.count("removed", removed)
    target = float(target_epsilon)

    def eps_at(k: int) -> float:
        nxt = langevin_update(state, removed=removed, steps=int(k))
        return langevin_epsilon(nxt, config, delta)[0]

    guess = _langevin_steps_guess(state, config, removed, target, float(delta))
    return _reach_target(
        _smallest_int_from, eps_at, target_epsilon, lo=0, guess=guess, name="steps"
    )


def _langevin_steps_guess(
    state: LangevinState, config: LangevinConfig, removed: int, target: float, delta: float
) -> int:
    """Smallest K whose approximate ε meets the target; 0 if none: a guess.

    ε_s(α; K) = e^{−mηK/α}·B(α) with B(α) = (α − ½)/(α − 1)·(ε₀(2α) + ε_{s−1}(2α))
    (or ε₀(α) for the first request), B computed once on the grid.
    """
    rate = config.strong_convexity * config.step_size
    grid = _order_grid(float(config.max_order))
    with np.errstate(over="ignore", divide="ignore"):
        log_e0 = np.log(grid) + 2.0 * math.log(removed) + config._log_kappa0
        if state.steps:
            prev = _langevin_prefix_on_grid(state, config, float(config.max_order))
            log_b = np.log1p(0.5 / (grid - 1.0)) + np.logaddexp(math.log(2.0) + log_e0, prev)
        else:
            log_b = log_e0
    x_grid = np.log(grid - 1.0)

    def grid_eps(k: int) -> float:
        with np.errstate(over="ignore"):
            curve = np.exp(log_b - rate * k / grid)
            values = rdp._dp_epsilons(grid, curve, delta, config.conversion)
            i = int(np.argmin(values))
            lo, hi = max(i - 1, 0), min(i + 1, grid.size - 1)
            # Refine α between the neighbours of the best grid order, with
            # ln B interpolated linearly in ln(α − 1) (B is smooth; the fast
            # factor e^{−mηK/α} is exact): what the exact search's refinement
            # finds, to well within one step of K.
            x = np.linspace(x_grid[lo], x_grid[hi], 129)
            a = 1.0 + np.exp(x)
            fine = np.exp(np.interp(x, x_grid[lo : hi + 1], log_b[lo : hi + 1]) - rate * k / a)
            return min(
                float(values[i]),
                float(np.min(rdp._dp_epsilons(a, fine, delta, config.conversion))),
            )

    try:
        return _smallest_int(grid_eps, target, lo=0, name="steps")
    except ValueError:
        return 0


def _smallest_int_from(
    fn: Callable[[int], float], target: float, *, lo: int, guess: int, name: str
) -> int:
    """Smallest integer x ≥ lo with fn(x) ≤ target (fn non-increasing), searched
    outwards from ``guess`` (any integer ≥ lo): a good guess costs two calls."""
    guess = max(lo, int(guess))
    if fn(guess) <= target:
        if guess == lo:
            return lo
        step, hi = 1, guess
        while True:  # gallop down to an unsafe point
            x = max(lo, hi - step)
            if fn(x) > target:
                lo_bad = x
                break
            hi = x
            if x == lo:
                return lo
            step *= 2
        if hi - lo_bad <= 1:
            return hi
        return int(calibrate(fn, target, lo=lo_bad, hi=hi, increasing=False, integer=True))
    return _smallest_int(fn, target, lo=guess + 1, name=name)


def langevin_max_requests(
    config: LangevinConfig,
    *,
    removed: int,
    steps: int,
    target_epsilon: float,
    delta: float,
    limit: int = 64,
) -> int:
    """Largest s ≤ ``limit`` such that requests 1..s (each ``removed`` points,
    ``steps`` steps) all certify ``target_epsilon``.

    For identical requests ε_s is non-decreasing in s (by induction on the
    recursion: ε₀(2α) ≥ ε₀(α) and (α − ½)/(α − 1) ≥ 1), so this is the largest
    s with ε_s ≤ target, found by doubling and bisection on s with ε_s in
    O(1) per s (no state is built): ``limit`` may be as large as 2**53.
    """
    _validate.positive(target_epsilon=target_epsilon)
    limit = _guards.count("limit", limit)
    removed = _guards.count("removed", removed)
    _check_count("steps", steps)
    _check_delta(delta)
    target = float(target_epsilon)

    def eps(count: int) -> float:
        return _langevin_identical_epsilon(config, delta, removed, int(steps), count)

    return _largest_count(eps, target, limit)


def _largest_count(eps: Callable[[int], float], target: float, limit: int) -> int:
    """Largest s in [0, limit] with eps(s') ≤ target for all s' ≤ s, eps non-decreasing."""
    if eps(1) > target:
        return 0
    good, bad = 1, None
    while bad is None:
        nxt = min(limit, 2 * good)
        if nxt == good:
            return good
        if eps(nxt) <= target:
            good = nxt
        else:
            bad = nxt
    while bad - good > 1:
        mid = (good + bad) // 2
        if eps(mid) <= target:
            good = mid
        else:
            bad = mid
    return good


def langevin_min_sigma(
    config: LangevinConfig,
    *,
    removed: int,
    steps: int,
    target_epsilon: float,
    delta: float,
    requests: int = 1,
) -> float:
    """Smallest noise σ for which ``requests`` identical requests (``removed``
    points, ``steps`` steps each) all certify ``target_epsilon``.

    ε is non-increasing in σ at every request and non-decreasing in the
    number of identical requests (see :func:`langevin_max_requests`), so the
    worst request is the last one, evaluated in O(1); the search is the
    never-overshoot :func:`calibrate` on σ (``config.sigma`` only seeds the
    bracket).

    Raises:
      ValueError: If no σ reaches the target (below ln(1/δ)/(max_order − 1)).
    """
    _validate.positive(target_epsilon=target_epsilon)
    requests = _guards.count("requests", requests)
    removed = _guards.count("removed", removed)
    _check_count("steps", steps)
    _check_delta(delta)

    def worst(sigma: float) -> float:
        cfg = dataclasses.replace(config, sigma=sigma)
        return _langevin_identical_epsilon(cfg, delta, removed, int(steps), requests)

    return _reach_target(
        _smallest_float, worst, target_epsilon, start=config.sigma, name="sigma"
    )


def langevin_report(
    state: LangevinState,
    config: LangevinConfig,
    *,
    target_epsilon: float,
    delta: float,
) -> CertificateReport:
    """(U) certificate of the current model; certified iff ε ≤ ``target_epsilon``."""
    eps, _ = langevin_epsilon(state, config, delta)
    return _epsilon_report("langevin", eps, float(delta), float(target_epsilon))




def _register():
    from dpunlearn.accounting.currencies.registry import (
        Currency,
        check_keys,
        register,
        removed_count,
    )

    def config(params, eps, delta):
        check_keys("params", params, {f.name for f in dataclasses.fields(LangevinConfig)})
        return LangevinConfig(**params)

    def request(cfg, state, entry):
        if "steps" not in entry:
            raise ValueError("Expected steps in a langevin request.")
        return langevin_update(state, removed=removed_count(entry), steps=entry["steps"])

    def next_need(cfg, state, entry, eps, delta):
        k = langevin_min_steps(
            state, cfg, removed=removed_count(entry), target_epsilon=eps, delta=delta
        )
        return f"steps >= {k}"

    register(
        Currency(
            name="langevin",
            config=config,
            request_keys=frozenset({"removed", "steps"}),
            train_keys=frozenset(),
            initial=lambda cfg: langevin_init(),
            train=lambda cfg, entry: langevin_init(),
            request=request,
            retrain=lambda cfg, state, entry: langevin_reset(state),
            report=lambda cfg, state, eps, delta: langevin_report(
                state, cfg, target_epsilon=eps, delta=delta
            ),
            budget=lambda cfg: {},
            from_charge=lambda charge: {
                "removed": int(charge.num_removed),
                "steps": int(charge.steps),
            },
            next_need=next_need,
        )
    )


_register()

"""Sekhari et al. (NeurIPS 2021): deletion capacity of Newton + Gaussian output noise."""


from __future__ import annotations

import dataclasses
import math
from typing import Literal, NamedTuple


from dpunlearn import _validate
from dpunlearn.accounting import _guards

from dpunlearn.accounting.currencies._common import (
    CertificateReport,
    _check_delta,
    _gaussian_sigma,
    _largest_int,
)

__all__ = [
    "sekhari_gamma",
    "sekhari_sigma",
    "sekhari_capacity",
    "sekhari_max_deletions",
    "SekhariConfig",
    "SekhariState",
    "sekhari_init",
    "sekhari_update",
    "sekhari_reset",
    "sekhari_report",
]

# ---------------------------------------------------------------------------
# (b) Sekhari et al.
# ---------------------------------------------------------------------------


def sekhari_gamma(
    *,
    hessian_lipschitz: float,
    lipschitz: float,
    strong_convexity: float,
    n: int,
    capacity: int,
    tight: bool = False,
) -> float:
    """Sensitivity γ of the Newton-corrected model (Sekhari et al. 2021, Thm 3).

    γ = 2Mm²L²/(λ³n²) (``docs/accounting.md`` §3; the λ³ is confirmed by a
    derivation and units). ``tight=True`` gives Mm²L²/(2λ³(n−m)²), valid for
    any m < n and ≤ γ when m ≤ n/2.

    Args:
      hessian_lipschitz: M > 0 (operator-norm Hessian-Lipschitz constant).
      lipschitz: L > 0, bound on ‖∇f(ŵ, z)‖ for deleted z.
      strong_convexity: λ > 0.
      n: Training-set size (integer ≥ 1).
      capacity: m, the largest number of deletions certified (1 ≤ m ≤ n/2;
        m < n for ``tight``).

    Returns:
      γ > 0: an upper bound on ‖w̄ − ŵ′‖ (distance to the retrained ERM).
    """
    log_gamma = _sekhari_log_gamma(
        hessian_lipschitz, lipschitz, strong_convexity, n, capacity, tight
    )
    return _guards.positive_result(
        math.exp(log_gamma) if log_gamma < 709.0 else math.inf,
        "sensitivity gamma",
        f"strong_convexity={strong_convexity}, lipschitz={lipschitz}, "
        f"hessian_lipschitz={hessian_lipschitz} and n={n} put it outside float64.",
    )


def _sekhari_log_gamma(
    hessian_lipschitz, lipschitz, strong_convexity, n, capacity, tight
) -> float:
    """ln γ of :func:`sekhari_gamma` after validation, from logs (λ³ and n²
    under- or overflow at the ends of float64: ZeroDivisionError before)."""
    _validate.positive(
        hessian_lipschitz=hessian_lipschitz,
        lipschitz=lipschitz,
        strong_convexity=strong_convexity,
    )
    n = _guards.count("n", n)
    m = _guards.count("capacity", capacity)
    M, L, lam = float(hessian_lipschitz), float(lipschitz), float(strong_convexity)
    if tight:
        if not m < n:
            raise ValueError(f"Expected capacity={m} < n={n}.")
        scale, denom = math.log(0.5), n - m
    else:
        if 2 * m > n:
            raise ValueError(f"Expected capacity={m} <= n/2={n / 2}.")
        scale, denom = math.log(2.0), n
    return (
        scale + math.log(M) + 2.0 * math.log(m) + 2.0 * math.log(L)
        - 3.0 * math.log(lam) - 2.0 * math.log(denom)
    )


def sekhari_sigma(
    epsilon: float,
    delta: float,
    *,
    hessian_lipschitz: float,
    lipschitz: float,
    strong_convexity: float,
    n: int,
    capacity: int,
    method: Literal["classic", "zcdp", "analytic"] = "classic",
    tight: bool = False,
) -> float:
    """Output-noise σ for (ε, δ)-unlearning of up to ``capacity`` deletions.

    Sekhari et al. (2021), Algorithm 2: σ = (γ/ε)·√(2 ln(1.25/δ)) (``classic``,
    the paper's; needs ε ≤ 1). ``zcdp`` (G2) and ``analytic`` (G3, Balle & Wang)
    hold for any ε (``docs/accounting.md`` §2, §3).

    Guarantees:
      Certified: every release w̄ + N(0, σ²I) computed from the stored ŵ and
      Hessian with a cumulative delete set of size ≤ capacity is (ε, δ)-close
      to the same procedure run on the retrained model (whose reference output
      is noisy too).
    """
    _validate.positive(epsilon=epsilon)
    _check_delta(delta)
    gamma = sekhari_gamma(
        hessian_lipschitz=hessian_lipschitz,
        lipschitz=lipschitz,
        strong_convexity=strong_convexity,
        n=n,
        capacity=capacity,
        tight=tight,
    )
    return _gaussian_sigma(method, float(epsilon), float(delta), gamma)


def sekhari_capacity(
    *,
    n: int,
    dim: int,
    epsilon: float,
    delta: float,
    strong_convexity: float,
    lipschitz: float,
    hessian_lipschitz: float,
    excess_risk: float,
) -> int:
    """Deletion capacity m_max for a target excess population risk ``a``.

    m_max = ⌊min(n/2, n·√(aελ³/(2ML³))·(2d·ln(1.25/δ))^(−1/4))⌋: the noise
    adds ≤ L·σ·√d to the excess risk (``docs/accounting.md`` §3, derived; it has
    the n√ε/(d ln(1/δ))^{1/4} scaling of Sekhari et al., Thm 4, whose own
    constant is unverified).

    Returns:
      m_max ≥ 0 (integer).
    """
    n = _guards.count("n", n)
    dim = _guards.count("dim", dim)
    _validate.positive(
        epsilon=epsilon,
        strong_convexity=strong_convexity,
        lipschitz=lipschitz,
        hessian_lipschitz=hessian_lipschitz,
        excess_risk=excess_risk,
    )
    _check_delta(delta)
    lam, L, M = float(strong_convexity), float(lipschitz), float(hessian_lipschitz)
    a, eps = float(excess_risk), float(epsilon)
    log_term = math.log(1.25) - math.log(delta)  # 1.25/δ overflows for subnormal δ
    try:
        m = (
            n
            * math.sqrt(a * eps * lam**3 / (2.0 * M * L**3))
            * (2.0 * dim * log_term) ** (-0.25)
        )
        direct = math.isfinite(m) and m > 0.0 and math.isfinite(lam**3 * L**3)
    except (OverflowError, ZeroDivisionError):
        direct = False
    if not direct:  # some factor left float64: the same formula in logs
        log_m = (
            math.log(n)
            + 0.5 * (math.log(a) + math.log(eps) + 3.0 * math.log(lam)
                     - math.log(2.0) - math.log(M) - 3.0 * math.log(L))
            - 0.25 * (math.log(2.0) + math.log(dim) + math.log(log_term))
        )
        m = math.exp(min(log_m, math.log(n)))
    return math.floor(min(n / 2.0, m))


def sekhari_max_deletions(
    sigma: float,
    epsilon: float,
    delta: float,
    *,
    hessian_lipschitz: float,
    lipschitz: float,
    strong_convexity: float,
    n: int,
    method: Literal["classic", "zcdp", "analytic"] = "classic",
) -> int:
    """Largest capacity m whose required σ (:func:`sekhari_sigma`) is ≤ ``sigma``.

    Uses the never-overshoot integer :func:`calibrate`. Returns 0 if even one
    deletion needs more noise.
    """
    _validate.positive(sigma=sigma)
    n = _guards.count("n", n)

    def need(m: int) -> float:
        # γ below float64 needs no noise at all, γ above it infinite noise;
        # in between exactly sekhari_sigma (so the answer is consistent with it).
        log_gamma = _sekhari_log_gamma(
            hessian_lipschitz, lipschitz, strong_convexity, n, int(m), False
        )
        if log_gamma < math.log(_guards.TINY):
            return 0.0
        if log_gamma > 709.0:
            return math.inf
        return sekhari_sigma(
            epsilon,
            delta,
            hessian_lipschitz=hessian_lipschitz,
            lipschitz=lipschitz,
            strong_convexity=strong_convexity,
            n=n,
            capacity=int(m),
            method=method,
        )

    if n < 2:
        return 0
    return max(0, _largest_int(need, float(sigma), lo=1, hi=n // 2))


@dataclasses.dataclass(frozen=True, kw_only=True)
class SekhariConfig:
    """Constants of a Sekhari et al. unlearner (capacity fixed up front).

    Attributes:
      capacity: m, deletions certified before a retrain.
      epsilon, delta: The (ε, δ) the noise σ was calibrated for.
    """

    capacity: int
    epsilon: float
    delta: float

    def __post_init__(self):
        _guards.count("capacity", self.capacity)
        _validate.positive(epsilon=self.epsilon)
        _check_delta(self.delta)


class SekhariState(NamedTuple):
    """Cumulative number of deleted points |U| since the last retrain."""

    num_deleted: int = 0


def sekhari_init() -> SekhariState:
    """State right after training: U = ∅."""
    return SekhariState()


def sekhari_update(state: SekhariState, num_deleted: int = 1) -> SekhariState:
    """|U| ← |U| + k (each release recomputes from ŵ with the cumulative U)."""
    _guards.count("num_deleted", num_deleted)
    return SekhariState(state.num_deleted + int(num_deleted))


def sekhari_reset(state: SekhariState) -> SekhariState:
    """Full retrain: the count and the stored statistics are refreshed."""
    del state
    return sekhari_init()


def sekhari_report(state: SekhariState, config: SekhariConfig) -> CertificateReport:
    """(U) certificate: certified iff |U| ≤ m."""
    ok = state.num_deleted <= config.capacity
    return CertificateReport(
        "sekhari",
        ok,
        config.epsilon if ok else math.inf,
        config.delta,
        float(state.num_deleted),
        float(config.capacity),
        float(config.capacity - state.num_deleted),
        "deleted_points",
    )




def _register():
    from dpunlearn.accounting.currencies.registry import (
        Currency,
        check_keys,
        register,
        removed_count,
    )

    def config(params, eps, delta):
        check_keys("params", params, {"capacity"})
        return SekhariConfig(epsilon=eps, delta=delta, **params)

    register(
        Currency(
            name="sekhari",
            config=config,
            request_keys=frozenset({"removed"}),
            train_keys=frozenset(),
            initial=lambda cfg: sekhari_init(),
            train=lambda cfg, entry: sekhari_init(),
            request=lambda cfg, state, entry: sekhari_update(state, removed_count(entry)),
            retrain=lambda cfg, state, entry: sekhari_reset(state),
            report=lambda cfg, state, eps, delta: sekhari_report(state, cfg),
            budget=lambda cfg: {"capacity": cfg.capacity},
            from_charge=lambda charge: {"removed": int(charge.num_removed)},
        )
    )


_register()

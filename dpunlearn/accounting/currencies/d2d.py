"""Descent-to-Delete (Neel, Roth, Sharifi-Malvajerdi, ALT 2021): per-release output noise."""


from __future__ import annotations

import dataclasses
import math
from typing import Literal, NamedTuple

import numpy as np

from dpunlearn import _validate
from dpunlearn.accounting import _guards

from dpunlearn.accounting.currencies._common import (
    CertificateReport,
    _check_delta,
    _epsilon_report,
    _gaussian_eps,
    _gaussian_sigma,
    _smallest_int,
)

__all__ = [
    "d2d_contraction",
    "d2d_sensitivity",
    "d2d_sigma",
    "d2d_epsilon",
    "d2d_initial_iterations",
    "d2d_min_iterations",
    "d2d_strong_min_iterations",
    "d2d_strong_iterations",
    "d2d_strong_sigma",
    "D2DConfig",
    "D2DState",
    "d2d_init",
    "d2d_update",
    "d2d_reset",
    "d2d_report",
]

# ---------------------------------------------------------------------------
# (c) Descent-to-Delete
# ---------------------------------------------------------------------------


def d2d_contraction(strong_convexity: float, smoothness: float) -> float:
    """γ = (β − m)/(β + m): the contraction of projected GD with η = 2/(β + m).

    γ rounds to 1.0 when m/β < 1e-16; the accountants below use
    ln γ = log1p(−2m/(β + m)) instead, which keeps such ratios.
    """
    _validate.positive(strong_convexity=strong_convexity, smoothness=smoothness)
    m, beta = float(strong_convexity), float(smoothness)
    if beta < m:
        raise ValueError(f"Expected smoothness={beta} >= strong_convexity={m}.")
    return (beta - m) / (beta + m)


def _d2d_log_contraction(strong_convexity: float, smoothness: float) -> float:
    """ln γ after :func:`d2d_contraction`'s checks; −inf when β = m (γ = 0)."""
    d2d_contraction(strong_convexity, smoothness)
    m, beta = float(strong_convexity), float(smoothness)
    ratio = 2.0 / (1.0 + beta / m)  # 1 − γ = 2m/(β + m), without forming β + m
    if ratio == 0.0:
        raise ValueError(
            f"Expected strong_convexity/smoothness={m / beta} above 1e-308: the "
            "contraction γ = (β − m)/(β + m) is exactly 1 in float64 (no progress per step)."
        )
    return math.log1p(-ratio) if ratio < 1.0 else -math.inf


def _d2d_log_sensitivity(
    *, lipschitz: float, strong_convexity: float, smoothness: float, n: int, iterations: int
) -> float:
    """ln Δ, Δ = 4Lγ^I/(mn(1 − γ^I)), in logs: γ^I underflows for large I (Δ
    came out 0.0 at I = 1e9) and mn may overflow. −inf when γ = 0 (Δ = 0)."""
    _validate.positive(lipschitz=lipschitz)
    n = _guards.count("n", n)
    iters = _guards.count("iterations", iterations)
    lg = _d2d_log_contraction(strong_convexity, smoothness)
    if lg == -math.inf:
        return -math.inf
    return (
        math.log(4.0) + math.log(lipschitz) + iters * lg
        - math.log(strong_convexity) - math.log(n) - math.log(-math.expm1(iters * lg))
    )


def d2d_sensitivity(
    *,
    lipschitz: float,
    strong_convexity: float,
    smoothness: float,
    n: int,
    iterations: int,
) -> float:
    """Δ = 4Lγ^I/(mn(1 − γ^I)): distance between the published iterate and retraining.

    Neel et al. 2021, derived in ``docs/accounting.md`` §4, steps 1–5 (steady state E = 2Lγ^I/(mn(1−γ^I)),
    Δ = 2E). n is the size of the smallest dataset from which a point is
    deleted during the sequence. Exactly 0 when β = m (γ = 0: one step lands
    on the optimum).

    Raises:
      ValueError: On invalid arguments, or when Δ > 0 leaves float64 (e.g.
        γ^I underflows for large ``iterations``; the message names it).
    """
    log_sens = _d2d_log_sensitivity(
        lipschitz=lipschitz, strong_convexity=strong_convexity,
        smoothness=smoothness, n=n, iterations=iterations,
    )
    if log_sens == -math.inf:
        return 0.0
    return _guards.positive_result(
        math.exp(log_sens) if log_sens < 709.0 else math.inf,
        "sensitivity",
        f"its log is {log_sens:.6g} at iterations={iterations}, n={n}; use fewer iterations.",
    )


def _d2d_log_noise_sensitivity(variant: str, **kw) -> tuple[str, float]:
    """(calibration method, ln of the sensitivity it is applied to)."""
    if variant not in ("paper", "tight", "analytic"):
        raise ValueError(
            f"Expected variant in ('paper', 'tight', 'analytic'), got {variant!r}."
        )
    log_sens = _d2d_log_sensitivity(**kw)
    if variant == "paper":  # G2 on the shift 2Δ = 8Lγ^I/(mn(1−γ^I))
        return "zcdp", log_sens + math.log(2.0)
    return ("zcdp" if variant == "tight" else "analytic"), log_sens


def d2d_sigma(
    epsilon: float,
    delta: float,
    *,
    lipschitz: float,
    strong_convexity: float,
    smoothness: float,
    n: int,
    iterations: int,
    variant: Literal["paper", "tight", "analytic"] = "paper",
) -> float:
    """Per-release noise σ of Descent-to-Delete (weak variant, published outputs).

    * ``paper``: σ = 4√2·Lγ^I/(mn(1−γ^I)κ), κ = √(ln(1/δ)+ε) − √(ln(1/δ))
      (Neel et al. 2021, Thm 3.1 as implemented by both public codes).
    * ``tight``: half of that (G2 on Δ, ``docs/accounting.md`` §4).
    * ``analytic``: exact Gaussian (G3) on Δ.

    Raises:
      ValueError: On invalid arguments; when β = m (γ = 0: the sensitivity
        is 0 and no noise is needed); when σ leaves float64 (e.g. I = 1e9 makes
        γ^I underflow: the message names ``iterations``).

    Guarantees:
      Certified: each published θ̂ᵢ = θ′ᵢ + N(0, σ²I) is (ε, δ)-indistinguishable
      from retraining, for any number of non-adaptive requests; nothing
      accumulates.
    """
    _validate.positive(epsilon=epsilon)
    _check_delta(delta)
    method, log_sens = _d2d_log_noise_sensitivity(
        variant,
        lipschitz=lipschitz,
        strong_convexity=strong_convexity,
        smoothness=smoothness,
        n=n,
        iterations=iterations,
    )
    if log_sens == -math.inf:
        raise ValueError(
            f"Expected smoothness={smoothness} > strong_convexity={strong_convexity}: "
            "with equal constants the contraction is 0, the sensitivity is 0 and no "
            "noise is needed."
        )
    sens = math.exp(log_sens) if log_sens < 709.0 else math.inf
    if not (_guards.TINY <= sens < math.inf):
        where = "underflows" if log_sens < 0 else "overflows"
        raise ValueError(
            f"The D2D sensitivity {where} float64 (its log is {log_sens:.6g}) at "
            f"iterations={iterations}, n={n}, and so does the noise sigma it needs; "
            + ("use fewer iterations (d2d_epsilon gives the epsilon of a given sigma)."
               if where == "underflows" else "check lipschitz, strong_convexity and n.")
        )
    return _gaussian_sigma(method, float(epsilon), float(delta), sens)


def d2d_epsilon(
    sigma: float,
    delta: float,
    *,
    lipschitz: float,
    strong_convexity: float,
    smoothness: float,
    n: int,
    iterations: int,
    variant: Literal["paper", "tight", "analytic"] = "paper",
) -> float:
    """ε certified per release by D2D noise ``sigma`` (inverse of :func:`d2d_sigma`).

    Only the ratio Δ/σ matters; it is formed in logs when Δ leaves float64,
    so large ``iterations`` give ε → 0, not an error. ε = 0 when β = m.
    """
    _validate.positive(sigma=sigma)
    _check_delta(delta)
    method, log_sens = _d2d_log_noise_sensitivity(
        variant,
        lipschitz=lipschitz,
        strong_convexity=strong_convexity,
        smoothness=smoothness,
        n=n,
        iterations=iterations,
    )
    sens = math.exp(log_sens) if log_sens < 709.0 else math.inf
    if _guards.TINY <= sens < math.inf:
        return _gaussian_eps(method, float(sigma), float(delta), sens)
    log_r = log_sens - math.log(sigma)
    if log_r > 709.0:
        return math.inf
    return _gaussian_eps(method, 1.0, float(delta), math.exp(log_r))


def d2d_initial_iterations(
    *,
    iterations: int,
    diameter: float,
    lipschitz: float,
    strong_convexity: float,
    smoothness: float,
    n: int,
) -> int:
    """Training iterations T ≥ I + ⌈ln(D·m·n·(1−γ^I)/(2L))/ln(1/γ)⌉ (or I).

    Makes the retrained reference land within the steady-state distance E
    (``docs/accounting.md`` §4, step 4; derived). Computed in logs (D·m·n
    overflowed for D = 1e300).

    Raises:
      ValueError: On invalid arguments, or when T exceeds 2**53.
    """
    _validate.positive(diameter=diameter, lipschitz=lipschitz)
    iters = _guards.count("iterations", iterations)
    n = _guards.count("n", n)
    lg = _d2d_log_contraction(strong_convexity, smoothness)
    if lg == -math.inf:
        return iters
    log_arg = (
        math.log(diameter) + math.log(strong_convexity) + math.log(n)
        + math.log(-math.expm1(iters * lg)) - math.log(2.0) - math.log(lipschitz)
    )
    if log_arg <= 0.0:
        return iters
    return _iteration_count(iters + math.ceil(log_arg / -lg), "initial iterations")


def _iteration_count(value: float, what: str) -> int:
    if not value <= _guards.MAX_COUNT:
        raise ValueError(
            f"The {what} exceed 2**53 ({value:.3g}): strong_convexity is too small "
            "relative to smoothness for this target."
        )
    return int(value)


def d2d_min_iterations(
    sigma: float,
    epsilon: float,
    delta: float,
    *,
    lipschitz: float,
    strong_convexity: float,
    smoothness: float,
    n: int,
    variant: Literal["paper", "tight", "analytic"] = "paper",
) -> int:
    """Smallest I (GD steps per update) whose required σ is ≤ ``sigma``.

    Where the required σ would underflow float64 (large I), any ``sigma``
    suffices; the search treats it as 0 instead of failing.
    """
    _validate.positive(sigma=sigma)

    def need(i: int) -> float:
        _, log_sens = _d2d_log_noise_sensitivity(
            variant, lipschitz=lipschitz, strong_convexity=strong_convexity,
            smoothness=smoothness, n=n, iterations=int(i),
        )
        if log_sens < math.log(_guards.TINY):  # γ = 0 or γ^I underflowed
            return 0.0
        return d2d_sigma(
            epsilon,
            delta,
            lipschitz=lipschitz,
            strong_convexity=strong_convexity,
            smoothness=smoothness,
            n=n,
            iterations=int(i),
            variant=variant,
        )

    return _smallest_int(need, float(sigma), lo=1, name="iterations")


def _kappa_strong(epsilon: float, delta: float, k: float) -> float:
    """√(b + (k+1)ε) − √(b + kε), b = 2 ln(2/δ), as ε/(sum of the roots): the
    difference cancels to 0 for tiny ε (ZeroDivisionError before)."""
    base = 2.0 * (math.log(2.0) - math.log(delta))
    return epsilon / (math.sqrt(base + (k + 1.0) * epsilon) + math.sqrt(base + k * epsilon))


def d2d_strong_min_iterations(
    epsilon: float,
    delta: float,
    *,
    dim: int,
    strong_convexity: float,
    smoothness: float,
) -> int:
    """Strong-variant I ≥ ⌈ln(√(2d)/((1−γ)κ₁))/ln(1/γ)⌉ (Neel et al. 2021).

    κ₁ = √(2 ln(2/δ)+ε) − √(2 ln(2/δ)). Constants as in Graph-COM
    ``baseline.py::sequential2`` (``docs/accounting.md`` §4; structure verified,
    constants not re-derived). In logs; 1 when β = m (γ = 0).

    Raises:
      ValueError: On invalid arguments, or when I exceeds 2**53.
    """
    _validate.positive(epsilon=epsilon)
    _check_delta(delta)
    dim = _guards.count("dim", dim)
    lg = _d2d_log_contraction(strong_convexity, smoothness)
    if lg == -math.inf:
        return 1
    m, beta = float(strong_convexity), float(smoothness)
    # ln(1 − γ) = ln(2m/(β + m)) = ln 2 − ln(1 + β/m), in logs for β/m near 1e308
    log_one_minus_gamma = math.log(2.0) - float(np.logaddexp(0.0, math.log(beta) - math.log(m)))
    k1 = _kappa_strong(float(epsilon), float(delta), 0.0)
    val = (0.5 * math.log(2.0 * dim) - log_one_minus_gamma - math.log(k1)) / -lg
    return max(1, _iteration_count(math.ceil(val), "strong-variant iterations"))


def d2d_strong_iterations(
    request: int,
    *,
    iterations: int,
    dim: int,
    delta: float,
    strong_convexity: float,
    smoothness: float,
) -> int:
    """Iterations of the i-th strong-variant update.

    Iᵢ = I + ⌈ln ln(4d·i/δ)/ln(1/γ)⌉ (Graph-COM ``sequential2``), with
    ln(4d·i/δ) from logs (4d·i/δ overflowed for subnormal δ).
    """
    request = _guards.count("request", request)
    iters = _guards.count("iterations", iterations)
    dim = _guards.count("dim", dim)
    _check_delta(delta)
    lg = _d2d_log_contraction(strong_convexity, smoothness)
    if lg == -math.inf:
        return iters
    log_arg = math.log(4.0) + math.log(dim) + math.log(request) - math.log(delta)
    extra = math.log(log_arg) / -lg
    return _iteration_count(iters + math.ceil(extra), "strong-variant iterations")


def d2d_strong_sigma(
    epsilon: float,
    delta: float,
    *,
    lipschitz: float,
    strong_convexity: float,
    smoothness: float,
    n: int,
    iterations: int,
) -> float:
    """Strong-variant σ = 8Lγ^I/(mn(1−γ^I)κ_s), κ_s = √(2ln(2/δ)+3ε) − √(2ln(2/δ)+2ε).

    Pass ``iterations`` = Iᵢ from :func:`d2d_strong_iterations`. This is G2 at
    level (ε/2, (δ/2)e^{−ε}) on the shift 8Lγ^I/(mn(1−γ^I)) (``docs/accounting.md``
    §4).

    Raises:
      ValueError: On invalid arguments or when σ leaves float64 (named).
    """
    _validate.positive(epsilon=epsilon)
    _check_delta(delta)
    log_sens = _d2d_log_sensitivity(
        lipschitz=lipschitz,
        strong_convexity=strong_convexity,
        smoothness=smoothness,
        n=n,
        iterations=iterations,
    )
    kappa = _kappa_strong(float(epsilon), float(delta), 2.0)
    log_sigma = math.log(2.0) + log_sens - math.log(kappa)
    return _guards.positive_result(
        math.exp(log_sigma) if log_sigma < 709.0 else math.inf,
        "sigma",
        f"iterations={iterations}, n={n} and epsilon={epsilon} put it outside float64.",
    )


@dataclasses.dataclass(frozen=True, kw_only=True)
class D2DConfig:
    """Constants of a Descent-to-Delete deployment (weak variant).

    Attributes:
      sigma: Per-release noise σ actually used.
      delta: Certified δ.
      epsilon: Target ε each release must certify.
      lipschitz, strong_convexity, smoothness: L, m, β of the mean loss.
      n: Initial dataset size n₀.
      iterations: GD steps I per update.
      variant: Calibration of σ (see :func:`d2d_sigma`).
    """

    sigma: float
    epsilon: float
    delta: float
    lipschitz: float
    strong_convexity: float
    smoothness: float
    n: int
    iterations: int
    variant: Literal["paper", "tight", "analytic"] = "paper"

    def __post_init__(self):
        _validate.positive(
            sigma=self.sigma, epsilon=self.epsilon, lipschitz=self.lipschitz
        )
        _check_delta(self.delta)
        _guards.count("n", self.n)
        _guards.count("iterations", self.iterations)
        d2d_contraction(self.strong_convexity, self.smoothness)
        _d2d_log_noise_sensitivity(
            self.variant,
            lipschitz=self.lipschitz,
            strong_convexity=self.strong_convexity,
            smoothness=self.smoothness,
            n=self.n,
            iterations=self.iterations,
        )

    def epsilon_at(self, n: int) -> float:
        """ε per release when the smallest dataset so far has ``n`` points."""
        if n < 1:
            return math.inf
        return d2d_epsilon(
            self.sigma,
            self.delta,
            lipschitz=self.lipschitz,
            strong_convexity=self.strong_convexity,
            smoothness=self.smoothness,
            n=int(n),
            iterations=self.iterations,
            variant=self.variant,
        )


class D2DState(NamedTuple):
    """Deletions so far (only n shrinks; nothing else accumulates)."""

    num_deleted: int = 0


def d2d_init() -> D2DState:
    """State after training on the n₀ points."""
    return D2DState()


def d2d_update(state: D2DState, num_deleted: int = 1) -> D2DState:
    """Records ``num_deleted`` more deletions (the k-th from n₀ − k + 1 points).

    D2D's sensitivity bound (``docs/accounting.md`` §4, step 1) is for one point
    per update; a batch of k points moves the optimum up to k times further.
    A request of k rows must therefore be served as k single-point updates
    (:func:`dpunlearn.methods.descent_to_delete` does, releasing the last);
    the report then uses the smallest data set of the sequence.
    """
    _guards.count("num_deleted", num_deleted)
    return D2DState(state.num_deleted + int(num_deleted))


def d2d_reset(state: D2DState) -> D2DState:
    """Kept for symmetry: D2D has no budget to restore. A retrain on the
    remaining data does not bring deleted points back, so ``num_deleted`` is
    kept (n only shrinks)."""
    return state


def d2d_report(state: D2DState, config: D2DConfig) -> CertificateReport:
    """(U) per release: ε of the latest release at n = n₀ − k + 1 after k deletions.

    ``used``/``budget`` are in ε: certified iff ε ≤ ``config.epsilon``.
    """
    n_eff = config.n - max(state.num_deleted - 1, 0)
    eps = config.epsilon_at(n_eff) if state.num_deleted else 0.0
    return _epsilon_report("d2d", eps, config.delta, config.epsilon)




def _register():
    from dpunlearn.accounting.currencies.registry import (
        Currency,
        check_keys,
        register,
        removed_count,
    )

    def config(params, eps, delta):
        check_keys(
            "params", params, {f.name for f in dataclasses.fields(D2DConfig)} - {"epsilon", "delta"}
        )
        return D2DConfig(epsilon=eps, delta=delta, **params)

    register(
        Currency(
            name="d2d",
            config=config,
            request_keys=frozenset({"removed"}),
            train_keys=frozenset(),
            initial=lambda cfg: d2d_init(),
            train=lambda cfg, entry: d2d_init(),
            request=lambda cfg, state, entry: d2d_update(state, removed_count(entry)),
            retrain=lambda cfg, state, entry: d2d_reset(state),
            report=lambda cfg, state, eps, delta: d2d_report(state, cfg),
            budget=lambda cfg: {},
            from_charge=lambda charge: {"removed": int(charge.num_removed)},
        )
    )


_register()

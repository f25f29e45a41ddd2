"""The "finetune" currency (Koloskova et al. 2025): PABI and the hockey-stick tracker.

The bounds are checked against computations that do not use them: explicit
loops, the closed form of linear-Gaussian chains, exact quadrature of the
densities of two one-dimensional chains (with a non-linear, clipped,
adversarial gradient), dp-accounting's RDP accountant and the exact Gaussian
δ(ε). The authors' formulas (stair-lab/certified-unlearning-neural-networks-
icml-2025, ``trainer.py``) are written out below as they compute them, to
show where and by how much they differ. Derivations: ``docs/finetune.md``.
Nothing here is random.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from dpunlearn.accounting import currencies as cur
from dpunlearn.accounting import ledger as L
from dpunlearn.accounting import mechanisms
from dpunlearn.errors import BudgetExceededError


def pabi_kw(c0, c1, eta, lam, steps):
    return {
        "init_clip": c0,
        "grad_clip": c1,
        "step_size": eta,
        "weight_decay": lam,
        "steps": steps,
    }


# ---------------------------------------------------------------------------
# The authors' formulas, as their code computes them (for comparison only)
# ---------------------------------------------------------------------------


def authors_sigma(c0, c1, eta, lam, steps, eps_renyi):
    """``unlearn_sigma_t``, constant schedule: the λ > 0 and λ = 0 branches."""
    if lam:
        rho = 1 - eta * lam
        common = rho**steps
        var = (2 * c0 * common + (2 * c1 / lam) * (1 - common)) ** 2
        return math.sqrt(
            var * eta * lam * (2 - eta * lam) / (2 * eps_renyi * (1 - common**2))
        )
    var = (2 * c0 + 2 * c1 * eta * steps) ** 2
    return math.sqrt(var / (4 * eps_renyi * steps))


def authors_tracker(c0, c1, eta, lam, sigmas):
    """``dp_accountant``'s intermediate ε_R: ½[ρ^T·2C₀ + Σρ^{T−1−t}·2ηC₁]²/Σρ^{2(T−1−t)}σ_t²."""
    rho = 1 - eta * lam
    steps = len(sigmas)
    num = rho**steps * 2 * c0 + sum(
        rho ** (steps - 1 - t) * 2 * eta * c1 for t in range(steps)
    )
    den = sum(rho ** (2 * (steps - 1 - t)) * s**2 for t, s in enumerate(sigmas))
    return 0.5 * num**2 / den


def authors_epsilon(eps_renyi, delta):
    """The final conversion: ``min_α ε_R + ln((α−1)/α) − (ln δ + ln α)/(α−1)``."""
    a = np.linspace(1.001, 1000, 10000)
    return float(
        np.min(eps_renyi - (np.log(delta) + np.log(a)) / (a - 1) + np.log((a - 1) / a))
    )


# ---------------------------------------------------------------------------
# Closed forms and worked values
# ---------------------------------------------------------------------------


CONFIGS = [
    (1.0, 1.0, 0.01, 0.0, 100),
    (1.0, 1.0, 0.01, 1.0, 70),
    (0.01, 10.0, 1e-4, 750.0, 6),
    (0.3, 2.0, 0.05, 3.0, 17),
    (2.0, 0.1, 0.2, 0.0, 1),
]


@pytest.mark.parametrize("c0,c1,eta,lam,steps", CONFIGS)
def test_shift_and_noise_weight_match_explicit_loops(c0, c1, eta, lam, steps):
    rho = 1 - eta * lam
    z = 2 * c0  # the diameter, pushed through T steps that may add 2ηC₁ each
    w = 0.0
    for t in range(steps):
        z = rho * z + 2 * eta * c1
        w += rho ** (2 * t)
    assert cur.pabi_shift(**pabi_kw(c0, c1, eta, lam, steps)) == pytest.approx(
        z, rel=1e-12
    )
    assert cur.pabi_noise_weight(
        step_size=eta, weight_decay=lam, steps=steps
    ) == pytest.approx(w, rel=1e-12)
    sigma = 0.37
    r = cur.pabi_rdp_coefficient(sigma=sigma, **pabi_kw(c0, c1, eta, lam, steps))
    assert r == pytest.approx(z**2 / (2 * sigma**2 * w), rel=1e-12)
    # The code's own tracker is the same R (it does not carry the factor 2).
    assert authors_tracker(c0, c1, eta, lam, [sigma] * steps) == pytest.approx(
        r, rel=1e-10
    )
    orders = np.array([1.01, 2.0, 7.5, 1e4])
    np.testing.assert_allclose(
        cur.pabi_rdp(orders, sigma=sigma, **pabi_kw(c0, c1, eta, lam, steps)),
        orders * r,
    )


@pytest.mark.parametrize(
    "c0,c1,eta,lam,steps,shift,sigma",
    [
        (1.0, 1.0, 0.01, 0.0, 100, 4.0, 0.28284271247461906),
        (1.0, 1.0, 0.01, 1.0, 70, 2.0, 0.22957749986103246),
        (0.01, 10.0, 1e-4, 750.0, 6, 0.022490679672851566, 7.752032607662585e-3),
    ],
)
def test_noise_scale_for_r_equal_one_matches_the_closed_form(
    c0, c1, eta, lam, steps, shift, sigma
):
    kw = pabi_kw(c0, c1, eta, lam, steps)
    s = cur.pabi_shift(**kw)
    w = cur.pabi_noise_weight(step_size=eta, weight_decay=lam, steps=steps)
    assert s == pytest.approx(shift, rel=1e-12)
    assert s / math.sqrt(2 * w) == pytest.approx(
        sigma, rel=1e-12
    )  # σ = S/√(2WR), R = 1
    # The calibration for the ε that R = 1 converts to lands on it.
    target = cur.pabi_epsilon(1.0, 1e-5)
    got = cur.pabi_min_sigma(**kw, target_epsilon=target, delta=1e-5)
    assert got == pytest.approx(sigma, rel=1e-9)


@pytest.mark.parametrize(
    "r,delta,eps",
    [
        (1.0, 1e-5, 7.0771966958063395),
        (1.0, 1e-6, 7.766216625311721),
        (0.5, 1e-5, 4.728386984943314),
    ],
)
def test_conversion_keeps_the_order(r, delta, eps):
    assert cur.pabi_epsilon(r, delta) == pytest.approx(eps, rel=1e-9)
    classic = r + 2 * math.sqrt(r * math.log(1 / delta))
    assert cur.pabi_epsilon(r, delta, conversion="classic") == pytest.approx(
        classic, rel=1e-12
    )
    # The continuous minimum over α of the curve αR, against a brute-force grid.
    a = 1 + np.logspace(-4, 6, 200_001)
    grid = np.min(a * r + np.log1p(-1 / a) - (np.log(delta) + np.log(a)) / (a - 1))
    assert grid - 1e-6 <= cur.pabi_epsilon(r, delta) <= grid + 1e-12
    assert cur.pabi_epsilon(0.0, delta) == 0.0


def test_dp_accounting_agrees_on_the_gaussian_with_the_same_curve():
    from dp_accounting import dp_event
    from dp_accounting.rdp import rdp_privacy_accountant as rdp_acc

    orders = np.concatenate([np.linspace(1.02, 10, 900), np.linspace(10.05, 300, 5000)])
    for c0, c1, eta, lam, steps in CONFIGS:
        kw = pabi_kw(c0, c1, eta, lam, steps)
        s = cur.pabi_shift(**kw)
        w = cur.pabi_noise_weight(step_size=eta, weight_decay=lam, steps=steps)
        for sigma in (0.5 * s, 2 * s, 8 * s):
            ours = cur.pabi_epsilon(cur.pabi_rdp_coefficient(sigma=sigma, **kw), 1e-5)
            acc = rdp_acc.RdpAccountant(orders)
            # RDP α/(2z²) with z = σ√W/S is exactly αR.
            acc.compose(
                dp_event.GaussianDpEvent(noise_multiplier=sigma * math.sqrt(w) / s)
            )
            theirs = acc.get_epsilon(1e-5)
            assert ours <= theirs + 1e-12
            assert ours >= theirs * (1 - 1e-4)


# ---------------------------------------------------------------------------
# The authors' code: the factor 2 and the dropped order
# ---------------------------------------------------------------------------


def test_authors_lambda_zero_sigma_is_sqrt2_too_small_and_delivers_2r():
    kw = pabi_kw(1.0, 1.0, 0.01, 0.0, 100)
    theirs = authors_sigma(1.0, 1.0, 0.01, 0.0, 100, eps_renyi=1.0)
    ours = cur.pabi_shift(**kw) / math.sqrt(
        2 * cur.pabi_noise_weight(step_size=0.01, steps=100)
    )
    assert theirs == pytest.approx(0.2, rel=1e-12) and ours == pytest.approx(
        0.28284271, rel=1e-8
    )
    assert ours / theirs == pytest.approx(math.sqrt(2), rel=1e-12)
    # Their own tracker, and ours, at their σ: 2R, not R.
    assert authors_tracker(1.0, 1.0, 0.01, 0.0, [theirs] * 100) == pytest.approx(
        2.0, rel=1e-12
    )
    assert cur.pabi_rdp_coefficient(sigma=theirs, **kw) == pytest.approx(2.0, rel=1e-12)
    # Their λ > 0 branch is consistent with ours ...
    assert authors_sigma(1.0, 1.0, 0.01, 1.0, 70, 1.0) == pytest.approx(
        0.22957749986, rel=1e-9
    )
    assert cur.pabi_rdp_coefficient(
        sigma=authors_sigma(1.0, 1.0, 0.01, 1.0, 70, 1.0),
        **pabi_kw(1.0, 1.0, 0.01, 1.0, 70),
    ) == pytest.approx(1.0, rel=1e-9)
    # ... and its λ → 0 limit is our λ = 0 value, not theirs.
    assert authors_sigma(1.0, 1.0, 0.01, 1e-6, 100, 1.0) == pytest.approx(
        ours, rel=1e-5
    )


def gaussian_pair_delta(eps, r):
    """Exact δ(ε) of two Gaussians whose Rényi curve is exactly α·R, R = r²/2."""
    return mechanisms.gaussian_delta(eps, sigma=1.0, sensitivity=r)


@pytest.mark.parametrize(
    "r,theirs_delta", [(1.0, 0.2854), (0.5, 0.2375), (0.1, 0.1369)]
)
def test_authors_conversion_drops_the_order(r, theirs_delta):
    delta = 1e-5
    theirs = authors_epsilon(r, delta)
    assert theirs == pytest.approx(
        r + 0.0036092796, abs=1e-8
    )  # α = 1000, the grid's end
    ours = cur.pabi_epsilon(r, delta)
    assert ours > 4 * theirs
    # Two Gaussians with D_α = αR exactly (the tight instance): at their ε
    # the exact δ is orders of magnitude above the target; at ours it is below.
    assert gaussian_pair_delta(theirs, math.sqrt(2 * r)) == pytest.approx(
        theirs_delta, abs=1e-4
    )
    assert gaussian_pair_delta(ours, math.sqrt(2 * r)) <= delta
    if r == 1.0:  # both discrepancies together: λ = 0, their σ gives 2R
        assert gaussian_pair_delta(theirs, 2.0) == pytest.approx(0.5092, abs=1e-4)


# ---------------------------------------------------------------------------
# Independent computations: linear closed form, exact 1-D quadrature
# ---------------------------------------------------------------------------


def linear_renyi(alpha, c0, eta, lam, steps, sigma):
    """D_α after T steps of θ ← ρθ − ηc + N(0, σ²) from ±C₀ (a linear loss,
    constant clipped gradient c): two Gaussians, variance σ²Σρ^{2j}, means
    2C₀ρ^T apart. Closed form, computed here without the library."""
    rho = 1 - eta * lam
    var = sigma**2 * sum(rho ** (2 * j) for j in range(steps))
    gap = 2 * c0 * rho**steps
    return alpha * gap**2 / (2 * var)


@pytest.mark.parametrize("c0,c1,eta,lam,steps", CONFIGS)
def test_linear_instance_is_below_the_bound_and_tight_as_c1_vanishes(
    c0, c1, eta, lam, steps
):
    sigma = 0.4
    for alpha in (1.5, 2.0, 10.0):
        exact = linear_renyi(alpha, c0, eta, lam, steps, sigma)
        bound = alpha * cur.pabi_rdp_coefficient(
            sigma=sigma, **pabi_kw(c0, c1, eta, lam, steps)
        )
        assert exact <= bound * (1 + 1e-12)
        tiny = alpha * cur.pabi_rdp_coefficient(
            sigma=sigma, **pabi_kw(c0, 1e-12, eta, lam, steps)
        )
        assert exact == pytest.approx(
            tiny, rel=1e-9
        )  # attained: no constant can be saved


def test_authors_lambda_zero_sigma_fails_in_the_linear_instance():
    """With a negligible gradient term, their σ gives an exact D_α of 2α·R_target."""
    c0, c1, eta, steps = 1.0, 1e-9, 0.01, 100
    theirs = authors_sigma(c0, c1, eta, 0.0, steps, eps_renyi=1.0)
    for alpha in (2.0, 8.0):
        assert linear_renyi(alpha, c0, eta, 0.0, steps, theirs) == pytest.approx(
            2 * alpha, rel=1e-6
        )


def propagate(start, mean_fn, sigma, steps, grid):
    """Density after ``steps`` steps of x ← mean_fn(x) + N(0, σ²) from a point
    mass at ``start``, on ``grid`` (the first step is exact; later steps are
    Riemann sums of the Gaussian kernel)."""
    h = grid[1] - grid[0]
    norm = 1 / (sigma * math.sqrt(2 * math.pi))
    p = norm * np.exp(-0.5 * ((grid - mean_fn(np.array([start]))[0]) / sigma) ** 2)
    kernel = (
        norm
        * np.exp(-0.5 * ((grid[:, None] - mean_fn(grid)[None, :]) / sigma) ** 2)
        * h
    )
    for _ in range(steps - 1):
        p = kernel @ p
    return p


def quad_renyi(p, q, h, alpha):
    with np.errstate(divide="ignore"):
        v = alpha * np.log(p) + (1 - alpha) * np.log(q)
    m = np.max(v[np.isfinite(v)])
    return (m + math.log(np.sum(np.exp(v - m)) * h)) / (alpha - 1)


def quad_grid(c0, c1, eta, lam, steps, sigma, points=2001):
    kw = pabi_kw(c0, c1, eta, lam, steps)
    s = cur.pabi_shift(**kw)
    sd = sigma * math.sqrt(
        cur.pabi_noise_weight(step_size=eta, weight_decay=lam, steps=steps)
    )
    half = s / 2 + 8 * s + 12 * sd  # covers the tilted laws of orders up to 8
    return np.linspace(-half, half, points)


def test_quadrature_reproduces_the_linear_closed_form():
    c0, c1, eta, lam, steps, sigma = 1.0, 1.0, 0.05, 1.0, 20, 0.5
    grid = quad_grid(c0, c1, eta, lam, steps, sigma)
    rho = 1 - eta * lam
    mean_fn = lambda x: rho * x - eta * 0.7 * c1
    p = propagate(c0, mean_fn, sigma, steps, grid)
    q = propagate(-c0, mean_fn, sigma, steps, grid)
    h = grid[1] - grid[0]
    assert np.sum(p) * h == pytest.approx(1.0, abs=1e-9)
    for alpha in (1.5, 2.0, 4.0, 8.0):
        exact = linear_renyi(alpha, c0, eta, lam, steps, sigma)
        assert quad_renyi(p, q, h, alpha) == pytest.approx(exact, rel=1e-7)


@pytest.mark.parametrize(
    "c0,c1,eta,lam,steps,width,sigma",
    [
        (1.0, 1.0, 0.1, 0.0, 10, 0.3, 0.8),
        (1.0, 1.0, 0.05, 1.0, 20, 0.3, 0.5),
        (0.5, 2.0, 0.05, 2.0, 15, 0.2, 0.4),
    ],
)
def test_exact_divergence_of_nonlinear_chains_is_below_the_bound(
    c0, c1, eta, lam, steps, width, sigma
):
    """Two chains from ±C₀ under φ(x) = ρx + ηC₁·tanh(x/w): the clipped
    gradient of a concave loss, which pushes them apart (no convexity)."""
    rho = 1 - eta * lam
    phi = lambda x: rho * x + eta * c1 * np.tanh(x / width)
    grid = quad_grid(c0, c1, eta, lam, steps, sigma)
    h = grid[1] - grid[0]
    p = propagate(c0, phi, sigma, steps, grid)
    q = propagate(-c0, phi, sigma, steps, grid)  # the mirror image: D(p‖q) = D(q‖p)
    r = cur.pabi_rdp_coefficient(sigma=sigma, **pabi_kw(c0, c1, eta, lam, steps))
    ratios = [quad_renyi(p, q, h, a) / (a * r) for a in (1.5, 2.0, 4.0, 8.0)]
    assert max(ratios) <= 0.45  # below 1 with room: the bound is never exceeded
    assert min(ratios) > 0.05  # and the instance is not trivial
    for delta in (1e-2, 1e-3):
        eps = cur.pabi_epsilon(r, delta)
        assert np.sum(np.maximum(p - math.exp(eps) * q, 0.0)) * h <= delta


# ---------------------------------------------------------------------------
# Calibration never overshoots; the shift allocation
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("c0,c1,eta,lam,steps", CONFIGS)
@pytest.mark.parametrize("conversion", ["improved", "classic"])
def test_pabi_sigma_never_overshoots(c0, c1, eta, lam, steps, conversion):
    kw = pabi_kw(c0, c1, eta, lam, steps)
    for target, delta in ((1.0, 1e-5), (0.1, 1e-3), (8.0, 1e-8)):
        sigma = cur.pabi_min_sigma(
            **kw, target_epsilon=target, delta=delta, conversion=conversion
        )

        def eps(s, delta=delta):
            return cur.pabi_epsilon(
                cur.pabi_rdp_coefficient(sigma=s, **kw), delta, conversion=conversion
            )

        assert eps(sigma) <= target
        assert eps(np.nextafter(sigma, 0.0)) > target


def test_constant_noise_allocation_is_feasible_and_decreasing_noise_need_not_be():
    rng = np.random.default_rng(0)
    for _ in range(50):
        c0, c1 = rng.uniform(0.01, 3, size=2)
        eta = rng.uniform(1e-3, 0.3)
        lam = rng.choice([0.0, rng.uniform(0, 0.99 / eta)])
        steps = int(rng.integers(1, 300))
        a = cur.pabi_allocation(
            init_clip=c0,
            grad_clip=c1,
            step_size=eta,
            weight_decay=lam,
            sigmas=np.full(steps, 0.3),
        )
        assert (
            a.feasible
            and a.shifts[0] == 2 * c0
            and abs(a.shifts[-1]) < 1e-9 * (2 * c0 + 2 * eta * c1 * steps)
        )
        want = cur.pabi_rdp_coefficient(sigma=0.3, **pabi_kw(c0, c1, eta, lam, steps))
        assert a.rdp_coefficient == pytest.approx(want, rel=1e-9)
    # The authors' "decreasing" schedule σ_t² ∝ ρ^{−2(T−1−t)}: its optimal
    # allocation drives an intermediate shift negative, where the lemmas stop.
    rho, steps = 0.99, 200
    sig = [rho ** -(steps - 1 - t) for t in range(steps)]
    a = cur.pabi_allocation(
        init_clip=0.1, grad_clip=1.0, step_size=0.01, weight_decay=1.0, sigmas=sig
    )
    assert not a.feasible and a.shifts.min() == pytest.approx(-1.165, abs=1e-3)


def test_default_steps_minimise_the_bound_without_weight_decay():
    c0, c1, eta = 1.0, 0.7, 0.03
    t = cur.pabi_steps(init_clip=c0, grad_clip=c1, step_size=eta)
    assert t == math.ceil(c0 / (eta * c1))
    r = [
        cur.pabi_rdp_coefficient(sigma=1.0, **pabi_kw(c0, c1, eta, 0.0, k))
        for k in range(1, 200)
    ]
    best = int(np.argmin(r)) + 1
    assert abs(best - c0 / (eta * c1)) <= 1


# ---------------------------------------------------------------------------
# Model clipping: the hockey-stick tracker
# ---------------------------------------------------------------------------


def test_tracker_is_the_gaussian_mechanism_recursion():
    c, sigma, eps = 0.8, 1.3, 0.7
    r = 2 * c / sigma
    d = 1.0
    for t in range(1, 6):
        eps_t = math.log1p(math.expm1(eps) / d)
        d *= mechanisms.gaussian_delta(eps_t, sigma=1.0, sensitivity=r)
        got = cur.contractive_delta(eps, model_clip=c, sigma=sigma, steps=t)
        assert got == pytest.approx(d, rel=1e-10)
        if t == 1:  # one Gaussian release of sensitivity 2C
            assert got == pytest.approx(
                mechanisms.gaussian_delta(eps, sigma=sigma, sensitivity=2 * c),
                rel=1e-12,
            )
    # Monotone: in T, σ and ε.
    base = cur.contractive_log_delta(eps, model_clip=c, sigma=sigma, steps=4)
    assert cur.contractive_log_delta(eps, model_clip=c, sigma=sigma, steps=5) < base
    assert (
        cur.contractive_log_delta(eps, model_clip=c, sigma=1.1 * sigma, steps=4) < base
    )
    assert (
        cur.contractive_log_delta(1.1 * eps, model_clip=c, sigma=sigma, steps=4) < base
    )
    # Deep below float64's range, in log space.
    assert cur.contractive_log_delta(eps, model_clip=c, sigma=sigma, steps=400) < -800


@pytest.mark.parametrize(
    "c0,c,eta,lam,steps,sigma",
    [
        (1.0, 1.0, 0.1, 0.0, 1, 1.0),
        (1.0, 1.0, 0.1, 0.0, 4, 1.0),
        (2.0, 0.5, 0.2, 0.5, 6, 0.45),
    ],
)
def test_exact_hockey_stick_of_projected_chains_is_below_the_tracker(
    c0, c, eta, lam, steps, sigma
):
    """Two chains from ±C₀ under x ← Π_C(ρx + 3η·tanh(x/0.3)) + N(0, σ²):
    the projection after an adversarial push, the noise after the projection."""
    rho = 1 - eta * lam
    mean_fn = lambda x: np.clip(rho * x + 3 * eta * np.tanh(x / 0.3), -c, c)
    grid = np.linspace(-c - 14 * sigma, c + 14 * sigma, 4001)
    h = grid[1] - grid[0]
    p = propagate(c0, mean_fn, sigma, steps, grid)
    q = propagate(-c0, mean_fn, sigma, steps, grid)
    for eps in (0.1, 0.5, 1.0, 2.0):
        exact = float(np.sum(np.maximum(p - math.exp(eps) * q, 0.0)) * h)
        bound = cur.contractive_delta(eps, model_clip=c, sigma=sigma, steps=steps)
        assert exact <= bound * (1 + 1e-4) + 1e-12
        if steps == 1:  # the first step is attained: starts beyond the ball map to ±C
            assert exact == pytest.approx(bound, rel=1e-4)


def test_contractive_calibrations_never_overshoot():
    c, eps, delta = 1.0, 1.0, 1e-5
    for steps in (1, 3, 20):
        sigma = cur.contractive_min_sigma(
            model_clip=c, steps=steps, target_epsilon=eps, delta=delta
        )

        def ok(s, steps=steps):
            return cur.contractive_log_delta(eps, model_clip=c, sigma=s, steps=steps)

        assert ok(sigma) <= math.log(delta) < ok(np.nextafter(sigma, 0.0))
        if steps == 1:  # one step is the analytic Gaussian mechanism
            assert sigma == pytest.approx(
                mechanisms.gaussian_sigma_analytic(eps, delta, 2 * c), rel=1e-9
            )
    t = cur.contractive_min_steps(
        model_clip=c, sigma=0.8, target_epsilon=eps, delta=delta
    )
    assert cur.contractive_delta(eps, model_clip=c, sigma=0.8, steps=t) <= delta
    assert cur.contractive_delta(eps, model_clip=c, sigma=0.8, steps=t - 1) > delta
    e = cur.contractive_epsilon(delta, model_clip=c, sigma=1.5, steps=4)
    assert cur.contractive_delta(e, model_clip=c, sigma=1.5, steps=4) <= delta
    assert (
        cur.contractive_delta(np.nextafter(e, 0.0), model_clip=c, sigma=1.5, steps=4)
        > delta
    )
    with pytest.raises(ValueError, match="unreachable"):
        cur.contractive_min_steps(
            model_clip=c, sigma=1e-3, target_epsilon=eps, delta=delta, max_steps=5
        )


# ---------------------------------------------------------------------------
# The currency: config, ledger round trip, refusals
# ---------------------------------------------------------------------------


def test_config_validation():
    with pytest.raises(ValueError, match="needs grad_clip"):
        cur.FinetuneConfig(init_clip=1.0, step_size=0.1)
    with pytest.raises(ValueError, match="does not use model_clip"):
        cur.FinetuneConfig(init_clip=1.0, step_size=0.1, grad_clip=1.0, model_clip=1.0)
    with pytest.raises(ValueError, match="needs model_clip"):
        cur.FinetuneConfig(variant="model_clip", init_clip=1.0, step_size=0.1)
    with pytest.raises(ValueError, match="< 1"):
        cur.FinetuneConfig(
            init_clip=1.0, step_size=0.1, grad_clip=1.0, weight_decay=10.0
        )
    with pytest.raises(ValueError, match="variant"):
        cur.FinetuneConfig(variant="both", init_clip=1.0, step_size=0.1, grad_clip=1.0)
    with pytest.raises(ValueError, match="conversion"):
        cur.FinetuneConfig(
            init_clip=1.0, step_size=0.1, grad_clip=1.0, conversion="exact"
        )
    with pytest.raises(ValueError, match="sigmas"):
        cur.pabi_allocation(init_clip=1.0, grad_clip=1.0, step_size=0.1, sigmas=[])
    with pytest.raises(ValueError, match="steps"):
        cur.pabi_shift(init_clip=1.0, grad_clip=1.0, step_size=0.1, steps=0)


@pytest.mark.parametrize("variant", ["gradient_clip", "model_clip"])
def test_ledger_round_trip_refusal_and_retrain(tmp_path, variant):
    params = (
        {"init_clip": 1.0, "grad_clip": 1.0, "step_size": 0.05, "weight_decay": 1.0}
        if variant == "gradient_clip"
        else {
            "variant": "model_clip",
            "init_clip": 1.0,
            "model_clip": 0.5,
            "step_size": 0.05,
        }
    )
    cfg = cur.FinetuneConfig(**params)
    steps, eps, delta = 12, 1.0, 1e-5
    sigma = cur.finetune_min_sigma(cfg, steps=steps, target_epsilon=eps, delta=delta)
    path = tmp_path / "l.jsonl"
    led = L.Ledger.create(
        path, currency="finetune", params=params, target_epsilon=eps, target_delta=delta
    )
    written = json.loads(path.read_text().splitlines()[0])["params"]
    assert written["conversion"] == "improved" and written[
        "weight_decay"
    ] == params.get("weight_decay", 0.0)
    s = led.train(dp=None)
    assert s.unlearning.certified and s.unlearning.epsilon == 0.0
    for removed in (1, 5, 1):  # nothing accumulates, whatever the request size
        s = led.request(dp=None, removed=removed, steps=steps, sigma=sigma)
        assert s.unlearning.certified and s.unlearning.epsilon <= eps
        assert s.unlearning.epsilon == pytest.approx(
            cfg.epsilon(steps=steps, sigma=sigma, delta=delta)
        )
    before = path.read_bytes()
    with pytest.raises(BudgetExceededError, match="sigma >= ") as refused:
        led.request(dp=None, removed=1, steps=steps, sigma=sigma / 4)
    assert refused.value.ledger == "U"
    assert path.read_bytes() == before  # a refusal leaves the file unchanged
    s = led.retrain(dp=None)
    assert s.unlearning.epsilon == 0.0 and s.num_retrains == 1
    replayed, _ = L.replay_file(path)
    assert replayed == s
    assert dataclasses.asdict(
        cur.get("finetune").config(written, eps, delta)
    ) == dataclasses.asdict(cur.FinetuneConfig(**params))
    with pytest.raises(ValueError, match="sigma"):
        led.request(dp=None, removed=1, steps=steps)

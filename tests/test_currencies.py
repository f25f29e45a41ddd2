"""Tests for dpunlearn.accounting.currencies (unlearning currencies).

Expected values are the [calc]/[run] reference values of the research notes
(accountant_reference_values.json ids and algorithms.md §1.5, §3, §4, §9,
§11.7, §12), copied here so that the suite runs from a clean clone.
"""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dpunlearn.accounting import currencies as cur
from dpunlearn.accounting.currencies import _common as cur_common
from dpunlearn.accounting.currencies import langevin as cur_langevin
from dpunlearn.accounting.currencies import noisy_sgd as cur_sgd
from dpunlearn.accounting import mechanisms as mech

HSET = settings(derandomize=True, max_examples=25, deadline=None)
M_LOGISTIC = 1.0 / (6.0 * math.sqrt(3.0))  # |ℓ'''| bound of the logistic loss


def langevin_cfg(n=10_000, lam=1e-6, sigma=0.03, **kw):
    m, _, eta = cur.langevin_constants(n=n, lam=lam, loss_smoothness=0.25)
    return cur.LangevinConfig(
        strong_convexity=m, step_size=eta, sigma=sigma, gradient_clip=1.0, n=n, **kw
    )


def wsgd_cfg(n=10_000, lam=1e-6, sigma=0.03, batch_size=None, **kw):
    m, _, eta = cur.langevin_constants(n=n, lam=lam, loss_smoothness=0.25)
    return cur.WassersteinConfig(
        strong_convexity=m,
        step_size=eta,
        sigma=sigma,
        gradient_clip=1.0,
        n=n,
        batch_size=batch_size or n,
        **kw,
    )


# ---------------------------------------------------------------------------
# Guo et al. certified removal
# ---------------------------------------------------------------------------


def test_cr_reference_values():
    # algorithms.md §1.5 / §9 and JSON `certified_removal_budget`.
    assert cur.cr_constant(1e-4) == pytest.approx(4.385, abs=5e-4)
    assert cur.cr_budget(sigma=10, epsilon=1, delta=1e-4, method="paper") == pytest.approx(
        2.280, abs=5e-4
    )
    assert cur.cr_constant(1e-5) == pytest.approx(4.882, abs=5e-4)
    assert cur.cr_budget(sigma=10, epsilon=1, delta=1e-5, method="paper") == pytest.approx(
        2.048218080181754, rel=1e-12
    )
    # algorithms.md §11.7: the analytic Gaussian allows 3.139 at delta=1e-4.
    assert cur.cr_budget(
        sigma=10, epsilon=1, delta=1e-4, method="analytic"
    ) == pytest.approx(3.139, abs=5e-4)


@HSET
@given(sigma=st.floats(0.1, 100), eps=st.floats(0.01, 1.0), logd=st.floats(-12, -2))
def test_cr_budgets_are_valid_and_analytic_never_overshoots(sigma, eps, logd):
    delta = 10.0**logd
    paper = cur.cr_budget(sigma=sigma, epsilon=eps, delta=delta)
    analytic = cur.cr_budget(sigma=sigma, epsilon=eps, delta=delta, method="analytic")
    # Both are certified: the exact Gaussian delta at that sensitivity is <= delta.
    assert mech.gaussian_delta(eps, sigma=sigma, sensitivity=paper) <= delta
    assert mech.gaussian_delta(eps, sigma=sigma, sensitivity=analytic) <= delta
    # The analytic budget is the largest one (tight), so at least the paper's.
    assert analytic >= paper
    assert (
        mech.gaussian_delta(eps, sigma=sigma, sensitivity=analytic * (1 + 1e-6)) > delta
    )


def test_cr_paper_method_refuses_large_epsilon():
    with pytest.raises(ValueError, match="epsilon"):
        cur.cr_budget(sigma=10, epsilon=2.0, delta=1e-5, method="paper")
    with pytest.raises(ValueError, match="epsilon"):
        cur.CertifiedRemovalConfig(sigma=10, epsilon=2.0, delta=1e-5, method="paper")
    # analytic is fine there
    assert cur.cr_budget(sigma=10, epsilon=2.0, delta=1e-5, method="analytic") > 0


@pytest.mark.parametrize("method", ["paper", "analytic"])
def test_cr_sigma_and_epsilon_invert_budget(method):
    beta = cur.cr_budget(sigma=7.0, epsilon=0.5, delta=1e-6, method=method)
    assert cur.cr_sigma(beta, epsilon=0.5, delta=1e-6, method=method) == pytest.approx(
        7.0, rel=1e-9
    )
    assert cur.cr_epsilon(beta, sigma=7.0, delta=1e-6, method=method) == pytest.approx(
        0.5, rel=1e-6
    )
    assert cur.cr_epsilon(0.0, sigma=7.0, delta=1e-6, method=method) == 0.0


def test_supported_removals():
    assert cur.supported_removals([0.5] * 7, 2.280) == 4
    assert cur.supported_removals([0.5] * 7, 2.0) == 4  # equality is within budget
    assert cur.supported_removals([], 1.0) == 0
    assert cur.supported_removals([3.0, 0.1], 2.0) == 0
    rng = np.random.default_rng(0)
    b = rng.exponential(0.1, size=500)
    loop = 0
    total = 0.0
    for x in b:
        total += x
        if total > 5.0:
            break
        loop += 1
    assert cur.supported_removals(b, 5.0) == loop
    with pytest.raises(ValueError, match="bounds"):
        cur.supported_removals([0.1, -0.2], 1.0)
    with pytest.raises(ValueError, match="budget"):
        cur.supported_removals([0.1], -1.0)


def test_cr_state_accumulates_and_resets():
    cfg = cur.CertifiedRemovalConfig(sigma=10, epsilon=1, delta=1e-4, method="paper")
    s = cur.cr_init()
    for _ in range(4):
        s = cur.cr_update(s, 0.5)
    r = cur.cr_report(s, cfg)
    assert r.certified and r.used == pytest.approx(2.0)
    assert r.remaining == pytest.approx(0.2803009464393384, rel=1e-9)
    assert r.epsilon <= 1.0
    s = cur.cr_update(s, 0.5)
    r = cur.cr_report(s, cfg)
    assert not r.certified and r.epsilon == math.inf and r.remaining < 0
    s = cur.cr_reset(s)
    assert s == cur.cr_init() and cur.cr_report(s, cfg).remaining == pytest.approx(
        cfg.budget
    )


def test_cr_training_residual_starts_beta_and_set_mode_replaces_it():
    cfg = cur.CertifiedRemovalConfig(sigma=10, epsilon=1, delta=1e-4, method="paper")
    assert cur.cr_init() == cur.cr_init(0.0) == cur.CertifiedRemovalState()
    s = cur.cr_init(0.25)  # a certified model's beta starts at its training residual
    assert s.residual == 0.25 and s.num_removed == 0
    assert cur.cr_report(s, cfg).remaining == pytest.approx(cfg.budget - 0.25)
    s = cur.cr_update(s, 0.5)  # "add" (default): Algorithm 2
    s = cur.cr_update(s, 0.5, mode="add")
    assert s.residual == pytest.approx(1.25) and s.num_removed == 2
    # "set": the residual-correcting step's bound replaces beta.
    s = cur.cr_update(s, 0.1, 3, mode="set")
    assert s == cur.CertifiedRemovalState(0.1, 5)
    assert cur.cr_report(s, cfg).used == 0.1
    s = cur.cr_update(s, 0.05)
    assert s.residual == pytest.approx(0.15)
    # A retrain resets beta to the new model's training residual.
    assert cur.cr_reset(s, 0.125) == cur.CertifiedRemovalState(0.125, 0)
    assert cur.cr_reset(s) == cur.cr_init()
    # Training residual alone over the budget: not certified.
    assert not cur.cr_report(cur.cr_init(cfg.budget * 1.01), cfg).certified


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: cur.cr_update(cur.cr_init(), 0.1, mode="sum"), "mode"),
        (lambda: cur.cr_update(cur.cr_init(), -0.1, mode="set"), "residual_bound"),
        (lambda: cur.cr_init(-1e-3), "training_residual"),
        (lambda: cur.cr_init(float("inf")), "training_residual"),
        (lambda: cur.cr_reset(cur.cr_init(), float("nan")), "training_residual"),
    ],
)
def test_cr_state_rejects_bad_modes_and_residuals(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ---------------------------------------------------------------------------
# Sekhari et al.
# ---------------------------------------------------------------------------


def test_sekhari_reference_values():
    # algorithms.md §12.1 worked example and §12.5 test vectors.
    kw = dict(
        hessian_lipschitz=M_LOGISTIC, lipschitz=1, strong_convexity=0.01, n=10_000
    )
    assert cur.sekhari_gamma(capacity=1, **kw) == pytest.approx(1.925e-3, rel=5e-4)
    assert cur.sekhari_gamma(capacity=10, **kw) == pytest.approx(0.1925, rel=5e-4)
    assert cur.sekhari_gamma(capacity=1, tight=True, **kw) == pytest.approx(
        4.812e-4, rel=5e-4
    )
    assert cur.sekhari_gamma(capacity=10, tight=True, **kw) == pytest.approx(
        4.821e-2, rel=5e-4
    )
    assert cur.sekhari_sigma(1.0, 1e-5, capacity=1, **kw) == pytest.approx(
        9.324e-3, rel=5e-4
    )
    assert cur.sekhari_sigma(
        1.0, 1e-5, capacity=10, method="analytic", **kw
    ) == pytest.approx(0.7180, rel=5e-4)
    kw2 = dict(hessian_lipschitz=M_LOGISTIC, lipschitz=2, strong_convexity=0.1, n=1000)
    assert cur.sekhari_gamma(capacity=5, **kw2) == pytest.approx(1.925e-2, rel=5e-4)
    assert cur.sekhari_sigma(0.5, 1e-6, capacity=5, **kw2) == pytest.approx(
        0.2040, rel=5e-4
    )
    assert cur.sekhari_sigma(
        0.5, 1e-6, capacity=5, method="analytic", **kw2
    ) == pytest.approx(0.1551, rel=5e-4)
    cap = dict(
        n=100_000,
        epsilon=1,
        delta=1e-5,
        strong_convexity=0.1,
        lipschitz=1,
        hessian_lipschitz=M_LOGISTIC,
        excess_risk=0.01,
    )
    assert cur.sekhari_capacity(dim=100, **cap) == 103
    assert cur.sekhari_capacity(dim=1600, **cap) == 51


@pytest.mark.parametrize("eps", [0.1, 0.5, 0.9, 1.0])
def test_classic_calibration_at_eps_up_to_one_is_valid(eps):
    kw = dict(
        hessian_lipschitz=M_LOGISTIC,
        lipschitz=1,
        strong_convexity=0.01,
        n=10_000,
        capacity=3,
    )
    gamma = cur.sekhari_gamma(**kw)
    for method in ("classic", "zcdp", "analytic"):
        s = cur.sekhari_sigma(eps, 1e-5, method=method, **kw)
        assert mech.gaussian_delta(eps, sigma=s, sensitivity=gamma) <= 1e-5
    with pytest.raises(ValueError, match="epsilon"):
        cur.sekhari_sigma(1.5, 1e-5, method="classic", **kw)


def test_sekhari_max_deletions_never_overshoots():
    kw = dict(
        hessian_lipschitz=M_LOGISTIC, lipschitz=1, strong_convexity=0.01, n=10_000
    )
    for sigma in (0.01, 0.3, 0.9324, 2.0):
        m = cur.sekhari_max_deletions(sigma, 1.0, 1e-5, **kw)
        if m >= 1:
            assert cur.sekhari_sigma(1.0, 1e-5, capacity=m, **kw) <= sigma
        assert cur.sekhari_sigma(1.0, 1e-5, capacity=m + 1, **kw) > sigma
    assert cur.sekhari_max_deletions(0.9324, 1.0, 1e-5, **kw) == 10


def test_sekhari_state():
    cfg = cur.SekhariConfig(capacity=3, epsilon=1.0, delta=1e-5)
    s = cur.sekhari_update(cur.sekhari_update(cur.sekhari_init(), 2), 1)
    r = cur.sekhari_report(s, cfg)
    assert r.certified and r.remaining == 0
    s = cur.sekhari_update(s)
    assert not cur.sekhari_report(s, cfg).certified
    assert cur.sekhari_reset(s).num_deleted == 0
    with pytest.raises(ValueError, match="capacity"):
        cur.sekhari_gamma(
            hessian_lipschitz=1, lipschitz=1, strong_convexity=1, n=10, capacity=6
        )


# ---------------------------------------------------------------------------
# Descent-to-Delete
# ---------------------------------------------------------------------------

# algorithms.md §3 table (MNIST-3v8 constants, delta = 1/n), with the §12.2
# correction for I=2, eps=2 (0.6315, not 0.632).
D2D_TABLE = {
    (1, 0.5): 5.105,
    (1, 1.0): 2.585,
    (1, 2.0): 1.324,
    (2, 0.5): 2.436,
    (2, 1.0): 1.233,
    (2, 2.0): 0.6315,
    (5, 0.5): 0.843,
    (5, 1.0): 0.427,
    (5, 2.0): 0.219,
    (100, 0.5): 5.18e-5,
    (100, 1.0): 2.62e-5,
    (100, 2.0): 1.34e-5,
}


@pytest.mark.parametrize("key", sorted(D2D_TABLE))
def test_d2d_table(key):
    n = 11_982
    m = 1e-6 * n
    i, eps = key
    s = cur.d2d_sigma(
        eps,
        1 / n,
        lipschitz=1,
        strong_convexity=m,
        smoothness=0.25 + m,
        n=n,
        iterations=i,
    )
    expected = D2D_TABLE[key]
    assert s == pytest.approx(
        expected,
        abs=0.51 * 10 ** (math.floor(math.log10(expected)) - 2)
        if expected < 1
        else 5e-4,
    )


def test_d2d_worked_example():
    kw = dict(lipschitz=1, strong_convexity=0.1, smoothness=0.35, n=1000, iterations=2)
    assert cur.d2d_sigma(1.0, 1e-5, **kw) == pytest.approx(0.1750, abs=5e-5)
    assert cur.d2d_sigma(1.0, 1e-5, variant="tight", **kw) == pytest.approx(
        8.751e-2, abs=5e-6
    )
    assert cur.d2d_sigma(1.0, 1e-5, variant="analytic", **kw) == pytest.approx(
        6.662e-2, abs=5e-6
    )
    assert cur.d2d_sensitivity(**kw) == pytest.approx(1.786e-2, abs=5e-6)
    assert cur.d2d_initial_iterations(diameter=2, **kw) == 10
    geo = dict(strong_convexity=0.1, smoothness=0.35)
    imin = cur.d2d_strong_min_iterations(1.0, 1e-5, dim=10, **geo)
    assert imin == 8
    i1 = cur.d2d_strong_iterations(1, iterations=imin, dim=10, delta=1e-5, **geo)
    assert i1 == 13
    assert cur.d2d_strong_sigma(
        1.0, 1e-5, lipschitz=1, n=1000, iterations=i1, **geo
    ) == pytest.approx(3.988e-4, abs=5e-7)


@pytest.mark.parametrize("variant", ["paper", "tight", "analytic"])
def test_d2d_epsilon_inverts_sigma_and_min_iterations(variant):
    kw = dict(lipschitz=1, strong_convexity=0.1, smoothness=0.35, n=1000)
    s = cur.d2d_sigma(0.7, 1e-6, iterations=3, variant=variant, **kw)
    assert cur.d2d_epsilon(
        s, 1e-6, iterations=3, variant=variant, **kw
    ) == pytest.approx(0.7, rel=1e-6)
    i = cur.d2d_min_iterations(0.05, 0.7, 1e-6, variant=variant, **kw)
    assert cur.d2d_sigma(0.7, 1e-6, iterations=i, variant=variant, **kw) <= 0.05
    if i > 1:
        assert cur.d2d_sigma(0.7, 1e-6, iterations=i - 1, variant=variant, **kw) > 0.05


def test_d2d_state_only_n_shrinks():
    cfg = cur.D2DConfig(
        sigma=0.17502,
        epsilon=1.0,
        delta=1e-5,
        lipschitz=1,
        strong_convexity=0.1,
        smoothness=0.35,
        n=1000,
        iterations=2,
    )
    s = cur.d2d_init()
    assert cur.d2d_report(s, cfg).epsilon == 0.0
    s = cur.d2d_update(s)
    r1 = cur.d2d_report(s, cfg)
    assert r1.certified and r1.epsilon == pytest.approx(1.0, rel=1e-4)
    s = cur.d2d_update(s)
    r2 = cur.d2d_report(s, cfg)
    assert r2.epsilon > r1.epsilon and not r2.certified  # n shrank by one
    assert cur.d2d_reset(s) == s


# ---------------------------------------------------------------------------
# Langevin (Rényi recursion)
# ---------------------------------------------------------------------------


def test_langevin_reference_values():
    # JSON langevin_unlearning_K0 / K1000 / sequential_3req: rel 1e-6.
    cfg = langevin_cfg()
    s0 = cur.langevin_update(cur.langevin_init(), removed=1, steps=0)
    assert cur.langevin_epsilon(s0, cfg, 1e-4)[0] == pytest.approx(
        0.40909167894715015, rel=1e-6
    )
    s = cur.langevin_init()
    expected = [0.2908325543767548, 0.43149635515624285, 0.5090403178533414]
    for e in expected:
        s = cur.langevin_update(s, removed=1, steps=1000)
        assert cur.langevin_epsilon(s, cfg, 1e-4)[0] == pytest.approx(e, rel=1e-6)
    assert cur.langevin_reset(s) == cur.langevin_init()
    assert cur.langevin_epsilon(cur.langevin_init(), cfg, 1e-4)[0] == 0.0


def test_langevin_table_algorithms_md_section_9():
    n = 11_982
    cfg = langevin_cfg(n=n)
    for removed, expected in ((1, 0.314), (10, 3.37), (100, 57.0)):
        s = cur.langevin_update(cur.langevin_init(), removed=removed, steps=0)
        eps = cur.langevin_epsilon(s, cfg, 1 / n)[0]
        assert eps == pytest.approx(expected, rel=2e-3)
    for target, ks in ((1.0, (778, 1997, 3136)), (0.5, (2208, 4461, 6609))):
        for removed, k in zip((10, 100, 1000), ks):
            got = cur.langevin_min_steps(
                cur.langevin_init(),
                cfg,
                removed=removed,
                target_epsilon=target,
                delta=1 / n,
            )
            assert got == k
            # never overshoots, and is the smallest
            s = cur.langevin_update(cur.langevin_init(), removed=removed, steps=got)
            assert cur.langevin_epsilon(s, cfg, 1 / n)[0] <= target
            s = cur.langevin_update(cur.langevin_init(), removed=removed, steps=got - 1)
            assert cur.langevin_epsilon(s, cfg, 1 / n)[0] > target


def test_langevin_rdp_is_vectorised_recursion():
    cfg = langevin_cfg()
    s = cur.langevin_init()
    for k in (500, 800, 1200):
        s = cur.langevin_update(s, removed=2, steps=k)
    orders = np.array([1.5, 2.0, 10.0, 77.7])
    got = cur.langevin_rdp(s, cfg, orders)
    rate = cfg.strong_convexity * cfg.step_size

    def eps0(a):
        return 4 * a * 4 / (cfg.strong_convexity * cfg.sigma**2 * cfg.n**2)

    def rec(a, j):  # ε_j(a), j = 1..3, straight from the formula
        if j == 1:
            return math.exp(-rate * s.steps[0] / a) * eps0(a)
        return (
            math.exp(-rate * s.steps[j - 1] / a)
            * (a - 0.5)
            / (a - 1)
            * (eps0(2 * a) + rec(2 * a, j - 1))
        )

    np.testing.assert_allclose(got, [rec(a, 3) for a in orders], rtol=1e-12)


@HSET
@given(k1=st.integers(0, 3000), k2=st.integers(0, 3000))
def test_langevin_monotone_in_steps(k1, k2):
    cfg = langevin_cfg()
    lo, hi = sorted((k1, k2))
    e_lo = cur.langevin_epsilon(
        cur.langevin_update(cur.langevin_init(), removed=1, steps=lo), cfg, 1e-4
    )[0]
    e_hi = cur.langevin_epsilon(
        cur.langevin_update(cur.langevin_init(), removed=1, steps=hi), cfg, 1e-4
    )[0]
    assert e_hi <= e_lo * (1 + 1e-12)


def test_langevin_improved_conversion_is_tighter_and_requests_limit():
    classic, improved = langevin_cfg(), langevin_cfg(conversion="improved")
    s = cur.langevin_init()
    for _ in range(3):
        s = cur.langevin_update(s, removed=1, steps=1000)
        assert (
            cur.langevin_epsilon(s, improved, 1e-4)[0]
            < cur.langevin_epsilon(s, classic, 1e-4)[0]
        )
    m = cur.langevin_max_requests(
        classic, removed=1, steps=1000, target_epsilon=0.5, delta=1e-4
    )
    assert m == 2  # 0.2908, 0.4315 <= 0.5 < 0.5090
    with pytest.raises(ValueError, match="target_epsilon"):
        cur.langevin_min_steps(
            cur.langevin_init(), classic, removed=1, target_epsilon=1e-4, delta=1e-4
        )


@pytest.mark.parametrize("requests", [1, 3])
def test_min_sigma_never_overshoots(requests):
    lcfg, wcfg = langevin_cfg(), wsgd_cfg()
    s = cur.langevin_min_sigma(
        lcfg, removed=1, steps=1000, target_epsilon=0.3, delta=1e-4, requests=requests
    )

    def lang_worst(sigma):
        cfg = langevin_cfg(sigma=sigma)
        st_, worst = cur.langevin_init(), 0.0
        for _ in range(requests):
            st_ = cur.langevin_update(st_, removed=1, steps=1000)
            worst = max(worst, cur.langevin_epsilon(st_, cfg, 1e-4)[0])
        return worst

    assert lang_worst(s) <= 0.3 < lang_worst(s * (1 - 1e-6))
    w = cur.wsgd_min_sigma(
        wcfg, removed=1, epochs=50, target_epsilon=0.2, delta=1e-4, requests=requests
    )
    st_ = cur.wsgd_init()
    for _ in range(requests):
        st_ = cur.wsgd_update(st_, wcfg, removed=1, epochs=50)
    assert cur.wsgd_epsilon(st_, wsgd_cfg(sigma=w), 1e-4)[0] <= 0.2
    assert cur.wsgd_epsilon(st_, wsgd_cfg(sigma=w * (1 - 1e-6)), 1e-4)[0] > 0.2
    with pytest.raises(ValueError, match="target_epsilon"):
        cur.langevin_min_sigma(
            lcfg, removed=1, steps=10, target_epsilon=1e-5, delta=1e-4
        )


@HSET
@given(k1=st.integers(0, 200), k2=st.integers(0, 200), r=st.floats(0.0, 5.0))
def test_wsgd_and_cr_monotone(k1, k2, r):
    cfg = wsgd_cfg()
    lo, hi = sorted((k1, k2))
    e = [
        cur.wsgd_epsilon(
            cur.wsgd_update(cur.wsgd_init(), cfg, removed=1, epochs=k), cfg, 1e-4
        )[0]
        for k in (lo, hi)
    ]
    assert e[1] <= e[0] * (1 + 1e-12)
    a = cur.cr_epsilon(r, sigma=10.0, delta=1e-4, method="analytic")
    b = cur.cr_epsilon(r + 0.1, sigma=10.0, delta=1e-4, method="analytic")
    assert a <= b


# ---------------------------------------------------------------------------
# Noisy-SGD (W∞)
# ---------------------------------------------------------------------------


def test_wsgd_reference_values():
    cfg = wsgd_cfg()
    s = cur.wsgd_init()
    expected = [0.20644038058368974, 0.23567277329586078, 0.2397897755458317]
    for e in expected:
        s = cur.wsgd_update(s, cfg, removed=1, epochs=50)
        assert cur.wsgd_epsilon(s, cfg, 1e-4)[0] == pytest.approx(e, rel=1e-6)
    assert s.num_requests == 3
    assert cur.wsgd_reset(s) == cur.wsgd_init()
    assert cur.wsgd_epsilon(cur.wsgd_init(), cfg, 1e-4)[0] == 0.0


def test_wsgd_step_radius_values():
    n = 11_982
    for b, zb in ((128, 0.0604), (512, 0.0224), (n, 0.01393)):
        cfg = wsgd_cfg(n=n, batch_size=b)
        assert cfg.step_radius(1) == pytest.approx(zb, abs=5e-5 if b < n else 5e-6)
        assert cfg.step_radius(3) == pytest.approx(3 * cfg.step_radius(1), rel=1e-12)
        # algorithms.md §4.2: one removal at eps=1 needs K = 1, 1, 2 epochs.
        k = cur.wsgd_min_epochs(
            cur.wsgd_init(), cfg, removed=1, target_epsilon=1.0, delta=1 / n
        )
        assert k == (2 if b == n else 1)
    full = wsgd_cfg(n=n)
    assert full.step_radius(1) == pytest.approx(
        2.0 / (full.strong_convexity * n), rel=1e-9
    )
    capped = wsgd_cfg(n=n, projection_radius=0.001)
    assert capped.step_radius(1) == 0.002


def test_wsgd_recursion_and_fixed_point():
    cfg = wsgd_cfg()
    decay = cfg.decay(50)
    s = cur.wsgd_init()
    z = 0.0
    for _ in range(30):
        s = cur.wsgd_update(s, cfg, removed=1, epochs=50)
        z = decay * z + cfg.step_radius(1)
        assert s.pre_radius == pytest.approx(z, rel=1e-12)
    assert z == pytest.approx(cfg.step_radius(1) / (1 - decay), rel=1e-9)
    assert (
        cur.wsgd_max_requests(
            cfg, removed=1, epochs=50, target_epsilon=0.25, delta=1e-4
        )
        == math.inf
    )
    # Below the fixed point's epsilon the count is finite: 0.2064, 0.2357 <= 0.236
    assert (
        cur.wsgd_max_requests(
            cfg, removed=1, epochs=50, target_epsilon=0.236, delta=1e-4
        )
        == 2
    )


def test_wsgd_tight_bound_below_loose_and_min_epochs_never_overshoots():
    loose, tight = wsgd_cfg(), wsgd_cfg(bound="tight")
    s = cur.wsgd_update(cur.wsgd_init(), loose, removed=1, epochs=20)
    assert cur.wsgd_epsilon(s, tight, 1e-4)[0] <= cur.wsgd_epsilon(s, loose, 1e-4)[0]
    state = cur.wsgd_init()
    for _ in range(5):
        k = cur.wsgd_min_epochs(state, loose, removed=1, target_epsilon=0.3, delta=1e-4)
        nxt = cur.wsgd_update(state, loose, removed=1, epochs=k)
        assert cur.wsgd_epsilon(nxt, loose, 1e-4)[0] <= 0.3
        if k > 0:
            prev = cur.wsgd_update(state, loose, removed=1, epochs=k - 1)
            assert cur.wsgd_epsilon(prev, loose, 1e-4)[0] > 0.3
        state = nxt


# ---------------------------------------------------------------------------
# DP extractor + certified head
# ---------------------------------------------------------------------------


def test_extractor_head_composition_and_max_removals():
    kw = dict(
        extractor_epsilon=0.1, extractor_delta=1e-5, head_epsilon=1.0, head_delta=1e-4
    )
    e, d = cur.extractor_head_epsilon(10, **kw)
    ge, gd = mech.group_privacy(0.1, 1e-5, 10)
    assert (e, d) == pytest.approx((ge + 1.0, gd + 1e-4), rel=1e-12)
    assert cur.extractor_head_epsilon(0, **kw) == (1.0, 1e-4)
    k = cur.extractor_max_removals(target_epsilon=2.0, target_delta=1e-3, **kw)
    assert k == 10
    e, d = cur.extractor_head_epsilon(k, **kw)
    assert e <= 2.0 and d <= 1e-3
    e, d = cur.extractor_head_epsilon(k + 1, **kw)
    assert e > 2.0 or d > 1e-3
    # δ can bind before ε: tiny δ target
    k2 = cur.extractor_max_removals(target_epsilon=100.0, target_delta=2e-4, **kw)
    assert (
        cur.extractor_head_epsilon(k2, **kw)[1]
        <= 2e-4
        < cur.extractor_head_epsilon(k2 + 1, **kw)[1]
    )


def test_extractor_state_head_retrain_keeps_group():
    head = cur.CertifiedRemovalConfig(sigma=10, epsilon=1.0, delta=1e-4, method="paper")
    cfg = cur.ExtractorHeadConfig(
        extractor_epsilon=0.1,
        extractor_delta=1e-5,
        head=head,
        target_epsilon=2.0,
        target_delta=1e-3,
    )
    s = cur.extractor_init()
    for _ in range(3):
        s = cur.extractor_update(s, 0.5)
    r = cur.extractor_report(s, cfg)
    assert r.certified and r.epsilon == pytest.approx(1.3)
    s = cur.extractor_update(cur.extractor_update(s, 0.5), 0.5)  # β = 2.5 > 2.28
    assert not cur.extractor_report(s, cfg).certified
    h = cur.extractor_reset(s, scope="head")
    assert h.num_removed == 5 and h.head.residual == 0.0
    assert cur.extractor_report(h, cfg).epsilon == pytest.approx(1.5)
    assert cur.extractor_reset(s) == cur.extractor_init()


# ---------------------------------------------------------------------------
# conversion helper and validation
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("rho", [1e-4, 0.01, 0.5, 3.0])
def test_minimise_over_orders_matches_zcdp_closed_form(rho):
    # Classic conversion of ε_α = ρα: min is ρ + 2√(ρ ln(1/δ)) at
    # α* = 1 + √(ln(1/δ)/ρ) when α* is inside the search range.
    delta = 1e-6
    eps, alpha = cur.minimise_over_orders(lambda a: rho * a, delta, max_order=1e6)
    assert eps == pytest.approx(mech.zcdp_to_dp(rho, delta), rel=1e-9)
    assert alpha == pytest.approx(1 + math.sqrt(math.log(1 / delta) / rho), rel=1e-3)


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: cur.cr_budget(sigma=0.0, epsilon=1, delta=1e-5), "sigma"),
        (lambda: cur.cr_budget(sigma=1.0, epsilon=-1, delta=1e-5), "epsilon"),
        (lambda: cur.cr_budget(sigma=1.0, epsilon=1, delta=1.0), "delta"),
        (lambda: cur.cr_budget(sigma=1.0, epsilon=1, delta=1e-5, method="x"), "method"),
        (lambda: langevin_cfg(sigma=-0.1), "sigma"),
        (
            lambda: cur.LangevinConfig(
                strong_convexity=1, step_size=2, sigma=1, gradient_clip=1, n=10
            ),
            "step_size",
        ),
        (
            lambda: cur.langevin_update(cur.langevin_init(), removed=0, steps=1),
            "removed",
        ),
        (
            lambda: cur.langevin_update(cur.langevin_init(), removed=1, steps=-1),
            "steps",
        ),
        (lambda: wsgd_cfg(batch_size=20_000), "batch_size"),
        (lambda: wsgd_cfg(bound="medium"), "bound"),
        (lambda: cur.d2d_contraction(1.0, 0.5), "smoothness"),
        (
            lambda: cur.d2d_sigma(
                1.0,
                1e-5,
                lipschitz=1,
                strong_convexity=0.1,
                smoothness=0.35,
                n=0,
                iterations=1,
            ),
            "n",
        ),
        (
            lambda: cur.sekhari_sigma(
                1.0,
                2.0,
                hessian_lipschitz=1,
                lipschitz=1,
                strong_convexity=1,
                n=10,
                capacity=1,
            ),
            "delta",
        ),
        (
            lambda: cur.extractor_head_epsilon(
                -1, extractor_epsilon=1, extractor_delta=0, head_epsilon=1, head_delta=0
            ),
            "num_removed",
        ),
        (
            lambda: cur.minimise_over_orders(lambda a: a, 1e-5, max_order=1.0),
            "max_order",
        ),
        (
            lambda: cur.minimise_over_orders(lambda a: a, 1e-5, conversion="x"),
            "conversion",
        ),
    ],
)
def test_bad_input_names_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()


# ---------------------------------------------------------------------------
# numbers at the edges, huge counts (issue #7, items 5 and 7)
# ---------------------------------------------------------------------------


def _naive_langevin_rdp(state, cfg, a):
    """The recursion as written (Python floats, one request at a time)."""
    rate = cfg.strong_convexity * cfg.step_size

    def eps0(order, removed):
        return 4 * order * removed**2 * cfg.gradient_clip**2 / (
            cfg.strong_convexity * cfg.sigma**2 * cfg.n**2
        )

    order = a * 2.0 ** (len(state.steps) - 1)
    eps = math.exp(-rate * state.steps[0] / order) * eps0(order, state.removed[0])
    for k, r in zip(state.steps[1:], state.removed[1:]):
        order /= 2.0
        eps = math.exp(-rate * k / order) * (order - 0.5) / (order - 1) * (eps0(2 * order, r) + eps)
    return eps


def test_langevin_rdp_long_histories_match_the_recursion():
    # 200 requests with varied S and K: levels older than 2^53·mηK_max are
    # summed in closed form (an upper bound that drops e^{−mηK/(2^j α)} ≥ 1 − 2^-53).
    cfg = langevin_cfg()
    rng = np.random.default_rng(0)
    s = cur.langevin_init()
    for _ in range(200):
        s = cur.langevin_update(s, removed=int(rng.integers(1, 4)), steps=int(rng.integers(0, 3000)))
    orders = np.array([1.0 + 1e-6, 1.3, 2.0, 10.0, 77.7, 1e4])
    got = cur.langevin_rdp(s, cfg, orders)
    want = np.array([_naive_langevin_rdp(s, cfg, a) for a in orders])
    assert np.all(got >= want * (1 - 1e-13))  # never below the recursion
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert cur_langevin._langevin_view(s, cfg.strong_convexity * cfg.step_size).removed.size < 70


def test_langevin_rdp_past_float64_is_finite_then_inf_without_warnings():
    import warnings

    cfg = langevin_cfg()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = cur.LangevinState((1,) * 1000, (1000,) * 1000)
        r = cur.langevin_rdp(s, cfg, [2.0])[0]  # ≈ 2^1000·ε₀: large, representable
        assert math.isfinite(r) and r > 1e250
        far = cur.LangevinState((1,) * 1300, (1000,) * 1300)
        assert cur.langevin_rdp(far, cfg, [2.0])[0] == math.inf
        assert cur.langevin_epsilon(far, cfg, 1e-4)[0] == math.inf
    with pytest.raises(ValueError, match="orders"):
        cur.langevin_rdp(s, cfg, [float("nan")])


def test_langevin_sequential_search_reference_and_bounded_cost():
    # The CLI's `budget langevin --n 11982 --lam 1e-6 --sigma 0.03 --removed 100
    # --target-epsilon 1 --requests 300` (153 s before, ~3 s now): the smallest
    # K per request is unchanged (values recorded from the old implementation).
    m, _, eta = cur.langevin_constants(n=11982, lam=1e-6, loss_smoothness=0.25)
    cfg = cur.LangevinConfig(strong_convexity=m, step_size=eta, sigma=0.03, gradient_clip=1.0, n=11982)
    state, ks = cur.langevin_init(), []
    for _ in range(50):
        k = cur.langevin_min_steps(state, cfg, removed=100, target_epsilon=1.0, delta=1 / 11982)
        state = cur.langevin_update(state, removed=100, steps=k)
        ks.append(k)
    assert [ks[0], ks[1], ks[9], ks[49]] == [1997, 2188, 2219, 5249]
    assert cur.langevin_epsilon(state, cfg, 1 / 11982)[0] == pytest.approx(0.9999653, abs=1e-7)
    # Cost per request does not grow with the number of requests: the exact
    # levels are bounded (J ≤ 54 + log2(mη·K_max)), the rest is a prefix sum.
    long = cur.LangevinState((100,) * 10_000, (5249,) * 10_000)
    assert cur_langevin._langevin_view(long, m * eta).removed.size <= 54 + math.ceil(math.log2(m * eta * 5249)) + 1


def test_langevin_identical_requests_in_constant_time():
    cfg = langevin_cfg()
    # limit up to 2**53 without iterating (ε_s is non-decreasing in s).
    assert cur.langevin_max_requests(
        cfg, removed=1, steps=1000, target_epsilon=0.5, delta=1e-4, limit=2**53
    ) == 2
    big = cur.langevin_max_requests(
        cfg, removed=1, steps=10**9, target_epsilon=0.5, delta=1e-4, limit=2**53
    )
    assert 2 < big < 2**53
    # The closed-form identical path equals the state path (same floats up to
    # the exact levels, rounding beyond).
    for count in (1, 3, 40, 80):
        s = cur.LangevinState((2,) * count, (700,) * count)
        assert cur_langevin._langevin_identical_epsilon(cfg, 1e-4, 2, 700, count) == pytest.approx(
            cur.langevin_epsilon(s, cfg, 1e-4)[0], rel=1e-12
        )
    # min σ for 200 identical requests: certified for every one of them (the
    # last is the worst), through the state path too.
    sigma = cur.langevin_min_sigma(
        cfg, removed=1, steps=10**4, target_epsilon=1.0, delta=1e-4, requests=200
    )
    state = cur.LangevinState((1,) * 200, (10**4,) * 200)
    tight = dataclasses_replace(cfg, sigma=sigma)
    assert cur.langevin_epsilon(state, tight, 1e-4)[0] <= 1.0 * (1 + 1e-12)
    loose = dataclasses_replace(cfg, sigma=sigma * (1 - 1e-9))
    assert cur_langevin._langevin_identical_epsilon(loose, 1e-4, 1, 10**4, 200) > 1.0
    # A billion requests: 2^s growth makes every σ fail, and it says so (fast).
    with pytest.raises(ValueError, match="target_epsilon=1.0 unreachable"):
        cur.langevin_min_sigma(cfg, removed=1, steps=10**6, target_epsilon=1.0, delta=1e-4, requests=10**9)
    with pytest.raises(ValueError, match="requests"):
        cur.langevin_min_sigma(cfg, removed=1, steps=1, target_epsilon=1.0, delta=1e-4, requests=0)


def dataclasses_replace(obj, **kw):
    import dataclasses

    return dataclasses.replace(obj, **kw)


def test_wsgd_closed_form_state_and_huge_limits():
    cfg = wsgd_cfg()
    s = cur.wsgd_init()
    for count in range(1, 101):
        s = cur.wsgd_update(s, cfg, removed=1, epochs=3)
        fast = cur_sgd._wsgd_identical_state(cfg, 1, 3, count)
        assert fast.pre_radius == pytest.approx(s.pre_radius, rel=1e-12)
    # Requests until the (non-saturating) ε crosses the target, found by
    # bisection on s: the same answer as iterating, for limit up to 2**53.
    cfg0 = wsgd_cfg(sigma=0.05)
    want, st_ = 0, cur.wsgd_init()
    while True:
        st_ = cur.wsgd_update(st_, cfg0, removed=1, epochs=0)
        if cur.wsgd_epsilon(st_, cfg0, 1e-4)[0] > 2.0:
            break
        want += 1
    assert cur.wsgd_max_requests(
        cfg0, removed=1, epochs=0, target_epsilon=2.0, delta=1e-4, limit=2**53
    ) == want
    sigma = cur.wsgd_min_sigma(cfg, removed=1, epochs=0, target_epsilon=1.0, delta=1e-4, requests=10**9)
    state = cur_sgd._wsgd_identical_state(cfg, 1, 0, 10**9)
    assert state.pre_radius == pytest.approx(1e9 * cfg.step_radius(1), rel=1e-12)
    assert cur.wsgd_epsilon(state, wsgd_cfg(sigma=sigma), 1e-4)[0] <= 1.0


def test_wsgd_tiny_rate_and_extreme_sigma():
    import warnings

    # ηm = 1e-300: c = 1 − ηm rounds to 1.0, which was refused as "ηm not in
    # (0, 1]"; ln c = log1p(−ηm) keeps it.
    cfg = cur.WassersteinConfig(
        strong_convexity=1e-300, step_size=1.0, sigma=1.0, gradient_clip=1.0, n=10, batch_size=10
    )
    assert cfg.contraction == 1.0
    assert cfg.step_radius(1) == pytest.approx(2.0 / (10 * 1e-300 * 1.0), rel=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tiny = wsgd_cfg(sigma=1e-300)  # σ² underflowed: ZeroDivisionError
        s = cur.wsgd_update(cur.wsgd_init(), tiny, removed=1, epochs=1)
        assert cur.wsgd_epsilon(s, tiny, 1e-4)[0] == math.inf
        assert np.all(cur.wsgd_rdp(s, tiny, [2.0]) == np.inf)
        huge = wsgd_cfg(sigma=1e300)
        s = cur.wsgd_update(cur.wsgd_init(), huge, removed=1, epochs=1)
        assert 0.0 <= cur.wsgd_epsilon(s, huge, 1e-4)[0] < 1e-3


def test_d2d_huge_iterations():
    kw = dict(lipschitz=1, strong_convexity=1, smoothness=2, n=100)
    # Issue example: d2d_sigma(..., iterations=10**9) returned 0.0.
    with pytest.raises(ValueError, match="iterations=1000000000"):
        cur.d2d_sigma(1, 1e-5, iterations=10**9, **kw)
    with pytest.raises(ValueError, match="iterations=1000000000"):
        cur.d2d_sensitivity(iterations=10**9, **kw)
    # ε only needs Δ/σ, formed in logs: positive where representable, then 0.
    e = cur.d2d_epsilon(1e-300, 1e-5, iterations=600, **kw)
    assert 0.0 < e < math.inf
    assert cur.d2d_epsilon(1e-300, 1e-5, iterations=10**9, **kw) == 0.0
    # The smallest I for a tiny σ no longer trips over the underflow, and is exact.
    i = cur.d2d_min_iterations(1e-300, 1.0, 1e-5, **kw)
    assert cur.d2d_sigma(1.0, 1e-5, iterations=i, **kw) <= 1e-300
    assert cur.d2d_sigma(1.0, 1e-5, iterations=i - 1, **kw) > 1e-300
    # β = m: contraction 0, sensitivity exactly 0 (said, not a 0.0 σ).
    assert cur.d2d_sensitivity(lipschitz=1, strong_convexity=1, smoothness=1, n=10, iterations=1) == 0.0
    with pytest.raises(ValueError, match="no noise is needed"):
        cur.d2d_sigma(1, 1e-5, lipschitz=1, strong_convexity=1, smoothness=1, n=10, iterations=1)
    assert cur.d2d_strong_min_iterations(1.0, 1e-5, dim=10, strong_convexity=1, smoothness=1) == 1
    # m/β = 1e-20: γ rounds to 1.0 (1 − γ^I was 0: ZeroDivisionError); ln γ
    # from log1p keeps Δ ≈ 4L/(m n · 2m/β) = 2e39.
    geo = dict(strong_convexity=1e-20, smoothness=1.0)
    assert cur.d2d_sensitivity(lipschitz=1.0, n=10, iterations=1, **geo) == pytest.approx(2e39, rel=1e-12)
    # ... and iteration counts beyond 2**53 are refused, not returned.
    with pytest.raises(ValueError, match="2\\*\\*53"):
        cur.d2d_strong_iterations(1, iterations=5, dim=10, delta=5e-324, **geo)
    with pytest.raises(ValueError, match="2\\*\\*53"):
        cur.d2d_strong_min_iterations(1e-300, 1e-5, dim=10, **geo)
    geo6 = dict(strong_convexity=1e-6, smoothness=1.0)
    assert cur.d2d_strong_iterations(1, iterations=5, dim=10, delta=5e-324, **geo6) > 5
    assert cur.d2d_initial_iterations(iterations=3, diameter=1e300, lipschitz=1.0, **geo6, n=10) > 3


def test_gaussian_sigma_tiny_epsilon_and_delta():
    # κ = √(L + ε) − √L cancelled to 0 (ZeroDivisionError) for tiny ε.
    s = cur_common._gaussian_sigma_zcdp(1e-300, 1e-5, 1.0)
    assert s == pytest.approx(math.sqrt(2 * math.log(1e5)) * 1e300, rel=1e-12)
    with pytest.raises(ValueError, match="sigma overflows"):
        cur_common._gaussian_sigma_zcdp(5e-324, 1e-5, 1.0)
    assert cur_common._gaussian_sigma_classic_closed(1.0, 5e-324, 1.0) == pytest.approx(
        math.sqrt(2 * (math.log(1.25) - math.log(5e-324))), rel=1e-14
    )
    assert cur_common._gaussian_eps("zcdp", 1e-300, 1e-5, 1.0) == math.inf
    assert cur_common._gaussian_eps("zcdp", 1e300, 1e-5, 1.0) > 0.0


def test_sekhari_extremes():
    kw = dict(hessian_lipschitz=1.0, lipschitz=1.0, n=1000)
    # λ³ underflowed to 0: ZeroDivisionError; now a ValueError naming it.
    with pytest.raises(ValueError, match="strong_convexity=1e-300"):
        cur.sekhari_gamma(strong_convexity=1e-300, capacity=1, **kw)
    with pytest.raises(ValueError, match="gamma underflows"):
        cur.sekhari_gamma(strong_convexity=1e200, capacity=1, **kw)
    # The capacity search treats γ below float64 as needing no noise.
    assert cur.sekhari_max_deletions(1.0, 1.0, 1e-5, strong_convexity=1e200, **kw) == 500
    assert cur.sekhari_capacity(
        n=10**6, dim=10, epsilon=1.0, delta=5e-324, strong_convexity=1e300,
        lipschitz=1.0, hessian_lipschitz=1.0, excess_risk=0.1,
    ) == 500000
    assert cur.sekhari_capacity(
        n=10**6, dim=10, epsilon=1.0, delta=1e-5, strong_convexity=1e-300,
        lipschitz=1.0, hessian_lipschitz=1.0, excess_risk=0.1,
    ) == 0
    with pytest.raises(ValueError, match="n to be an integer in"):
        cur.sekhari_gamma(strong_convexity=1.0, capacity=1, hessian_lipschitz=1, lipschitz=1, n=2**53 + 1)


def test_extractor_extremes():
    kw = dict(extractor_delta=0.0, head_epsilon=0.5, head_delta=1e-6)
    e, d = cur.extractor_head_epsilon(2**53, extractor_epsilon=1e-300, **kw)
    assert e == pytest.approx(2**53 * 1e-300 + 0.5) and d == 1e-6
    assert cur.extractor_max_removals(
        extractor_epsilon=1e-300, target_epsilon=1.0, target_delta=1e-5, **kw
    ) == 2**53
    with pytest.raises(ValueError, match="head_delta"):
        cur.extractor_head_epsilon(1, extractor_epsilon=1.0, extractor_delta=0.0, head_epsilon=1.0, head_delta=1.5)
    with pytest.raises(ValueError, match="num_removed"):
        cur.extractor_head_epsilon(2**53 + 1, extractor_epsilon=1.0, **kw)


# ---------------------------------------------------------------------------
# property: hostile input gives a ValueError or a valid, monotone answer
# ---------------------------------------------------------------------------

_EDGE = [math.nan, math.inf, -1.0, 0.0, 5e-324, 1e-300, 1e-20, 1e20, 1e300]
_EDGE_COUNTS = [-1, 0, 2**53, 2**53 + 1, 10**30, 1.5, True]
PROP = settings(derandomize=True, max_examples=60, deadline=None)


def mixed(valid, edge=_EDGE):
    """A valid value four times in five, else an edge case (NaN, inf, 0,
    negative, subnormal, 1e±300, any float): every argument gets hostile
    values while whole calls still often reach the computation."""
    hostile = st.sampled_from(edge) | st.floats(allow_nan=True, allow_infinity=True)
    if edge is _EDGE_COUNTS:
        hostile = st.sampled_from(edge)
    return st.integers(0, 4).flatmap(lambda i: hostile if i == 0 else valid)


def fl(lo, hi):
    return st.floats(lo, hi)


def cnt(lo, hi):
    return mixed(st.integers(lo, hi), _EDGE_COUNTS)


def _call(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except ValueError as err:
        assert str(err)
        return None


@PROP
@given(sigma=mixed(fl(0.01, 1.0)), delta=mixed(fl(1e-8, 0.1)), target=mixed(fl(0.05, 5.0)),
       removed=cnt(1, 5), steps=cnt(0, 5000))
def test_langevin_hostile_input(sigma, delta, target, removed, steps):
    cfg = _call(langevin_cfg, sigma=sigma)
    if cfg is None:
        return
    state = _call(cur.langevin_update, cur.langevin_init(), removed=removed, steps=steps)
    if state is None:
        return
    out = _call(cur.langevin_epsilon, state, cfg, delta)
    if out is not None:
        eps = out[0]
        assert eps >= 0 and not math.isnan(eps)
        more = cur.langevin_epsilon(cur.langevin_update(state, removed=removed, steps=steps), cfg, delta)[0]
        assert more >= eps * (1 - 1e-12)  # one more identical request never helps
    k = _call(cur.langevin_min_steps, cur.langevin_init(), cfg, removed=removed, target_epsilon=target, delta=delta)
    if k is not None:
        nxt = cur.langevin_update(cur.langevin_init(), removed=removed, steps=k)
        assert cur.langevin_epsilon(nxt, cfg, delta)[0] <= target
    n = _call(cur.langevin_max_requests, cfg, removed=removed, steps=steps, target_epsilon=target,
              delta=delta, limit=2**53)
    if n is not None:
        assert 0 <= n <= 2**53


@PROP
@given(sigma=mixed(fl(0.01, 1.0)), delta=mixed(fl(1e-8, 0.1)), target=mixed(fl(0.05, 5.0)),
       removed=cnt(1, 5), epochs=cnt(0, 100))
def test_wsgd_hostile_input(sigma, delta, target, removed, epochs):
    cfg = _call(wsgd_cfg, sigma=sigma)
    if cfg is None:
        return
    state = _call(cur.wsgd_update, cur.wsgd_init(), cfg, removed=removed, epochs=epochs)
    if state is None:
        return
    out = _call(cur.wsgd_epsilon, state, cfg, delta)
    if out is not None:
        assert out[0] >= 0 and not math.isnan(out[0])
    n = _call(cur.wsgd_max_requests, cfg, removed=removed, epochs=epochs, target_epsilon=target,
              delta=delta, limit=2**53)
    if n is not None:
        assert n == math.inf or 0 <= n <= 2**53
    s = _call(cur.wsgd_min_sigma, cfg, removed=removed, epochs=epochs, target_epsilon=target,
              delta=delta, requests=removed if isinstance(removed, int) and not isinstance(removed, bool) else 1)
    if s is not None:
        assert 0 < s < math.inf


@PROP
@given(eps=mixed(fl(0.1, 5.0)), delta=mixed(fl(1e-8, 0.1)), m=mixed(fl(0.01, 1.0)),
       beta=mixed(fl(1.0, 10.0)), lip=mixed(fl(0.1, 10.0)), n=cnt(10, 10**4), iters=cnt(1, 100),
       variant=st.sampled_from(["paper", "tight", "analytic", "analytic", "x"]))
def test_d2d_hostile_input(eps, delta, m, beta, lip, n, iters, variant):
    kw = dict(lipschitz=lip, strong_convexity=m, smoothness=beta, n=n, iterations=iters)
    s = _call(cur.d2d_sigma, eps, delta, variant=variant, **kw)
    if s is not None:
        assert 0 < s < math.inf
        back = cur.d2d_epsilon(s, delta, variant=variant, **kw)
        assert back <= eps * (1 + 1e-9)  # the σ found certifies ε
        if isinstance(iters, int) and iters < 2**53:
            more = _call(cur.d2d_sigma, eps, delta, variant=variant, **{**kw, "iterations": iters + 1})
            if more is not None:  # more GD steps: less noise
                assert more <= s * (1 + 1e-9)
    e = _call(cur.d2d_epsilon, 1.0, delta, variant=variant, **kw)
    if e is not None:
        assert e >= 0 and not math.isnan(e)


@PROP
@given(eps=mixed(fl(0.1, 1.0)), delta=mixed(fl(1e-8, 0.1)), lam=mixed(fl(0.1, 10.0)),
       lip=mixed(fl(0.1, 2.0)), n=cnt(10, 10**4), cap=cnt(1, 5),
       method=st.sampled_from(["classic", "zcdp", "analytic", "y"]))
def test_sekhari_hostile_input(eps, delta, lam, lip, n, cap, method):
    kw = dict(hessian_lipschitz=1.0, lipschitz=lip, strong_convexity=lam, n=n)
    s = _call(cur.sekhari_sigma, eps, delta, capacity=cap, method=method, **kw)
    if s is not None:
        assert 0 < s < math.inf
    m = _call(cur.sekhari_max_deletions, 1.0, eps, delta, method=method, **kw)
    if m is not None:
        assert 0 <= m <= n // 2
        bigger = _call(cur.sekhari_max_deletions, 2.0, eps, delta, method=method, **kw)
        if bigger is not None:  # more noise, at least as many deletions
            assert bigger >= m
    c = _call(cur.sekhari_capacity, n=n, dim=10, epsilon=eps, delta=delta, strong_convexity=lam,
              lipschitz=lip, hessian_lipschitz=1.0, excess_risk=0.1)
    if c is not None:
        assert 0 <= c <= n // 2 + 1


@PROP
@given(e1=mixed(fl(1e-3, 1.0)), d1=mixed(fl(0.0, 1e-6)), e2=mixed(fl(0.01, 0.5)),
       d2=mixed(fl(0.0, 1e-6)), k=cnt(0, 1000), target=mixed(fl(1.0, 10.0)))
def test_extractor_hostile_input(e1, d1, e2, d2, k, target):
    kw = dict(extractor_epsilon=e1, extractor_delta=d1, head_epsilon=e2, head_delta=d2)
    out = _call(cur.extractor_head_epsilon, k, **kw)
    if out is not None:
        e, d = out
        assert e > 0 and 0 <= d <= 1 and not math.isnan(e)
    m = _call(cur.extractor_max_removals, target_epsilon=target, target_delta=1e-5, **kw)
    if m is not None:
        assert 0 <= m <= 2**53


def test_langevin_constants_extremes():
    # λn overflowed to inf and η = 1/L came out 0.0 (then "step_size=0.0 > 0").
    with pytest.raises(ValueError, match="lam=1e\\+308"):
        cur.langevin_constants(n=10, lam=1e308, loss_smoothness=0.25)
    with pytest.raises(ValueError, match="strong convexity lam\\*n underflows"):
        cur.langevin_constants(n=10, lam=5e-324, loss_smoothness=0.25)
    m, L, eta = cur.langevin_constants(n=2**53, lam=1e-300, loss_smoothness=1e-300)
    assert m == pytest.approx(2**53 * 1e-300) and eta == pytest.approx(1 / L)

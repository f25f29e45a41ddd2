"""DP-SGD (dpunlearn.dpsgd) and the DP extractor + certified head method.

Statistical tests and their false-failure rates (each a fixed seed, so a run
is deterministic; the rate is over seeds, for a correct implementation):

* noise: Kolmogorov–Smirnov of the recovered noise against N(0, (σC)²),
  must not reject at α = 1e-3 (false-failure rate 1e-3); the same noise
  judged against σ·1.15 and σ/1.15 must be rejected at α = 1e-3 (the control:
  a wrong scale fails).
* Poisson sampling: the mean of T batch sizes against nq, two-sided z-test
  at α = 1e-3 (|z| < 3.29; false-failure rate 1e-3, normal approximation of
  a sum of 600 binomials); a sampling rate 10% off must give |z| > 3.29.

Everything else is exact or within a stated numerical tolerance.
"""

from __future__ import annotations

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from dpunlearn import certified, cli, dpsgd, models, serve, transforms
from dpunlearn.accounting import currencies as cur
from dpunlearn.accounting import ledger as L
from dpunlearn.accounting import rdp
from dpunlearn.methods import Data, dp_extractor

pytest.importorskip("flax")
from dpunlearn.methods.dp_extractor import extractor_mlp, head_features  # noqa: E402

ALPHA = 1e-3
Z_CRIT = stats.norm.isf(ALPHA / 2)  # 3.29


def blobs(n=120, d=6, seed=0):
    r = np.random.default_rng(seed)
    y = r.integers(0, 3, size=n)
    centers = r.normal(size=(3, d)) * 2.0
    X = centers[y] + r.normal(size=(n, d))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return Data(jnp.asarray(X, jnp.float32), jnp.asarray(y, jnp.int32))


# --------------------------------------------------------------------- DP-SGD


def test_clip_per_example_sum_clips_each_gradient_to_c():
    r = np.random.default_rng(0)
    g = {"w": jnp.asarray(r.normal(size=(7, 5)) * 10), "b": jnp.asarray(r.normal(size=(7,)))}
    g["w"] = g["w"].at[3].set(0.0)
    g["b"] = g["b"].at[3].set(0.0)  # a padding example: all zero
    out, _ = transforms.clip_per_example(1.5, reduce="sum").update(g, None)
    norms = np.sqrt(np.sum(np.asarray(g["w"]) ** 2, 1) + np.asarray(g["b"]) ** 2)
    scale = np.minimum(1.0, 1.5 / np.maximum(norms, 1e-30))
    np.testing.assert_allclose(out["w"], (np.asarray(g["w"]) * scale[:, None]).sum(0), rtol=1e-5)
    np.testing.assert_allclose(out["b"], (np.asarray(g["b"]) * scale).sum(0), rtol=1e-5)
    mean, _ = transforms.clip_per_example(1.5).update(g, None)
    np.testing.assert_allclose(mean["b"], out["b"] / 7, rtol=1e-6)
    with pytest.raises(ValueError, match="reduce"):
        transforms.clip_per_example(1.0, reduce="max")


def _clean_and_noisy(sigma, keys, data, model, clip=0.5):
    cfg = dpsgd.DPSGDConfig(
        noise_multiplier=sigma, clip_norm=clip, sampling_rate=1.0, steps=1, chunk_size=32
    )
    mask = jnp.ones(data.num_rows, bool)
    grads = jax.vmap(
        lambda k: dpsgd.step_gradient(k, model.loss, model.params, data.x, data.y, mask, cfg)
    )(keys)
    return cfg, grads


def test_dpsgd_train_takes_numpy_rows_like_jax_rows():
    # NumPy data (what data.load returns) used to fail: the traced Poisson
    # sample cannot index a NumPy array inside the step loop.
    data = blobs(n=40)
    model, _ = extractor_mlp(jax.random.key(0), (6, 4, 3))
    cfg = dpsgd.DPSGDConfig(
        noise_multiplier=1.0, clip_norm=1.0, sampling_rate=0.5, steps=2, chunk_size=16
    )
    mask = np.ones(40, bool)
    key = jax.random.key(1)
    p_np, s_np = dpsgd.train(key, model, np.asarray(data.x), np.asarray(data.y), mask, cfg)
    p_jx, s_jx = dpsgd.train(key, model, data.x, data.y, mask, cfg)
    assert np.array_equal(np.asarray(s_np), np.asarray(s_jx)) and int(s_np.sum()) > 0
    for a, b in zip(jax.tree.leaves(p_np), jax.tree.leaves(p_jx)):
        assert np.array_equal(np.asarray(a), np.asarray(b))


def test_dpsgd_noise_is_gaussian_with_std_sigma_c_and_a_wrong_scale_fails():
    data = blobs()
    model, _ = extractor_mlp(jax.random.key(0), (6, 8, 3))
    sigma, clip = 2.0, 0.5
    cfg, g = _clean_and_noisy(sigma, jax.random.split(jax.random.key(1), 100), data, model, clip)
    # q = 1: every row sampled, so the clipped sum is the same for every key.
    assert np.all(np.asarray(g.batch_size) == data.num_rows)
    expected = np.asarray(g.expected_batch)  # q·n = n, one per key
    noise = jax.tree.map(
        lambda noisy, clean: noisy * expected.reshape((-1,) + (1,) * (noisy.ndim - 1)) - clean,
        g.noisy_mean,
        g.clipped_sum,
    )
    z = np.concatenate([np.asarray(a).ravel() for a in jax.tree.leaves(noise)]) / (sigma * clip)
    assert z.size > 8000
    assert stats.kstest(z, "norm").pvalue > ALPHA
    for wrong in (1.15, 1 / 1.15):
        assert stats.kstest(z / wrong, "norm").pvalue < ALPHA, wrong
    # Clipping: every example's clipped gradient has norm <= C, so the sum
    # has norm <= n·C; the per-example norms here exceed C (clipping is active).
    total = np.sqrt(sum(float(jnp.sum(a[0] ** 2)) for a in jax.tree.leaves(g.clipped_sum)))
    assert total <= data.num_rows * clip * (1 + 1e-5)
    per_ex = jax.vmap(jax.grad(model.loss), in_axes=(None, 0, 0))(model.params, data.x, data.y)
    norms = np.sqrt(sum(np.sum(np.asarray(a).reshape(data.num_rows, -1) ** 2, 1)
                        for a in jax.tree.leaves(per_ex)))
    assert np.mean(norms > clip) > 0.5
    clipped = jax.tree.map(
        lambda a: jnp.sum(a * jnp.minimum(1.0, clip / norms).reshape((-1,) + (1,) * (a.ndim - 1)), 0),
        per_ex,
    )
    for a, b in zip(jax.tree.leaves(clipped), jax.tree.leaves(g.clipped_sum)):
        np.testing.assert_allclose(np.asarray(b[0]), np.asarray(a), rtol=2e-4, atol=1e-6)


def test_poisson_sampling_sizes_are_binomial_and_a_wrong_rate_fails():
    data = blobs(n=100)
    model = models.linear(6, num_classes=3)
    q, T = 0.3, 600
    cfg = dpsgd.DPSGDConfig(
        noise_multiplier=1.0, clip_norm=1.0, sampling_rate=q, steps=T, chunk_size=16
    )
    _, sizes = jax.jit(
        lambda k: dpsgd.train(k, model, data.x, data.y, jnp.ones(100, bool), cfg)
    )(jax.random.key(3))
    sizes = np.asarray(sizes, np.float64)
    n = data.num_rows

    def z(rate):
        return (sizes.mean() - n * rate) / math.sqrt(n * rate * (1 - rate) / T)

    assert abs(z(q)) < Z_CRIT
    assert abs(z(q * 1.1)) > Z_CRIT and abs(z(q / 1.1)) > Z_CRIT
    assert sizes.min() < sizes.max()  # the batch size is random, never truncated


def test_reported_epsilon_equals_the_accountant_ledger_and_dp_accounting():
    import dp_accounting as dpa

    cfg = dpsgd.DPSGDConfig(
        noise_multiplier=1.1, clip_norm=1.0, sampling_rate=0.01, steps=1000
    )
    delta = 1e-5
    eps = cfg.epsilon(delta)
    # Our RDP accountant, directly.
    curve = rdp.subsampled_gaussian_rdp(rdp.DEFAULT_ORDERS, 0.01, 1.1) * 1000
    direct, _ = rdp.rdp_to_dp(rdp.DEFAULT_ORDERS, curve, delta)
    assert eps == pytest.approx(direct, rel=1e-12)
    # The ledger's (D) after the training entry that declares the run.
    led = L.replay(
        [
            L.make_config(
                currency="exact", params={}, target_epsilon=1.0, target_delta=delta,
                dp_delta=delta,
            ),
            {"kind": "train", "dp": [cfg.release()]},
        ]
    )
    assert led.dp_epsilon == eps and led.dp_method == "rdp"
    # dp_accounting: RDP within its fractional-order looseness (ours is the
    # tighter series, never above), PLD below RDP (tighter accountant).
    event = dpa.SelfComposedDpEvent(
        dpa.PoissonSampledDpEvent(0.01, dpa.GaussianDpEvent(1.1)), 1000
    )
    theirs = dpa.rdp.RdpAccountant(list(rdp.DEFAULT_ORDERS)).compose(event).get_epsilon(delta)
    assert eps <= theirs * (1 + 1e-9) and eps == pytest.approx(theirs, rel=1e-3)
    pld = cfg.epsilon(delta, accountant="pld")
    theirs_pld = dpa.pld.PLDAccountant().compose(event).get_epsilon(delta)
    assert pld == pytest.approx(theirs_pld, rel=1e-6)
    assert pld < eps
    assert pld == pytest.approx(1.515370, abs=2e-3)  # accountants.md reference value


def test_calibrate_never_overshoots_and_nonprivate_has_no_event():
    cfg = dpsgd.calibrate(2.0, 1e-5, sampling_rate=0.05, steps=200, clip_norm=1.0)
    assert cfg.epsilon(1e-5) <= 2.0
    tighter = dpsgd.DPSGDConfig(
        noise_multiplier=cfg.noise_multiplier * (1 - 1e-6), clip_norm=1.0,
        sampling_rate=0.05, steps=200,
    )
    assert tighter.epsilon(1e-5) > 2.0
    off = dpsgd.DPSGDConfig(noise_multiplier=0.0, clip_norm=None, sampling_rate=0.1, steps=3)
    assert off.epsilon(1e-5) == math.inf and not off.private
    with pytest.raises(ValueError, match="not differentially private"):
        off.release()
    for bad in (dict(sampling_rate=1.5), dict(steps=0), dict(clip_norm=-1.0)):
        kw = dict(noise_multiplier=1.0, clip_norm=1.0, sampling_rate=0.1, steps=3) | bad
        with pytest.raises(ValueError):
            dpsgd.DPSGDConfig(**kw)


# ------------------------------------------------------- extractor + head


@pytest.fixture(scope="module")
def setup():
    data = blobs(n=120)
    model, feats = extractor_mlp(jax.random.key(0), (6, 8, 3))
    cfg = dpsgd.DPSGDConfig(
        noise_multiplier=2.0, clip_norm=1.0, sampling_rate=0.2, steps=40,
        learning_rate=0.02, chunk_size=32,
    )
    method = dp_extractor(
        extractor=model, features=feats, dpsgd_config=cfg, lam=0.05, sigma=0.5,
        split="disjoint", num_classes=3,
    )
    state, charge = method.train(jax.random.key(1), data)
    return data, model, feats, cfg, method, state, charge


def test_head_removal_is_certified_removal_on_the_features(setup):
    data, _, feats, _, method, state, _ = setup
    head_rows = np.flatnonzero(~np.asarray(state.in_extractor))
    ext_rows = np.flatnonzero(np.asarray(state.in_extractor))
    assert len(head_rows) == len(ext_rows) == 60
    F = head_features(feats, state.extractor, data.x)
    assert float(jnp.max(jnp.linalg.norm(F, axis=1))) <= 1.0
    req = np.array([head_rows[0], ext_rows[0], head_rows[1]])
    new, charge, info = method.unlearn(jax.random.key(0), state, req, data)
    ref = state.head
    bound = 0.0
    for row in (head_rows[0], head_rows[1]):
        ref, i = certified.remove(ref, np.array([row]), F, data.y)
        bound += float(i.bound_increment)
    np.testing.assert_allclose(new.head.params, ref.params, rtol=1e-5, atol=1e-6)
    assert float(charge.residual_bound) == pytest.approx(bound, rel=1e-5)
    assert int(charge.num_removed) == 3 and int(charge.num_extractor_removed) == 1
    assert np.array_equal(info.in_extractor, [False, True, False])
    assert all(jax.tree.leaves(jax.tree.map(jnp.array_equal, new.extractor, state.extractor)))
    assert not np.asarray(new.mask)[req].any() and int(np.sum(new.mask)) == 117
    # Under the caller's jit too (features recomputed identically: the head's
    # data fingerprint accepts them).
    _, c2, _ = jax.jit(method.unlearn)(jax.random.key(0), state, jnp.asarray(req), data)
    assert bool(c2.valid) and float(c2.residual_bound) == pytest.approx(bound, rel=1e-4)


def test_shared_split_counts_every_removal_in_the_group(setup):
    data, model, feats, cfg, _, _, _ = setup
    m = dp_extractor(
        extractor=model, features=feats, dpsgd_config=cfg, lam=0.05, sigma=0.5, num_classes=3
    )
    state, _ = m.train(jax.random.key(2), data)
    assert bool(np.all(state.in_extractor))
    _, charge, _ = m.unlearn(jax.random.key(0), state, np.array([3, 8]), data)
    assert int(charge.num_extractor_removed) == 2 == int(charge.num_removed)
    acc = float(jnp.mean(m.predict(state.params, data.x) == data.y))
    assert acc > 0.6  # three well-separated blobs


def _cli_max_removals(capsys, **kw):
    argv = ["budget", "dp-extractor", "--json"]
    for k, v in kw.items():
        argv += ["--" + k.replace("_", "-"), repr(float(v))]
    assert cli.main(argv) == 0
    return json.loads(capsys.readouterr().out)["max_removals"]


def test_group_privacy_caps_removals_and_the_cli_agrees(setup, tmp_path, capsys):
    data, _, _, cfg, method, state, charge = setup
    delta_dp = 1e-5
    eps_dp = cfg.epsilon(delta_dp)
    head = dict(sigma=0.5, epsilon=1.0, delta=1e-5)
    target_eps, target_delta = 1.0 + 2.5 * eps_dp, 1e-3
    k_max = cur.extractor_max_removals(
        extractor_epsilon=eps_dp, extractor_delta=delta_dp, head_epsilon=1.0,
        head_delta=1e-5, target_epsilon=target_eps, target_delta=target_delta,
    )
    assert k_max == 2
    assert k_max == _cli_max_removals(
        capsys, extractor_epsilon=eps_dp, extractor_delta=delta_dp, head_epsilon=1.0,
        head_delta=1e-5, target_epsilon=target_eps, target_delta=target_delta,
    )
    led = L.Ledger.create(
        tmp_path / "x.jsonl", currency="dp_extractor",
        params=dict(extractor_epsilon=eps_dp, extractor_delta=delta_dp, head=head),
        target_epsilon=target_eps, target_delta=target_delta, dp_delta=delta_dp,
    )
    s = serve.record_training(led, charge, dp=[cfg.release()])
    assert s.dp_epsilon == pytest.approx(eps_dp, rel=1e-12)  # (D): the extractor's run
    ext_rows = np.flatnonzero(np.asarray(state.in_extractor))
    head_rows = np.flatnonzero(~np.asarray(state.in_extractor))
    # Head rows cost the head's residual only: k stays 0.
    out = serve.serve(method, state, head_rows[:1], data, key=jax.random.key(5), ledger=led)
    assert out.summary.state.num_removed == 0 and not out.retrained
    state = out.state
    for i in range(k_max):
        out = serve.serve(method, state, ext_rows[i : i + 1], data, key=jax.random.key(i), ledger=led)
        assert not out.retrained and out.summary.state.num_removed == i + 1
        state = out.state
    e, d = cur.extractor_head_epsilon(
        k_max, extractor_epsilon=eps_dp, extractor_delta=delta_dp, head_epsilon=1.0,
        head_delta=1e-5,
    )
    assert out.summary.unlearning.epsilon == pytest.approx(e) and e <= target_eps
    # Removal k_max + 1 is refused: the extractor must be retrained.
    out = serve.serve(method, state, ext_rows[k_max : k_max + 1], data, key=jax.random.key(9), ledger=led)
    assert out.retrained and "refused" in out.refusal
    assert out.summary.num_retrains == 1 and out.summary.state.num_removed == 0
    assert not np.asarray(out.state.mask)[ext_rows[: k_max + 1]].any()


def test_bad_input(setup):
    data, model, feats, cfg, method, state, _ = setup
    new, _, _ = method.unlearn(jax.random.key(0), state, np.array([5]), data)
    with pytest.raises(ValueError, match="already removed"):
        method.unlearn(jax.random.key(0), new, np.array([5]), data)
    with pytest.raises(ValueError, match="extractor_fraction"):
        dp_extractor(extractor=model, features=feats, dpsgd_config=cfg, lam=0.1, sigma=1.0,
                     split="disjoint", extractor_fraction=1.0)
    with pytest.raises(ValueError, match="split"):
        dp_extractor(extractor=model, features=feats, dpsgd_config=cfg, lam=0.1, sigma=1.0,
                     split="half")
    with pytest.raises(ValueError, match="invalid request"):
        cur.get("dp_extractor").from_charge(
            jax.device_get(jax.jit(method.unlearn)(jax.random.key(0), state, jnp.array([4, 4]), data)[1])
        )


def test_currency_counts_only_rows_the_extractor_saw():
    s = cur.extractor_update(cur.extractor_init(), 0.1, 3, extractor_removed=1)
    assert s.num_removed == 1 and s.head.num_removed == 3
    assert cur.extractor_update(cur.extractor_init(), 0.1, 2).num_removed == 2  # legacy
    with pytest.raises(ValueError, match="extractor_removed=4 <= removed=3"):
        cur.extractor_update(cur.extractor_init(), 0.1, 3, extractor_removed=4)

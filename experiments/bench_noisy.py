"""Benchmark: noisy unlearning against retraining, and the cost of a noisy step.

Measures, in one run and on one machine, at MNIST 3-vs-8 size (synthetic rows
of norm 1, n = 11,982, d = 784, labels ±1; a logistic model) and on a flax nnx
MLP (784 → 32 → 10, softmax, the same rows with ten labels):

* ``langevin_request_vs_retrain``: seconds of ``train`` on the remaining rows
  (``T`` projected noisy GD steps, the comparator of the certificate) over
  seconds of one request (``K`` steps, the smallest the accountant certifies
  at ε = 1, δ = 1/n, σ = 0.03, m = 0.011982: Chien et al. 2024's MNIST
  constants). ``T`` brings the ∞-Wasserstein gap to stationarity,
  ``2R(1 − ηm)^T``, under 1e-3.
  With these constants one row needs ``K = 0`` steps (the training noise
  already certifies ε = 1 for one row: the request only updates the mask), so
  ``langevin_request100_vs_retrain`` repeats it for a request of 100 rows.
* ``sekhari_request_vs_retrain``: seconds of ``train`` on the remaining rows
  (damped Newton to tolerance and the stored Hessian) over one request (the
  Newton correction from the stored Hessian plus the release noise), same
  (ε, δ) and capacity 1.
* ``per_example_grads_vs_loop``: a Python loop over the rows calling a jitted
  ``grad`` and clipping each gradient, over the vmapped, blocked per-example
  clipped sum (:func:`dpunlearn.methods._noisy.clipped_grad_sum`).
* ``noisy_step_vs_plain_step``: one Langevin step (per-example clipping,
  Gaussian noise, projection: ``clipped_grad_sum`` then
  :func:`dpunlearn.transforms.noisy_step_from_sum`) over one plain full-batch
  gradient step (``jax.grad`` of the mean loss, ``θ − η∇``). Both run 20
  steps inside ``lax.fori_loop``; best of several repeats. One pass over the
  data is the floor of both, so the ratio should stay under 2.
* the same two ratios on the MLP (``mlp_…``).

All times are steady state: compiled first, then timed (best of ``--repeats``;
a retraining once, after the first training compiled it).
Prints ``name: value`` lines (the machine and load first) and writes every
figure to JSON (``--out``).

Usage:
  python experiments/bench_noisy.py [--out results/bench_noisy.json] [--repeats 3]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as common

N, DIM, HIDDEN, CLASSES = 11_982, 784, 32, 10
STEPS = 20  # steps per timed loop of the step benchmark


def _best(fn, repeats: int) -> float:
    """Best wall time of ``fn()`` (blocked on its JAX outputs) after one warm-up."""
    import jax

    jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return min(times)


def _data(seed: int):
    import jax.numpy as jnp
    import numpy as np

    rng = np.random.default_rng(seed)
    x = np.abs(rng.normal(size=(N, DIM))) * (rng.random((N, DIM)) < 0.2)  # sparse, >= 0
    w = rng.normal(size=DIM)
    y = np.where((x - x.mean(0)) @ w > 0, 1.0, -1.0)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    x *= 1 - 1e-6  # float32 row norms stay <= 1
    digits = rng.integers(0, CLASSES, size=N)
    return (
        jnp.asarray(x, jnp.float32),
        jnp.asarray(y, jnp.float32),
        jnp.asarray(digits, jnp.int32),
    )


def _step_ratios(model, x, y, repeats: int, *, clip: float, prefix: str) -> dict:
    """``per_example_grads_vs_loop`` and ``noisy_step_vs_plain_step`` for one model."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    from dpunlearn import transforms
    from dpunlearn.methods import _noisy

    n = x.shape[0]
    keep = jnp.ones((n,), bool)
    params = model.params
    eta, lam, sigma, R = 0.5, 0.01, 0.03, 100.0

    fused = jax.jit(
        lambda q: _noisy.clipped_grad_sum(model.loss, q, x, y, keep, clip)[0]
    )
    t_vmap = _best(lambda: fused(params), repeats)

    grad_one = jax.jit(jax.grad(model.loss))

    def loop():
        total = jax.tree.map(jnp.zeros_like, params)
        for i in range(n):
            g = grad_one(params, x[i], y[i])
            norm = optax.global_norm(g)
            scale = jnp.minimum(1.0, clip / jnp.maximum(norm, 1e-30))
            total = jax.tree.map(lambda a, b, c=scale: a + c * b, total, g)
        return total

    t0 = time.perf_counter()
    looped = jax.block_until_ready(loop())  # one pass: it takes seconds
    t_loop = time.perf_counter() - t0
    # Same sum (a check that the two measure the same thing).
    for a, b in zip(jax.tree.leaves(looped), jax.tree.leaves(fused(params))):
        np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-3)

    def noisy(q, key):
        tx = transforms.noisy_step_from_sum(
            learning_rate=eta, noise_std=sigma, radius=R, key=key,
            weight_decay=lam, normalizer=n,
        )  # fmt: skip

        def body(_, carry):
            q, s = carry
            g, _ = _noisy.clipped_grad_sum(model.loss, q, x, y, keep, clip)
            u, s = tx.update(g, s, q)
            return optax.apply_updates(q, u), s

        return jax.lax.fori_loop(0, STEPS, body, (q, tx.init(q)))[0]

    def plain(q):
        def mean_loss(q):
            return jnp.mean(jax.vmap(model.loss, in_axes=(None, 0, 0))(q, x, y))

        def body(_, q):
            return jax.tree.map(lambda a, g: a - eta * g, q, jax.grad(mean_loss)(q))

        return jax.lax.fori_loop(0, STEPS, body, q)

    noisy_j, plain_j = jax.jit(noisy), jax.jit(plain)
    key = jax.random.key(0)
    t_noisy = _best(lambda: noisy_j(params, key), repeats) / STEPS
    t_plain = _best(lambda: plain_j(params), repeats) / STEPS
    return {
        f"{prefix}per_example_grads_vs_loop": t_loop / t_vmap,
        f"{prefix}noisy_step_vs_plain_step": t_noisy / t_plain,
        f"{prefix}seconds_per_example_grads_vmap": t_vmap,
        f"{prefix}seconds_per_example_grads_loop": t_loop,
        f"{prefix}seconds_noisy_step": t_noisy,
        f"{prefix}seconds_plain_step": t_plain,
    }


def _request_ratios(x, y, repeats: int, log) -> dict:
    """Langevin and Sekhari: one request against retraining, through the interface."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from dpunlearn import methods, models

    n = x.shape[0]
    data = methods.Data(x, y)
    model = models.linear(DIM)
    m, eps, delta, R = 1e-6 * n, 1.0, 1.0 / n, 10.0
    eta = 1.0 / (0.25 + m)
    train_steps = math.ceil(math.log(1e-3 / (2 * R)) / math.log(1 - eta * m))
    request = jnp.asarray([0], jnp.int32)
    mask = np.ones(n, bool)
    mask[0] = False
    mask = jnp.asarray(mask)
    out = {}
    keys = iter(jax.random.split(jax.random.key(1), 64))

    lang = methods.FACTORIES["langevin"](
        model, num_rows=n, lam=m, sigma=0.03, radius=R, epsilon=eps, delta=delta,
        train_steps=train_steps,
    )  # fmt: skip
    state, _ = lang.train(next(keys), data, None)
    t_req = _best(lambda: lang.unlearn(next(keys), state, request, data), repeats)
    _, t_re = common.timed(lang.train, next(keys), data, mask)  # compiled by the first
    _, charge, _ = lang.unlearn(next(keys), state, request, data)
    out.update(
        langevin_request_vs_retrain=t_re / t_req,
        langevin_seconds_request=t_req,
        langevin_seconds_retrain=t_re,
        langevin_unlearn_steps=int(charge.steps),
        langevin_train_steps=train_steps,
        langevin_epsilon_certified=float(charge.epsilon),
    )
    log(
        f"# langevin: K={int(charge.steps)} vs T={train_steps}: {t_req:.4f}s vs {t_re:.3f}s"
    )

    # A request of 100 rows: the accountant asks for more steps than the
    # retraining's T (the crossover of the README's table).
    big = jnp.arange(100, dtype=jnp.int32)
    mask_big = jnp.ones((n,), bool).at[big].set(False)
    lang = methods.FACTORIES["langevin"](
        model, num_rows=n, lam=m, sigma=0.03, radius=R, epsilon=eps, delta=delta,
        train_steps=train_steps, request_size=100,
    )  # fmt: skip
    state, _ = lang.train(next(keys), data, None)
    t_req = _best(lambda: lang.unlearn(next(keys), state, big, data), repeats)
    _, t_re = common.timed(lang.train, next(keys), data, mask_big)
    _, charge, _ = lang.unlearn(next(keys), state, big, data)
    out.update(
        langevin_request100_vs_retrain=t_re / t_req,
        langevin100_seconds_request=t_req,
        langevin100_seconds_retrain=t_re,
        langevin100_unlearn_steps=int(charge.steps),
    )
    log(
        f"# langevin, 100 rows: K={int(charge.steps)} vs T={train_steps}: {t_req:.3f}s vs {t_re:.3f}s"
    )

    sek = methods.FACTORIES["sekhari"](
        model, lam=m, epsilon=eps, delta=delta, capacity=1,
        hessian_lipschitz=1.0 / (6.0 * math.sqrt(3.0)), gradient_bound=2.0,
        calibration="analytic",
    )  # fmt: skip
    state, _ = sek.train(next(keys), data, None)
    t_req = _best(lambda: sek.unlearn(next(keys), state, request, data), repeats)
    _, t_re = common.timed(sek.train, next(keys), data, mask)
    out.update(
        sekhari_request_vs_retrain=t_re / t_req,
        sekhari_seconds_request=t_req,
        sekhari_seconds_retrain=t_re,
    )
    log(f"# sekhari: {t_req:.4f}s vs {t_re:.3f}s")
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip-mlp", action="store_true")
    p.add_argument("--out", default="results/bench_noisy.json")
    args = p.parse_args(argv)
    if args.repeats < 1:
        raise SystemExit("error: --repeats must be >= 1")
    log = lambda s: print(s, file=sys.stderr, flush=True)

    from dpunlearn import models

    clock = common.Stopwatch()
    with common.single_threaded_blas():
        x, y, digits = _data(args.seed)
        figures = {}
        figures.update(_request_ratios(x, y, args.repeats, log))
        log(f"# [{clock.elapsed():.0f}s] requests done")
        figures.update(
            _step_ratios(models.linear(DIM), x, y, args.repeats, clip=1.0, prefix="")
        )
        log(f"# [{clock.elapsed():.0f}s] linear steps done")
        if not args.skip_mlp:
            import jax

            module = models.init_nnx_mlp(
                jax.random.key(args.seed), (DIM, HIDDEN, CLASSES)
            )
            mlp, _ = models.from_nnx(module)
            figures.update(
                _step_ratios(mlp, x, digits, args.repeats, clip=1.0, prefix="mlp_")
            )
            log(f"# [{clock.elapsed():.0f}s] mlp steps done")
    env = common.environment()
    result = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "load_average": list(os.getloadavg()),
            "backend": env["backend"],
        },
        "shape": {"n": N, "d": DIM, "mlp": [DIM, HIDDEN, CLASSES]},
        "figures": figures,
        "environment": env,
        "wall_seconds": clock.elapsed(),
    }
    print(f"platform: {result['machine']['platform']}")
    print(f"cpu_count: {result['machine']['cpu_count']}")
    print(
        f"load_average: {', '.join(f'{v:.2f}' for v in result['machine']['load_average'])}"
    )
    for name in (
        "langevin_request_vs_retrain",
        "langevin_request100_vs_retrain",
        "sekhari_request_vs_retrain",
        "per_example_grads_vs_loop",
        "noisy_step_vs_plain_step",
        "mlp_per_example_grads_vs_loop",
        "mlp_noisy_step_vs_plain_step",
    ):
        if name in figures:
            print(f"{name}: {figures[name]:.2f}")
    common.write_json(args.out, result)
    print(f"# wrote {args.out}")
    return result


if __name__ == "__main__":
    main()

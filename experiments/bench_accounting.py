"""Benchmark: ε of a long heterogeneous Gaussian unlearning ledger.

A ledger of N Gaussian unlearning requests (each a Gaussian release of a
sensitivity-1 query, with its own σ) is accounted three ways:

* ours: one vectorised call, ``gaussian_rdp`` on the array of N σ's,
  ``compose_rdp`` and ``rdp_to_dp`` (improved conversion, default orders);
* dp_accounting's ``RdpAccountant``, composing one ``GaussianDpEvent`` per
  request, as a user folding requests would;
* dp_accounting's ``PLDAccountant``, also one event per request. Its cost grows
  with every convolution, so it is stopped after ``--pld-max`` requests (or
  ``--pld-seconds``) and its time is **extrapolated linearly** to N (an
  under-estimate: later convolutions are the expensive ones). Its ε for the
  whole ledger is computed with one ``GaussianDpEvent(σ_eff)``, σ_eff =
  (Σσᵢ⁻²)^(−1/2), which is the same mechanism (Gaussians compose exactly), and
  the per-request fold is compared with ours on the prefix it reached.

It also times one calibration (RDP: the σ that lets N equal requests fit a
budget). Prints ``name: value`` lines and writes every figure to ``--out``.

Usage: python experiments/bench_accounting.py [--out results/bench_accounting.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import dp_accounting  # noqa: E402
import numpy as np  # noqa: E402

from dpunlearn.accounting import calibration, mechanisms, rdp  # noqa: E402


def _best_of(fn, repeats: int):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="results/bench_accounting.json")
    p.add_argument("--num-requests", type=int, default=10_000)
    p.add_argument("--delta", type=float, default=1e-5)
    p.add_argument("--sigma-min", type=float, default=30.0)
    p.add_argument("--sigma-max", type=float, default=100.0)
    p.add_argument("--pld-max", type=int, default=200, help="PLD fold stops here")
    p.add_argument("--pld-seconds", type=float, default=120.0, help="or after this long")
    p.add_argument("--calib-epsilon", type=float, default=8.0)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    n, delta = args.num_requests, args.delta
    rng = np.random.default_rng(args.seed)
    sigmas = rng.uniform(args.sigma_min, args.sigma_max, n)
    orders = rdp.DEFAULT_ORDERS

    # --- ours: one vectorised composition ---------------------------------
    def ours():
        total = rdp.compose_rdp(rdp.gaussian_rdp(orders, sigmas))
        return rdp.rdp_to_dp(orders, total, delta)

    ours_seconds, (eps_ours, order_ours) = _best_of(ours, 5)

    sigma_eff = float(np.sum(sigmas**-2.0) ** -0.5)
    eps_exact = mechanisms.gaussian_epsilon(delta, sigma=sigma_eff)

    # --- dp_accounting RDP, one event per request ---------------------------
    t0 = time.perf_counter()
    acc = dp_accounting.rdp.RdpAccountant()
    for s in sigmas:
        acc.compose(dp_accounting.GaussianDpEvent(float(s)))
    eps_dpa_rdp = float(acc.get_epsilon(delta))
    dpa_rdp_seconds = time.perf_counter() - t0

    # --- dp_accounting PLD, one event per request (stopped early) -----------
    t0 = time.perf_counter()
    pld = dp_accounting.pld.PLDAccountant()
    done = 0
    for s in sigmas[: args.pld_max]:
        pld.compose(dp_accounting.GaussianDpEvent(float(s)))
        done += 1
        if time.perf_counter() - t0 > args.pld_seconds:
            break
    eps_pld_prefix = float(pld.get_epsilon(delta))
    pld_prefix_seconds = time.perf_counter() - t0
    pld_extrapolated = done < n
    dpa_pld_seconds = pld_prefix_seconds * n / done
    eps_ours_prefix = rdp.rdp_to_dp(
        orders, rdp.compose_rdp(rdp.gaussian_rdp(orders, sigmas[:done])), delta
    )[0]
    eps_exact_prefix = mechanisms.gaussian_epsilon(
        delta, sigma=float(np.sum(sigmas[:done] ** -2.0) ** -0.5)
    )
    eps_dpa_pld = float(
        dp_accounting.pld.PLDAccountant()
        .compose(dp_accounting.GaussianDpEvent(sigma_eff))
        .get_epsilon(delta)
    )

    # --- one calibration ------------------------------------------------------
    calib_seconds, sigma_cal = _best_of(
        lambda: calibration.calibrate_gaussian_sigma(
            args.calib_epsilon, delta, count=n, accountant="rdp"
        ),
        3,
    )
    calib_exact_seconds, sigma_cal_exact = _best_of(
        lambda: calibration.calibrate_gaussian_sigma(args.calib_epsilon, delta, count=n), 3
    )
    eps_at_cal = rdp.rdp_to_dp(orders, n * rdp.gaussian_rdp(orders, sigma_cal), delta)[0]

    results = {
        "ledger_10000_seconds" if n == 10_000 else f"ledger_{n}_seconds": ours_seconds,
        "speedup_vs_dp_accounting_rdp": dpa_rdp_seconds / ours_seconds,
        "speedup_vs_dp_accounting_pld": dpa_pld_seconds / ours_seconds,
        "epsilon_ours": float(eps_ours),
        "epsilon_dp_accounting_pld": eps_dpa_pld,
        "calibration_seconds": calib_seconds,
        # details
        "num_requests": n,
        "delta": delta,
        "sigma_range": [args.sigma_min, args.sigma_max],
        "seed": args.seed,
        "best_order_ours": float(order_ours),
        "epsilon_exact_gaussian": eps_exact,
        "sigma_effective": sigma_eff,
        "epsilon_dp_accounting_rdp": eps_dpa_rdp,
        "epsilon_ours_minus_dp_accounting_rdp": float(eps_ours) - eps_dpa_rdp,
        "epsilon_ours_minus_dp_accounting_pld": float(eps_ours) - eps_dpa_pld,
        "epsilon_dp_accounting_pld_minus_exact": eps_dpa_pld - eps_exact,
        "dp_accounting_rdp_seconds": dpa_rdp_seconds,
        "dp_accounting_pld_seconds": dpa_pld_seconds,
        "dp_accounting_pld_extrapolated": pld_extrapolated,
        "dp_accounting_pld_requests_folded": done,
        "dp_accounting_pld_prefix_seconds": pld_prefix_seconds,
        "epsilon_dp_accounting_pld_prefix_fold": eps_pld_prefix,
        "epsilon_ours_prefix": float(eps_ours_prefix),
        "epsilon_exact_prefix": eps_exact_prefix,
        "calibration_target_epsilon": args.calib_epsilon,
        "calibration_sigma_rdp": sigma_cal,
        "calibration_epsilon_at_sigma_rdp": float(eps_at_cal),
        "calibration_exact_seconds": calib_exact_seconds,
        "calibration_sigma_exact": sigma_cal_exact,
        "ledger_module_timed": False,
        "ledger_module_note": (
            "dpunlearn.accounting.ledger is a journal with currency-specific "
            "entries; not timed here (the vectorised composition it folds with is)."
        ),
        "versions": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "dp_accounting": getattr(dp_accounting, "__version__", "0.6.0?"),
        },
        "machine": platform.platform(),
    }

    for key in [
        next(k for k in results if k.startswith("ledger_") and k.endswith("_seconds")),
        "speedup_vs_dp_accounting_rdp",
        "speedup_vs_dp_accounting_pld",
        "epsilon_ours",
        "epsilon_dp_accounting_pld",
        "calibration_seconds",
    ]:
        print(f"{key}: {results[key]:.6g}")
    print(f"epsilon_exact_gaussian: {eps_exact:.6g}")
    print(f"epsilon_dp_accounting_rdp: {eps_dpa_rdp:.6g}")
    print(f"epsilon_ours_minus_dp_accounting_pld: {results['epsilon_ours_minus_dp_accounting_pld']:.6g}")
    print(f"dp_accounting_rdp_seconds: {dpa_rdp_seconds:.6g}")
    note = (
        f"extrapolated linearly from {done} folded requests ({pld_prefix_seconds:.3g} s)"
        if pld_extrapolated
        else "measured on all requests"
    )
    print(f"dp_accounting_pld_seconds: {dpa_pld_seconds:.6g} ({note})")
    print(
        f"prefix_{done}_epsilon: ours {eps_ours_prefix:.6g}, dp_accounting_pld_fold "
        f"{eps_pld_prefix:.6g}, exact {eps_exact_prefix:.6g}"
    )
    print(f"calibration_sigma_rdp: {sigma_cal:.6g} (epsilon {eps_at_cal:.6g} <= {args.calib_epsilon})")

    assert eps_exact <= eps_ours + 1e-9, "RDP must upper-bound the exact Gaussian ε"
    assert abs(eps_ours - eps_dpa_rdp) <= 1e-6 * eps_dpa_rdp, "same RDP, same grid"
    assert eps_at_cal <= args.calib_epsilon, "calibration overshot"

    out_dir = os.path.dirname(args.out)
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1)
    print(f"wrote: {args.out}")
    return results


if __name__ == "__main__":
    main()

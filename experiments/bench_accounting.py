"""Benchmark: ε of a long heterogeneous Gaussian unlearning ledger.

A ledger of N Gaussian releases (the training release and N − 1 unlearning
requests, each a Gaussian release of a sensitivity-1 query with its own σ) is
accounted these ways:

* ours, through the ledger (the headline ``ledger_N_seconds``):
  ``dpunlearn.accounting.ledger.replay`` of the N entries held in memory
  (config line + train + N − 1 requests, currency ``sekhari``). Its (D)
  report ``dp_epsilon`` is ``epsilon_ours``: every release is a plain
  Gaussian, so it is the exact ε of the composed Gaussian
  σ_eff = (Σσᵢ⁻²)^(−1/2), i.e. ``gaussian_epsilon(δ, sigma=σ_eff)``, the
  minimum of that and the RDP value (both certified);
* ours, the same ledger replayed from a file (``replay_file``: read, JSON
  parse, replay), and written through the file path: ``Ledger.create`` in a
  temporary directory and N ``append``s (budget check, one ``O_APPEND``
  write and one ``fsync`` each). If the first ``--file-appends`` appends
  project a total above ``--file-seconds``, the rest is not written and the
  time is **extrapolated linearly** (said in the output);
* ours, one vectorised call: ``gaussian_rdp`` on the array of N σ's,
  ``compose_rdp`` and ``rdp_to_dp`` (improved conversion, default orders);
  RDP only, no ledger;
* dp_accounting's ``RdpAccountant``, composing one ``GaussianDpEvent`` per
  request, as a user folding requests would;
* dp_accounting's ``PLDAccountant``, also one event per request. Its cost grows
  with every convolution, so it is stopped after ``--pld-max`` requests (or
  ``--pld-seconds``) and its time is **extrapolated linearly** to N (an
  under-estimate: later convolutions are the expensive ones). Its ε for the
  whole ledger is computed with one ``GaussianDpEvent(σ_eff)``, which is the
  same mechanism (Gaussians compose exactly), and the per-request fold is
  compared with ours on the prefix it reached.

The speed-ups are dp_accounting's time over our in-memory ledger replay. It
also times one calibration (RDP: the σ that lets N equal requests fit a
budget). Prints ``name: value`` lines and writes every figure to ``--out``.

Usage: python experiments/bench_accounting.py [--out results/bench_accounting.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import dp_accounting  # noqa: E402
import numpy as np  # noqa: E402

from dpunlearn.accounting import calibration, mechanisms, rdp  # noqa: E402
from dpunlearn.accounting import ledger as L  # noqa: E402


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
    p.add_argument(
        "--file-appends", type=int, default=500, help="appends timed before deciding"
    )
    p.add_argument(
        "--file-seconds",
        type=float,
        default=120.0,
        help="write all N appends only if the projected total is below this",
    )
    p.add_argument("--tmp-dir", default=None, help="where the ledger file is written")
    p.add_argument("--calib-epsilon", type=float, default=8.0)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    n, delta = args.num_requests, args.delta
    rng = np.random.default_rng(args.seed)
    sigmas = rng.uniform(args.sigma_min, args.sigma_max, n)
    orders = rdp.DEFAULT_ORDERS

    # --- ours: one vectorised composition (RDP only, no ledger) ------------
    def vectorised():
        total = rdp.compose_rdp(rdp.gaussian_rdp(orders, sigmas))
        return rdp.rdp_to_dp(orders, total, delta)

    vec_seconds, (eps_vec, order_vec) = _best_of(vectorised, 5)

    sigma_eff = float(np.sum(sigmas**-2.0) ** -0.5)
    eps_exact = mechanisms.gaussian_epsilon(delta, sigma=sigma_eff)

    # --- ours: through the ledger ------------------------------------------
    config = L.make_config(
        currency="sekhari",
        params={"capacity": n},
        target_epsilon=1.0,
        target_delta=delta,
        dp_delta=delta,
    )
    t_fixed = 1.7e9  # a fixed timestamp, so the entries are reproducible
    entries = [config]
    for i, s in enumerate(sigmas, start=1):
        entries.append(
            {
                "kind": "train" if i == 1 else "request",
                "seq": i,
                "time": t_fixed + i,
                "dp": [L.gaussian_release(float(s))],
            }
        )
    ledger_seconds, summary = _best_of(lambda: L.replay(entries), 5)
    eps_ours = summary.dp_epsilon

    tmp = tempfile.mkdtemp(prefix="bench_ledger_", dir=args.tmp_dir)
    try:
        # (a') replay from a file holding the same entries.
        path = os.path.join(tmp, "replay.jsonl")
        with open(path, "wb") as f:
            f.write(b"".join(L.encode_entry(e) for e in entries))
        file_bytes = os.path.getsize(path)
        file_replay_seconds, (summary_file, _) = _best_of(
            lambda: L.replay_file(path), 3
        )
        assert summary_file == summary, "file replay == in-memory replay"

        # (b) the append path: create, then append (check + write + fsync).
        path = os.path.join(tmp, "append.jsonl")
        t0 = time.perf_counter()
        led = L.Ledger.create(
            path,
            currency="sekhari",
            params={"capacity": n},
            target_epsilon=1.0,
            target_delta=delta,
            dp_delta=delta,
        )
        first = min(n, max(1, args.file_appends))
        for e in entries[1 : 1 + first]:
            led.append({k: v for k, v in e.items() if k != "seq"})
        first_seconds = time.perf_counter() - t0
        projected = first_seconds * n / first
        if first < n and projected <= args.file_seconds:
            for e in entries[1 + first :]:
                led.append({k: v for k, v in e.items() if k != "seq"})
        appended = led.summary.num_entries
        append_measured = time.perf_counter() - t0
        append_extrapolated = appended < n
        append_seconds = append_measured * n / appended
        # The live summary after the last append is the replay of that prefix.
        assert led.summary == L.replay(entries[: 1 + appended]), "live == replay"
        assert L.replay_file(path)[0] == led.summary, "file replay == live"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

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
    eps_ours_prefix = L.replay(entries[: 1 + done]).dp_epsilon
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

    ledger_key = f"ledger_{n}_seconds"
    results = {
        ledger_key: ledger_seconds,
        "speedup_vs_dp_accounting_rdp": dpa_rdp_seconds / ledger_seconds,
        "speedup_vs_dp_accounting_pld": dpa_pld_seconds / ledger_seconds,
        "epsilon_ours": float(eps_ours),
        "epsilon_dp_accounting_pld": eps_dpa_pld,
        "calibration_seconds": calib_seconds,
        # details: the ledger
        "ledger_timed": "dpunlearn.accounting.ledger.replay of the in-memory entries",
        "ledger_entries": len(entries) - 1,
        "ledger_composition": f"1 train + {n - 1} requests, each one Gaussian release",
        "ledger_currency": "sekhari",
        "ledger_dp_method": summary.dp_method,
        "ledger_epsilon_rdp": summary.dp_epsilon_rdp,
        "ledger_best_order_rdp": summary.dp_order,
        "ledger_gaussian_precision": summary.dp_gaussian_precision,
        "ledger_file_replay_seconds": file_replay_seconds,
        "ledger_file_bytes": file_bytes,
        "ledger_file_append_seconds": append_seconds,
        "ledger_file_append_extrapolated": append_extrapolated,
        "ledger_file_appends_done": appended,
        "ledger_file_appends_measured_seconds": append_measured,
        "ledger_file_first_appends": first,
        "ledger_file_first_appends_seconds": first_seconds,
        "ledger_file_append_ms_per_entry": 1e3 * append_measured / appended,
        # details: the vectorised composition (RDP, no ledger)
        f"vectorised_composition_{n}_seconds": vec_seconds,
        "epsilon_vectorised_rdp": float(eps_vec),
        "best_order_vectorised_rdp": float(order_vec),
        "speedup_vectorised_vs_dp_accounting_rdp": dpa_rdp_seconds / vec_seconds,
        # details: references
        "num_requests": n - 1,
        "num_releases": n,
        "delta": delta,
        "sigma_range": [args.sigma_min, args.sigma_max],
        "seed": args.seed,
        "epsilon_exact_gaussian": eps_exact,
        "sigma_effective": sigma_eff,
        "epsilon_dp_accounting_rdp": eps_dpa_rdp,
        "epsilon_ours_minus_exact_gaussian": float(eps_ours) - eps_exact,
        "epsilon_ours_rdp_minus_dp_accounting_rdp": summary.dp_epsilon_rdp - eps_dpa_rdp,
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
        "versions": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "dp_accounting": getattr(dp_accounting, "__version__", "0.6.0?"),
        },
        "machine": platform.platform(),
    }

    for key in [
        ledger_key,
        "speedup_vs_dp_accounting_rdp",
        "speedup_vs_dp_accounting_pld",
        "epsilon_ours",
        "epsilon_dp_accounting_pld",
        "calibration_seconds",
    ]:
        print(f"{key}: {results[key]:.6g}")
    print(
        f"ledger: {n} Gaussian releases (1 train + {n - 1} requests) replayed in "
        f"memory; dp_method {summary.dp_method}, RDP value "
        f"{summary.dp_epsilon_rdp:.6g}"
    )
    print(f"ledger_file_replay_seconds: {file_replay_seconds:.6g} ({file_bytes} bytes)")
    note = (
        f"extrapolated linearly from {appended} appends ({append_measured:.3g} s)"
        if append_extrapolated
        else f"measured on all {appended} appends"
    )
    print(
        f"ledger_file_append_seconds: {append_seconds:.6g} ({note}; create + append "
        f"with budget check, write and fsync each; "
        f"{results['ledger_file_append_ms_per_entry']:.3g} ms/append)"
    )
    print(f"vectorised_composition_{n}_seconds: {vec_seconds:.6g} (RDP only, no ledger)")
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

    assert summary.dp_method == "exact-gaussian", "all releases are Gaussian"
    assert abs(eps_ours - eps_exact) <= 1e-9 * eps_exact, "ledger ε is the exact Gaussian ε"
    assert eps_ours <= summary.dp_epsilon_rdp, "minimum of two upper bounds"
    # dp_accounting's PLD is pessimistic (an upper bound up to its grid, 1e-4).
    assert eps_ours <= eps_dpa_pld + 1e-9 and eps_dpa_pld - eps_ours <= 1e-3
    assert abs(summary.dp_epsilon_rdp - eps_dpa_rdp) <= 1e-6 * eps_dpa_rdp, "same RDP, same grid"
    assert abs(summary.dp_epsilon_rdp - eps_vec) <= 1e-9 * eps_vec, "ledger RDP == vectorised"
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

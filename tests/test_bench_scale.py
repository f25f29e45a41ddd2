"""``experiments/bench_scale.py``'s at-scale part (``--gpu``) runs end to end.

No GPU in CI: ``--allow-cpu`` runs the same measurement on the CPU at a small
size, in its own process (it switches float64 on). The figures are not GPU
figures; the test checks that every one is produced and consistent: passes
per removal counted from the solver's iterations (two per iteration, at
least one iteration), and the bandwidth fractions derived from them and the
given peak.
"""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_at_scale_part_runs_on_cpu(tmp_path):
    out = tmp_path / "scale.json"
    cmd = [
        sys.executable, os.path.join(ROOT, "experiments", "bench_scale.py"),
        "--skip-scaling", "--gpu", "--allow-cpu", "--gpu-rows", "3000",
        "--gpu-cols", "40", "--removals", "3", "--repeats", "1",
        "--peak-gbps", "10", "--out", str(out),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(out.read_text())
    for dtype in ("float32", "float64"):
        row = res["gpu"][dtype]
        assert row["passes_per_removal"] >= 2
        bytes_x = 3000 * 40 * (4 if dtype == "float32" else 8)
        gbps = row["passes_per_removal"] * bytes_x / row["removal_s"] / 1e9
        assert abs(row["removal_gbps"] - gbps) <= 1e-9 * gbps
        assert abs(row["removal_bandwidth_fraction"] - gbps / 10) <= 1e-9 * gbps
        assert f"gpu_{dtype}_removal_s:" in proc.stdout

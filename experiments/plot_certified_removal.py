"""Plots for experiments/certified_removal.py (Guo et al. 2020, Figures 1 and 2).

Reads ``results.json`` from ``--out`` and writes two PNGs there:

- ``fig2_residuals.png``: the worst-case cumulative bound, the data-dependent
  cumulative bound and the true gradient residual against the number of
  points removed (log y), with the (epsilon, delta) residual budgets. For a
  ``--correct-residual`` run (``results["bound_mode"] == "current"``) both
  bounds are bounds on the *current* residual after each residual-correcting
  Newton step, not running sums, and the labels say so.
- ``fig1_accuracy_vs_removals.png``: test accuracy against the number of
  removals supported before retraining, one line per lambda across sigma.

Usage::

    python experiments/plot_certified_removal.py --out results/certified_removal
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

FIG2 = "fig2_residuals.png"
FIG1 = "fig1_accuracy_vs_removals.png"


def _title(results: dict) -> str:
    cfg = results["config"]
    classes = cfg.get("classes_resolved") or cfg.get("classes")
    cls = "-vs-".join(str(c) for c in classes) if classes else "all classes"
    n = results.get("n_train")
    dtype = "float64" if cfg.get("x64") else "float32"
    return f"{cfg['dataset']} {cls} (n={n}, {dtype})"


def _current(results: dict) -> bool:
    """True for a --correct-residual run (bounds on the current residual)."""
    return results.get("bound_mode") == "current"


def plot_residuals(results: dict, path: str) -> str:
    """Figure 2: the three residual curves against the number of removals."""
    rem = results["removals"]
    current = _current(results)
    x = np.array([r["num_removed"] for r in rem], dtype=float)
    worst_key = "worst_case_current" if current else "worst_case_cumulative"
    worst = np.array([r[worst_key] for r in rem], dtype=float)
    dd = np.array([r["cumulative_bound"] for r in rem], dtype=float)
    true = np.array([r["true_residual"] for r in rem], dtype=float)
    budgets = results["budgets"]
    cfg = results["config"]

    kind = (
        "bound on the current residual\n(residual-correcting Newton step)"
        if current
        else "cumulative"
    )
    fig, ax = plt.subplots(figsize=(6.4, 5.2), dpi=130)
    ax.plot(x, worst, color="tab:red", lw=2, label=f"worst-case bound (Thm 1), {kind}")
    ax.plot(
        x, dd, color="tab:blue", lw=2, label=f"data-dependent bound (Cor 1), {kind}"
    )
    ax.plot(x, true, color="tab:green", lw=1.2, label="true residual ‖∇L_b(w; D′)‖")
    styles = {"paper": ":", "analytic": "--"}
    for method, value in budgets.items():
        ax.axhline(
            value,
            color="black",
            ls=styles.get(method, "-."),
            lw=1.2,
            label=f"budget σε/c ({method}) = {value:.3g}"
            if method == "paper"
            else f"budget ({method} Gaussian) = {value:.3g}",
        )
    ax.set_yscale("log")
    ax.set_xlabel("number of points removed")
    ax.set_ylabel("gradient residual norm (sum form)")
    mode = (
        "residual-correcting Newton step: bounds on the current residual, not summed"
        if current
        else "Algorithm 2: cumulative bounds"
    )
    ax.set_title(
        f"{_title(results)}\nλ={cfg['lam']:g}, σ={cfg['sigma']:g}, "
        f"ε={cfg['epsilon']:g}, δ={cfg['delta']:g}, batch={cfg['batch_size']}\n{mode}",
        fontsize=9,
    )
    ax.set_xlim(0, max(x.max(), 1))
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(
        fontsize=7,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.14),
        ncol=2,
        frameon=False,
    )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_grid(results: dict, path: str) -> str | None:
    """Figure 1: test accuracy vs removals supported, one line per λ across σ."""
    grid = results.get("grid") or []
    if not grid:
        return None
    cfg = results["config"]
    fig, ax = plt.subplots(figsize=(6.4, 5.2), dpi=130)
    lams = sorted({g["lam"] for g in grid})
    sigmas = sorted({g["sigma"] for g in grid})
    colors = plt.cm.viridis(np.linspace(0.0, 0.85, max(len(lams), 1)))
    markers = dict(zip(sigmas, "osD^vP*X"))
    cap = max(g["removals_run"] for g in grid)
    method = "paper" if "paper" in grid[0]["removals_supported"] else "analytic"
    for lam, color in zip(lams, colors):
        pts = sorted((g for g in grid if g["lam"] == lam), key=lambda g: g["sigma"])
        xs = np.array([g["removals_supported"][method] for g in pts], dtype=float)
        ys = np.array([100 * g["test_accuracy"] for g in pts], dtype=float)
        ax.plot(xs, ys, "-", color=color, lw=1.5, alpha=0.8)
        for g, xv, yv in zip(pts, xs, ys):
            capped = g["removals_supported_capped"][method]
            ax.scatter(
                [xv],
                [yv],
                marker=markers.get(g["sigma"], "o"),
                s=45,
                zorder=3,
                lw=1.5,
                facecolors="white" if capped else color,
                edgecolors=color,
            )
    handles = [
        plt.Line2D([], [], color=c, lw=2, label=f"λ = {lam:g}")
        for lam, c in zip(lams, colors)
    ] + [
        plt.Line2D(
            [],
            [],
            color="gray",
            marker=markers.get(sg, "o"),
            ls="",
            label=f"σ = {sg:g}",
        )
        for sg in sigmas
    ]
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xlim(-0.2, cap * 1.8 + 1)
    what = "σε/c budget" if method == "paper" else "analytic Gaussian budget"
    if _current(results):
        ax.set_xlabel(
            "removals before the bound on the current residual (residual-correcting\n"
            f"Newton step) first exceeds the budget (ε={cfg['epsilon']:g}, "
            f"δ={cfg['delta']:g}, {what})"
        )
    else:
        ax.set_xlabel(
            f"removals supported before retraining (ε={cfg['epsilon']:g}, "
            f"δ={cfg['delta']:g}, {what})"
        )
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(
        f"{_title(results)}: accuracy vs supported removals\n"
        f"(hollow: still within budget after all {cap} removals run)",
        fontsize=9,
    )
    ax.grid(True, alpha=0.3)
    ax.legend(
        handles=handles,
        fontsize=7.5,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.19 if _current(results) else -0.14),
        ncol=4,
        frameon=False,
    )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def make_plots(results: dict, out: str) -> dict[str, str]:
    """Writes both figures into ``out``; returns {name: path}."""
    paths = {"fig2": plot_residuals(results, os.path.join(out, FIG2))}
    p1 = plot_grid(results, os.path.join(out, FIG1))
    if p1:
        paths["fig1"] = p1
    return paths


def main(argv: list[str] | None = None) -> dict[str, str]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="results/certified_removal")
    args = p.parse_args(argv)
    with open(os.path.join(args.out, "results.json")) as f:
        results = json.load(f)
    paths = make_plots(results, args.out)
    for k, v in paths.items():
        print(f"{k}: {v}")
    return paths


if __name__ == "__main__":
    main(sys.argv[1:])

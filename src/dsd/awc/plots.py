"""Plots of the AWC evaluation: throughput, TPOT and TTFT per case and policy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

POLICIES = (("static4", "static γ=4"), ("dynamic", "dynamic"), ("best", "best static (hindsight)"),
            ("awc", "AWC"))


def plot_results(table: list[dict[str, Any]], out: str | Path, run: str = "") -> list[Path]:
    """One grouped-bar figure per metric (awc_throughput/tpot/ttft.png); returns the paths.
    `run` describes the runs behind the figures (e.g. "2 seeds x 300 s"), for the title."""
    import matplotlib

    matplotlib.use("Agg")  # headless: CI and servers have no display
    import matplotlib.pyplot as plt
    import numpy as np

    out = Path(out)
    cases = [c["case"] for c in table]
    x = np.arange(len(cases))
    width = 0.2
    paths = []
    about = f"{len(cases)} cases" + (f", {run}" if run else "")
    for metric, title, ylabel, fname in (
            ("throughput", "throughput relative to static γ=4 (response-time law)",
             "throughput / static γ=4", "awc_throughput.png"),
            ("tpot_ms", "mean TPOT", "mean TPOT (ms)", "awc_tpot.png"),
            ("ttft_ms", "mean TTFT", "mean TTFT (ms)", "awc_ttft.png")):
        fig, ax = plt.subplots(figsize=(12, 4.4), layout="constrained")
        for i, (key, name) in enumerate(POLICIES):
            vals = []
            for c in table:
                pol = c["best_static"] if key == "best" else key
                base = c["policies"]["static4"][metric] or 1.0
                # Throughput as a ratio to static gamma=4: cases differ 5x in absolute load.
                v = c["policies"][pol][metric]
                vals.append(v / base if metric == "throughput" else v)
            ax.bar(x + (i - 1.5) * width, vals, width, label=name)
        ax.set_xticks(x, cases, rotation=30, ha="right")
        ax.set_ylabel(ylabel)
        if metric == "throughput":
            ax.axhline(1.0, color="grey", lw=0.8)
            ratios = [c["policies"][p]["throughput"] / c["policies"]["static4"]["throughput"]
                      for c in table for p in c["policies"]]
            span = max(ratios) - min(ratios)
            ax.set_ylim(max(0.0, min(ratios) - 0.15 * span), max(ratios) + 0.1 * span)
        ax.grid(axis="y", alpha=0.3)
        fig.suptitle(f"AWC evaluation: {title} ({about})")
        fig.legend(loc="outside lower center", ncol=4, frameon=False, fontsize=9)
        path = out / fname
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths

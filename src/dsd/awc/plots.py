"""Plots of the AWC evaluation: throughput, TPOT and TTFT per case and policy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

POLICIES = (("static4", "static γ=4"), ("dynamic", "dynamic"), ("best", "best static (hindsight)"),
            ("awc", "AWC"))


def plot_results(table: list[dict[str, Any]], out: str | Path) -> list[Path]:
    """One grouped-bar figure per metric (awc_throughput/tpot/ttft.png); returns the paths."""
    import matplotlib

    matplotlib.use("Agg")  # headless: CI and servers have no display
    import matplotlib.pyplot as plt
    import numpy as np

    out = Path(out)
    cases = [c["case"] for c in table]
    x = np.arange(len(cases))
    width = 0.2
    paths = []
    for metric, label, fname in (("throughput", "throughput (req/s, response-time law)",
                                  "awc_throughput.png"),
                                 ("tpot_ms", "mean TPOT (ms)", "awc_tpot.png"),
                                 ("ttft_ms", "mean TTFT (ms)", "awc_ttft.png")):
        fig, ax = plt.subplots(figsize=(12, 4))
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
        ax.set_ylabel(label + (" / static γ=4" if metric == "throughput" else ""))
        if metric == "throughput":
            ax.axhline(1.0, color="grey", lw=0.8)
            lo = min(min(c["policies"][p]["throughput"] / c["policies"]["static4"]["throughput"]
                         for p in c["policies"]) for c in table)
            ax.set_ylim(max(0.0, lo - 0.05), None)
        ax.legend(ncol=4, fontsize=8)
        ax.set_title(f"AWC evaluation: {label}")
        fig.tight_layout()
        path = out / fname
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths

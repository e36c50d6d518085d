"""The claims as a table, per-claim sensitivity plots and the markdown report that
docs/paper-reproduction.md copies verbatim (no figure in it is typed by hand)."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dsd.experiments.paper.evaluate import ClaimResult, SensitivityPoint
from dsd.experiments.paper.stats import DOES_NOT_HOLD, IN_PART, REPRODUCED, VERDICTS

COLORS = {REPRODUCED: "#2a9d4b", IN_PART: "#e9a23b", DOES_NOT_HOLD: "#d1495b"}


def fmt(value: float | None, unit: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "none" if unit == "abs_ms" else "-"
    if unit == "pct":
        return f"{value * 100:+.1f}%"
    if unit == "ms":
        return f"{value:+.2f} ms"
    if unit == "x":
        return f"{value:.2f}x"
    if unit == "rps":
        return f"{value:.1f} req/s"
    return f"{value:.0f} ms"


def fmt_range(low: float, high: float, unit: str) -> str:
    if math.isinf(high):
        return f">= {fmt(low, unit)}"
    if math.isinf(low):
        return f"<= {fmt(high, unit)}"
    return f"{fmt(low, unit)} .. {fmt(high, unit)}"


def ours(r: ClaimResult) -> str:
    unit = r.claim.unit
    if r.estimate is None:
        return "no value (" + ("no crossover in the swept RTTs" if r.claim.kind == "exists"
                               else "no run completed") + ")"
    lo, hi = r.estimate.ci95
    ci = (f"[{fmt(lo, unit)}, {fmt(hi, unit)}]" if math.isfinite(lo) else "[no CI]")
    missing = len(r.values) - r.estimate.n
    note = f"; {missing} of {len(r.values)} seeds gave none" if missing else ""
    return f"{fmt(r.estimate.mean, unit)} {ci}, {r.estimate.n} seeds{note}"


def where_it_holds(r: ClaimResult) -> str:
    """Per axis, the values at which the claim is reproduced / holds in part."""
    parts = []
    by_axis: dict[str, list[SensitivityPoint]] = {}
    for p in r.sensitivity:
        if " x " not in p.axis:
            by_axis.setdefault(p.label, []).append(p)
    for label, pts in by_axis.items():
        chunks = []
        for v in (REPRODUCED, IN_PART):
            names = [p.value for p in pts if p.verdict == v]
            if names:
                chunks.append(f"{v} at {', '.join(names)}")
        parts.append(f"{label}: " + ("; ".join(chunks) if chunks else "nowhere"))
    return " · ".join(parts) if parts else "not swept"


def summary_entry(r: ClaimResult) -> dict[str, Any]:
    est = r.estimate
    return {
        "statement": r.claim.statement, "source": r.claim.source, "unit": r.claim.unit,
        "paper": r.claim.paper, "paper_range": list(r.claim.paper_range),
        "range_note": r.claim.range_note,
        "ours_mean": est.mean if est else None,
        "ours_ci95": list(est.ci95) if est and math.isfinite(est.ci95[0]) else None,
        "seeds": len(r.values), "per_seed": r.values, "verdict": r.verdict,
        "study": r.study.key, "setting": r.study.setting,
        "where_it_holds": where_it_holds(r),
        "reproduced_anywhere": any(p.verdict == REPRODUCED for p in r.sensitivity),
        "sensitivity": [{"axis": p.axis, "value": p.value, "effect": p.effect,
                         "verdict": p.verdict} for p in r.sensitivity],
    }


def claims_table(results: Sequence[ClaimResult]) -> str:
    lines = ["| claim | paper | ours (mean, 95% CI) | verdict |", "|---|---|---|---|"]
    for r in results:
        c = r.claim
        lines.append(f"| {c.statement} ({c.source}) | {fmt(c.paper, c.unit)} "
                     f"(range {fmt_range(*c.paper_range, c.unit)}) | {ours(r)} | "
                     f"**{r.verdict}** |")
    return "\n".join(lines)


def markdown(results: Sequence[ClaimResult], plots: dict[str, list[Path]],
             header: str) -> str:
    counts = {v: sum(r.verdict == v for r in results) for v in VERDICTS}
    out = [header, "",
           "Verdicts: " + ", ".join(f"{n} {v}" for v, n in counts.items()) + ".", "",
           claims_table(results), ""]
    study = None
    for r in results:
        if r.study is not study:
            study = r.study
            out += [f"## {study.title}", "", f"Setting: {study.setting}.", ""]
        c = r.claim
        out += [f"### `{c.key}`: {r.verdict}", "",
                f"- Paper ({c.source}): {c.statement}. Range judged: "
                f"{fmt_range(*c.paper_range, c.unit)} ({c.range_note}).",
                f"- Ours: {ours(r)}; per seed: "
                + ", ".join(fmt(v, c.unit) for v in r.values) + ".",
                f"- Where it holds: {where_it_holds(r)}."]
        if c.mechanism:
            out.append(f"- What drives it in the model: {c.mechanism}.")
        out.append("")
        for path in plots.get(c.key, []):
            out += [f"![{c.key}]({path.name})", ""]
    return "\n".join(out).rstrip() + "\n"


def plot_claim(r: ClaimResult, out_dir: Path) -> list[Path]:
    """One panel per swept axis: our effect at each value, the paper's range shaded, the
    paper-closest estimate with its CI; a heatmap for a crossed grid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = r.claim
    scale = 100.0 if c.unit == "pct" else 1.0
    unit = {"pct": "%", "ms": "ms", "x": "x", "abs_ms": "ms", "rps": "req/s"}[c.unit]
    paths: list[Path] = []
    axes_pts: dict[str, list[SensitivityPoint]] = {}
    for p in r.sensitivity:
        if " x " not in p.axis:
            axes_pts.setdefault(p.label, []).append(p)
    if axes_pts:
        n = len(axes_pts)
        cols = min(n, 3)
        rows_n = math.ceil(n / cols)
        fig, axs = plt.subplots(rows_n, cols, figsize=(4.6 * cols, 3.4 * rows_n),
                                squeeze=False)
        for ax, (label, pts) in zip(axs.flat, axes_pts.items(), strict=False):
            xs = list(range(len(pts)))
            low, high = c.paper_range
            lo_s = low * scale if math.isfinite(low) else None
            hi_s = high * scale if math.isfinite(high) else None
            if lo_s is not None or hi_s is not None:
                ymin, ymax = ax.get_ylim()
                ax.axhspan(lo_s if lo_s is not None else -1e9,
                           hi_s if hi_s is not None else 1e9, color="#2a9d4b", alpha=0.12,
                           label="paper's range")
            if math.isfinite(c.null):
                ax.axhline(c.null * scale, color="grey", lw=0.8, ls="--")
            ys = [p.effect * scale if p.effect is not None else None for p in pts]
            ax.plot([x for x, y in zip(xs, ys, strict=True) if y is not None],
                    [y for y in ys if y is not None], color="#555", lw=1, zorder=1)
            for x, y, p in zip(xs, ys, pts, strict=True):
                if y is None:
                    ax.annotate("none", (x, 0), ha="center", fontsize=7, color="#d1495b",
                                xycoords=("data", "axes fraction"), xytext=(0, 4),
                                textcoords="offset points")
                    continue
                ax.scatter([x], [y], color=COLORS[p.verdict], zorder=2, s=30)
            finite = [y for y in ys if y is not None]
            if finite:
                span = max(finite) - min(finite) or abs(finite[0]) or 1.0
                ax.set_ylim(min(finite + [lo_s if lo_s is not None else finite[0]])
                            - 0.15 * span,
                            max(finite + [hi_s if hi_s is not None else finite[0]])
                            + 0.15 * span)
            ax.set_xticks(xs, [p.value for p in pts], rotation=20 if len(pts) > 3 else 0,
                          fontsize=8)
            ax.set_title(label, fontsize=9)
            ax.set_ylabel(f"ours ({unit})", fontsize=8)
            ax.grid(alpha=0.3)
        for ax in list(axs.flat)[n:]:
            ax.axis("off")
        handles = [plt.Line2D([], [], marker="o", ls="", color=col, label=v)
                   for v, col in COLORS.items()]
        fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=8, frameon=False)
        fig.suptitle(textwrap.fill(f"{c.key}: {c.statement}", 60 * min(n, 3) // 2 + 30),
                     fontsize=9)
        fig.tight_layout(rect=(0, 0.05, 1, 0.95))
        path = out_dir / f"sens-{c.key}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        paths.append(path)
    grid = [p for p in r.sensitivity if " x " in p.axis]
    if grid:
        paths.append(_heatmap(r, grid, out_dir, scale, unit))
    return paths


def _heatmap(r: ClaimResult, grid: list[SensitivityPoint], out_dir: Path, scale: float,
             unit: str) -> Path:
    import matplotlib.pyplot as plt
    import numpy as np

    ni = max(p.coords[0] for p in grid) + 1
    nj = max(p.coords[1] for p in grid) + 1
    data = np.full((ni, nj), np.nan)
    rows_lbl, cols_lbl = [""] * ni, [""] * nj
    for p in grid:
        i, j = p.coords
        if p.effect is not None:
            data[i, j] = p.effect * scale
        a, b = p.value.split(" | ")
        rows_lbl[i], cols_lbl[j] = a, b
    fig, ax = plt.subplots(figsize=(1.6 * nj + 3.0, 0.6 * ni + 1.8))
    im = ax.imshow(data, cmap="viridis", aspect="auto")
    for p in grid:
        i, j = p.coords
        text = "none" if p.effect is None else f"{p.effect * scale:.0f}"
        ax.text(j, i, text, ha="center", va="center", fontsize=8,
                # empty cells are blank (white): their label must be dark
                color="#555555" if p.effect is None else
                ("white" if p.verdict != REPRODUCED else "#fff2a8"))
    ax.set_xticks(range(nj), cols_lbl, fontsize=8)
    ax.set_yticks(range(ni), rows_lbl, fontsize=8)
    a_label, b_label = grid[0].label.split(" x ")
    ax.set_xlabel(b_label)
    ax.set_ylabel(a_label)
    fig.colorbar(im, ax=ax, label=f"{r.claim.key} ({unit})")
    ax.set_title(f"{r.claim.key}: 'none' = no crossover in the swept RTTs", fontsize=9)
    fig.tight_layout()
    path = out_dir / f"grid-{r.claim.key}.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path

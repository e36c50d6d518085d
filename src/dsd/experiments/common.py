"""Shared pieces of the paper experiments: base scenarios as dicts (so experiments do not
depend on the working directory), one-point simulation for executors, and plots."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

METRICS = ("throughput_rps", "output_tps", "goodput_rps", "goodput_tps", "slo_attainment",
           "ttft_ms_p50", "ttft_ms_mean", "ttft_ms_p99", "tpot_ms_p50", "tpot_ms_mean",
           "tpot_ms_p99", "acceptance_rate", "mean_drafted_gamma", "wasted_draft_ms_per_request",
           "verify_interference_ms_mean", "target_utilization", "mean_batch_size",
           "mean_batch_occupancy", "kv_occupancy_mean", "preemptions", "requests_rejected",
           "fused_request_frac", "requests_completed")



def series(rows: Sequence[dict[str, Any]], where: dict[str, Any], x_key: str,
           xs: Sequence[Any], y_key: str) -> list[Any]:
    """`y_key` of the rows matching `where`, one per x in `xs` (in that order)."""
    chosen = [r for r in rows if all(r[k] == v for k, v in where.items())]
    return [next(r[y_key] for r in chosen if r[x_key] == x) for x in xs]

def paper_large(think_time_s: float = 18.0) -> dict[str, Any]:
    """examples/paper-large.yaml: 600 edge drafts, 20 cloud servers of 4 GPUs."""
    return {
        "name": "paper-large", "seed": 0, "mode": "distributed",
        "cluster": {
            "drafts": [{"name": "edge-a40", "count": 300, "gpu": "A40", "model": "llama-2-7b"},
                       {"name": "edge-v100", "count": 300, "gpu": "V100", "model": "qwen-7b"}],
            "targets": [
                {"name": "cloud-a100", "count": 8, "gpu": "A100", "tp": 4, "model": "llama-2-70b"},
                {"name": "cloud-a6000", "count": 6, "gpu": "A6000", "tp": 4,
                 "model": "llama-2-70b"},
                {"name": "cloud-h100", "count": 6, "gpu": "H100", "tp": 4, "model": "qwen-72b"}],
        },
        "network": {"rtt_ms": [10, 30], "jitter_ms": 2, "bandwidth_mbps": 100},
        "workload": {"dataset": "gsm8k", "arrival": {"type": "closed_loop", "concurrency": 1,
                                                     "think_time_s": think_time_s}},
        "policies": {"router": "random", "batcher": {"name": "fifo", "max_batch": 32},
                     "window": {"name": "static", "gamma": 4}},
        "slo": {"ttft_ms": 1000, "tpot_ms": 80},
        "simulation": {"duration_s": 300, "warmup_s": 30, "drain": False},
    }


def scale_cluster(cfg: dict[str, Any], drafts: float, targets: float) -> dict[str, Any]:
    """Multiply pool counts (at least one of each pool)."""
    cfg = copy.deepcopy(cfg)
    for pool in cfg["cluster"]["drafts"]:
        pool["count"] = max(1, round(pool["count"] * drafts))
    for pool in cfg["cluster"]["targets"]:
        pool["count"] = max(1, round(pool["count"] * targets))
    return cfg


def set_path(cfg: dict[str, Any], dotted: str, value: Any) -> None:
    node = cfg
    keys = dotted.split(".")
    for key in keys[:-1]:
        node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
    node[keys[-1]] = value


def simulate_point(point: tuple[dict[str, Any], dict[str, Any]]) -> dict[str, Any]:
    """Run one scenario dict; returns its labels plus the headline metrics. Top-level so
    process executors can pickle it."""
    from dsd.sim import simulate

    labels, cfg = point
    s = simulate(cfg, keep_requests=False).summary
    row = dict(labels)
    row.update({k: s.get(k) for k in METRICS})
    row["acceptance_by_position"] = s.get("acceptance_by_position")
    row["wall_s"] = s.get("wall_time_s")
    return row


def with_policies(cfg: dict[str, Any], **policies: Any) -> dict[str, Any]:
    cfg = copy.deepcopy(cfg)
    cfg["policies"].update(policies)
    return cfg


def cluster_label(cfg: dict[str, Any]) -> str:
    """"60 drafts, 2 servers, 60 s runs" for a scenario dict, for titles that describe the
    run that made them (quick runs shrink the cluster and the duration)."""
    drafts = sum(p["count"] for p in cfg["cluster"]["drafts"])
    servers = sum(p["count"] for p in cfg["cluster"]["targets"])
    duration = cfg.get("simulation", {}).get("duration_s")
    return (f"{drafts} drafts, {servers} server{'s' if servers != 1 else ''}"
            + (f", {duration:g} s runs" if duration else ""))


def line_plot(path: Path, x: Sequence[float], series: dict[str, Sequence[float | None]],
              xlabel: str, ylabel: str, title: str, panels: dict[str, Any] | None = None,
              vline: float | None = None, vline_label: str = "",
              xticks: Sequence[str] | None = None,
              hline: float | None = None, hline_label: str = "") -> Path:
    """One or more panels of lines; `panels` maps a y label to its own series dict. `xticks`
    labels the x positions (categories such as load levels); `vline` / `hline` mark a
    value with a dashed line named in the legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [(ylabel, series)] + list((panels or {}).items())
    fig, axes = plt.subplots(1, len(groups), figsize=(5.2 * len(groups), 4.2), squeeze=False,
                             layout="constrained")
    for ax, (label, data) in zip(axes[0], groups, strict=True):
        for name, ys in data.items():
            pts = [(a, b) for a, b in zip(x, ys, strict=True) if b is not None]
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="o", ms=3, label=name)
        if vline is not None:
            ax.axvline(vline, color="grey", ls="--", lw=1, label=vline_label or None)
        if hline is not None:
            ax.axhline(hline, color="grey", ls=":", lw=1, label=hline_label or None)
        if xticks is not None:
            ax.set_xticks(list(x), list(xticks))
        ax.set_xlabel(xlabel)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    return _save(fig, path, title)


def bar_plot(path: Path, groups: Sequence[str],
             series: dict[str, dict[str, Sequence[float | None]]],
             ylabels: Sequence[str], title: str) -> Path:
    """Grouped bars: one panel per metric in `series` (keyed by its y label)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, len(ylabels), figsize=(5.0 * len(ylabels), 4.2), squeeze=False,
                             layout="constrained")
    for ax, ylabel in zip(axes[0], ylabels, strict=True):
        data = series[ylabel]
        names = list(data)
        width = 0.8 / max(len(names), 1)
        xs = np.arange(len(groups))
        for i, name in enumerate(names):
            bars = ax.bar(xs + i * width - 0.4 + width / 2,
                          [v if v is not None else 0.0 for v in data[name]], width, label=name)
            if len(groups) * len(names) <= 8:  # few bars: their values, so a 0 still shows
                ax.bar_label(bars, fmt="%.4g", fontsize=8, padding=2)
        ax.set_xticks(xs, groups)
        ax.set_ylabel(ylabel)
        ax.grid(axis="y", alpha=0.3)
    return _save(fig, path, title)


def _save(fig: Any, path: Path, title: str) -> Path:
    """Title on top and one legend for every panel (they share their series) below the
    plots, where it never covers data."""
    import matplotlib.pyplot as plt

    handles: dict[str, Any] = {}
    for ax in fig.axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    fig.suptitle(title)
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="outside lower center",
                   ncol=min(len(handles), 7), frameon=False, fontsize=9)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path

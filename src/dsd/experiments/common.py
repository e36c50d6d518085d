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


def line_plot(path: Path, x: Sequence[float], series: dict[str, Sequence[float | None]],
              xlabel: str, ylabel: str, title: str, panels: dict[str, Any] | None = None,
              vline: float | None = None) -> Path:
    """One or more panels of lines; `panels` maps a y label to its own series dict."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [(ylabel, series)] + list((panels or {}).items())
    fig, axes = plt.subplots(1, len(groups), figsize=(5.2 * len(groups), 3.8), squeeze=False)
    for ax, (label, data) in zip(axes[0], groups, strict=True):
        for name, ys in data.items():
            pts = [(a, b) for a, b in zip(x, ys, strict=True) if b is not None]
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="o", ms=3, label=name)
        if vline is not None:
            ax.axvline(vline, color="grey", ls="--", lw=1)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, path, title)


def bar_plot(path: Path, groups: Sequence[str],
             series: dict[str, dict[str, Sequence[float | None]]],
             ylabels: Sequence[str], title: str) -> Path:
    """Grouped bars: one panel per metric in `series` (keyed by its y label)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, len(ylabels), figsize=(5.0 * len(ylabels), 3.8), squeeze=False)
    for ax, ylabel in zip(axes[0], ylabels, strict=True):
        data = series[ylabel]
        names = list(data)
        width = 0.8 / max(len(names), 1)
        xs = np.arange(len(groups))
        for i, name in enumerate(names):
            ax.bar(xs + i * width - 0.4 + width / 2,
                   [v if v is not None else 0.0 for v in data[name]], width, label=name)
        ax.set_xticks(xs, groups)
        ax.set_ylabel(ylabel)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7)
    return _save(fig, path, title)


def _save(fig: Any, path: Path, title: str) -> Path:
    import matplotlib.pyplot as plt

    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path

"""`dsd experiment draft-scale`: 200 to 1200 edge drafts against a fixed cloud.

The paper-large cloud (20 servers of 4 GPUs) serves a growing population of closed-loop
edge users (3 s mean think time) in each mode. Throughput grows with the number of drafts
until the cloud saturates; a mode's saturation point is the smallest draft count whose throughput is
within 5% of that mode's maximum, or none when it still grows at the largest count.
"""

from __future__ import annotations

from typing import Any

from dsd.experiments.common import (
    line_plot,
    paper_large,
    scale_cluster,
    series,
    simulate_point,
)
from dsd.experiments.registry import ExperimentContext, ExperimentResult, register_experiment

MODES = ("distributed", "fused", "cloud_only")


def saturation(counts: list[int], throughput: list[float], within: float = 0.05) -> int | None:
    best = max(throughput)
    if throughput[-1] >= best * (1 - within / 2) and throughput[-1] > throughput[-2] * 1.02:
        return None  # still growing at the largest population
    return next(n for n, t in zip(counts, throughput, strict=True) if t >= best * (1 - within))


@register_experiment("draft-scale", "200-1200 drafts at fixed cloud capacity, per mode")
def draft_scale(ctx: ExperimentContext) -> ExperimentResult:
    think = 3.0  # short thinks: 1200 users ask more than the 20 servers can verify
    if ctx.quick:  # 2 servers of the paper mix; 20-120 drafts; 60 simulated seconds
        base = scale_cluster(paper_large(think), 1.0, 0.1)
        counts = [20, 40, 80, 120]
        base["simulation"] = {"duration_s": 60, "warmup_s": 10, "drain": False}
    else:
        base = paper_large(think)
        counts = [200, 400, 600, 800, 1000, 1200]
        base["simulation"] = {"duration_s": 180, "warmup_s": 30, "drain": False}
    base["seed"] = ctx.seed
    total = sum(p["count"] for p in base["cluster"]["drafts"])
    points = []
    for mode in MODES:
        for n in counts:
            cfg = scale_cluster(base, n / total, 1.0)
            cfg["mode"] = mode
            points.append(({"mode": mode, "drafts": n}, cfg))
    rows = ctx.map(simulate_point, points)

    thr = {m: series(rows, {"mode": m}, "drafts", counts, "throughput_rps") for m in MODES}
    tpot = {m: series(rows, {"mode": m}, "drafts", counts, "tpot_ms_mean") for m in MODES}
    servers = sum(p["count"] for p in base["cluster"]["targets"])
    summary: dict[str, Any] = {
        "servers": servers, "think_time_s": think,
        "saturates_at_drafts": {m: saturation(counts, thr[m]) for m in MODES},
        "max_throughput_rps": {m: max(thr[m]) for m in MODES},
        "distributed_over_cloud_only_at_max": thr["distributed"][-1] / thr["cloud_only"][-1],
    }
    plot = line_plot(ctx.out / "draft-scale.png", counts, thr, "edge draft devices",
                     "throughput (req/s)",
                     f"Scaling drafts against {servers} cloud servers (think {think:g} s, "
                     f"{base['simulation']['duration_s']:g} s runs)",
                     panels={"TPOT mean (ms)": tpot})
    cols = ["mode", "drafts", "throughput_rps", "ttft_ms_mean", "tpot_ms_mean", "tpot_ms_p99",
            "target_utilization", "mean_batch_size", "slo_attainment"]
    return ExperimentResult(rows, summary, [plot], cols, axes=("drafts", "mode"))

"""`dsd experiment routing`: the routing policies across load levels.

A third of the paper-large cluster (200 drafts, 7 servers of three GPU kinds, link RTTs
10-30 ms as in the paper), closed-loop users at four think times (low to overload). With
closed-loop users throughput follows latency, so for each load the best router is the one
with the lowest mean TPOT (the DSD paper finds JSQ best at medium load).
"""

from __future__ import annotations

from typing import Any

from dsd.experiments.common import (
    cluster_label,
    line_plot,
    paper_large,
    scale_cluster,
    series,
    simulate_point,
)
from dsd.experiments.registry import ExperimentContext, ExperimentResult, register_experiment

ROUTERS = ("random", "round-robin", "jsq", "least-work", "p2c", "rtt-aware")
LOADS = {"low": 40.0, "medium": 12.0, "high": 4.0, "overload": 1.0}  # think time, s


@register_experiment("routing", "routing policies across load levels")
def routing(ctx: ExperimentContext) -> ExperimentResult:
    base = scale_cluster(paper_large(), 1 / 3, 1 / 3)
    if ctx.quick:
        base = scale_cluster(base, 0.3, 0.5)
        base["simulation"] = {"duration_s": 60, "warmup_s": 10, "drain": False}
        loads = {k: LOADS[k] for k in ("low", "medium", "high")}
    else:
        base["simulation"] = {"duration_s": 240, "warmup_s": 30, "drain": False}
        loads = LOADS
    base["seed"] = ctx.seed
    points = []
    for load, think in loads.items():
        for router in ROUTERS:
            cfg = {**base, "policies": {**base["policies"], "router": router},
                   "workload": {**base["workload"],
                                "arrival": {**base["workload"]["arrival"],
                                            "think_time_s": think}}}
            points.append(({"load": load, "think_time_s": think, "router": router}, cfg))
    rows = ctx.map(simulate_point, points)
    summary: dict[str, Any] = {"drafts": sum(p["count"] for p in base["cluster"]["drafts"]),
                               "servers": sum(p["count"] for p in base["cluster"]["targets"])}
    best: dict[str, str] = {}
    for load in loads:
        group = [r for r in rows if r["load"] == load]
        best[load] = min(group, key=lambda r: r["tpot_ms_mean"])["router"]
    summary["best_router"] = best
    loads_l = list(loads)
    x = list(range(len(loads_l)))

    def by_router(key: str) -> dict[str, list[Any]]:
        return {rt: series(rows, {"router": rt}, "load", loads_l, key) for rt in ROUTERS}

    plot = line_plot(ctx.out / "routing.png", x, by_router("tpot_ms_mean"),
                     "load (closed-loop think time)", "TPOT mean (ms)",
                     f"Routing policies across load ({cluster_label(base)})",
                     panels={"throughput (req/s)": by_router("throughput_rps"),
                             "TTFT p99 (ms)": by_router("ttft_ms_p99")},
                     xticks=[f"{ld}\n({loads[ld]:g} s)" for ld in loads_l])
    cols = ["load", "router", "throughput_rps", "ttft_ms_mean", "ttft_ms_p99", "tpot_ms_mean",
            "tpot_ms_p99", "target_utilization", "slo_attainment"]
    return ExperimentResult(rows, summary, [plot], cols, axes=("load", "router"))

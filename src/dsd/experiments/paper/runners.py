"""What one job of a study runs: a simulation, or a capacity search. Top-level functions,
so process and Ray executors can ship them by reference."""

from __future__ import annotations

import copy
from typing import Any

from dsd.experiments.common import METRICS


def users_and_think(scenario: dict[str, Any]) -> tuple[int, float] | None:
    """(closed-loop users, mean think time) of a scenario, None when it is open loop."""
    arrival = scenario["workload"]["arrival"]
    if arrival.get("type") != "closed_loop":
        return None
    devices = sum(p["count"] for p in scenario["cluster"]["drafts"])
    return devices * arrival.get("concurrency", 1), float(arrival.get("think_time_s", 0.0))


def simulate_row(scenario: dict[str, Any], seed: int) -> dict[str, Any]:
    """One simulation: the headline metrics, plus `throughput` = the response-time law
    N / (think + mean E2E) for closed-loop users (the same quantity as completions per
    second, with far less window noise; docs/awc.md) or the measured rate otherwise."""
    from dsd.sim import simulate

    cfg = copy.deepcopy(scenario)
    cfg["seed"] = seed
    s = simulate(cfg, keep_requests=False).summary
    row = {k: s.get(k) for k in METRICS}
    closed = users_and_think(cfg)
    e2e = s.get("e2e_ms_mean")
    if closed and e2e:
        users, think = closed
        row["throughput"] = users / (think + e2e / 1000.0)
    else:
        row["throughput"] = s.get("throughput_rps")
    row["wall_s"] = s.get("wall_time_s")
    return row


def capacity_row(job: dict[str, Any], seed: int) -> dict[str, Any]:
    """One capacity search over edge devices at the job's SLO attainment, with the peak
    goodput over every load it evaluated."""
    from dsd.experiments.capacity import capacity_search

    res = capacity_search(job["scenario"], attainment=job.get("attainment", 0.9),
                          over="drafts", tol=job.get("tol", 0.02), seeds=(seed,),
                          max_evals=job.get("max_evals", 24))
    return {"capacity": res.capacity,
            "peak_goodput_tps": max(p["goodput_tps"] or 0.0 for p in res.points),
            "evaluations": len(res.points)}

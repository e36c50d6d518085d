"""`dsd experiment wisp-capacity`: capacity and goodput of WISP vs SLED vs centralized.

The WISP evaluation setting (examples/wisp.yaml, sled.yaml, centralized.yaml): edge PCs
(RTX 4090, Qwen3-0.6B drafts, Poisson 0.02 req/s each) share one A100 80GB verifying
with Qwen3-32B; SLO TTFT 1 s, TPOT 60 ms. Capacity = the largest number of edge devices
served at 90% SLO attainment, found by `capacity_search` over drafts; goodput = output
tokens/s of requests meeting the SLO, reported at its peak over the loads the search
evaluated and at WISP's capacity (where a baseline past its own capacity collapses).
WISP reports up to 2.1x / 4.1x capacity and 1.94x / 3.7x goodput over centralized / SLED.
"""

from __future__ import annotations

import copy
from typing import Any

from dsd.experiments.capacity import capacity_search, evaluate_point
from dsd.experiments.common import bar_plot, line_plot
from dsd.experiments.registry import ExperimentContext, ExperimentResult, register_experiment

SYSTEMS: dict[str, dict[str, Any]] = {
    "WISP": {"mode": "distributed",
             "policies": {"router": "jsq", "batcher": {"name": "slo", "max_batch": 64},
                          "window": {"name": "wisp", "gamma_max": 8}}},
    "SLED": {"mode": "distributed",
             "policies": {"router": "jsq",
                          "batcher": {"name": "fifo", "max_batch": 16, "max_wait_ms": 20},
                          "window": {"name": "static", "gamma": 4}}},
    # Continuous batching of up to 64 sequences per decode step.
    "centralized": {"mode": "cloud_only", "engine": {"max_num_seqs": 64},
                    "policies": {"router": "jsq", "batcher": {"name": "fifo"},
                                 "window": {"name": "static", "gamma": 4}}},
}
SLO = {"ttft_ms": 1000.0, "tpot_ms": 60.0}


def scenario(system: str, duration_s: float) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "name": f"wisp-capacity-{system}", "seed": 0,
        "cluster": {"drafts": [{"count": 100, "gpu": "RTX4090", "model": "qwen3-0.6b"}],
                    "targets": [{"count": 1, "gpu": "A100", "tp": 1, "model": "qwen3-32b"}]},
        "network": {"rtt_ms": [10, 40], "jitter_ms": 2, "bandwidth_mbps": 100},
        "workload": {"dataset": "gsm8k", "arrival": {"type": "poisson",
                                                     "rate_per_device": 0.02}},
        "slo": dict(SLO),
        "simulation": {"duration_s": duration_s, "warmup_s": duration_s / 6},
    }
    cfg.update(copy.deepcopy(SYSTEMS[system]))
    return cfg


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


@register_experiment("wisp-capacity", "WISP vs SLED vs centralized: capacity and goodput")
def wisp_capacity(ctx: ExperimentContext) -> ExperimentResult:
    duration = 60.0 if ctx.quick else 240.0
    tol = 0.1 if ctx.quick else 0.02
    seeds = (ctx.seed,) if ctx.quick else (ctx.seed, ctx.seed + 1)
    rows: list[dict[str, Any]] = []
    capacity: dict[str, float] = {}
    curves: dict[str, dict[float, float]] = {}
    peak: dict[str, float] = {}  # best goodput over every load the search evaluated
    for system in SYSTEMS:
        with ctx.progress_bar(f"wisp-capacity {system}", unit="loads") as bar:
            res = capacity_search(
                scenario(system, duration), attainment=0.9, over="drafts", tol=tol,
                seeds=seeds, executor=ctx.executor, max_evals=10 if ctx.quick else 24,
                progress=lambda done, expected, _lo, hi, bar=bar: bar.update(
                    done, total=expected, info=f"at {hi:g} devices"))
        capacity[system] = res.capacity
        curves[system] = {p["load"]: p["attainment"] for p in res.points}
        peak[system] = max(p["goodput_tps"] for p in res.points)
        for p in res.points:
            rows.append({"system": system, "phase": "search", "drafts": p["load"], **{
                k: v for k, v in p.items() if k not in ("load", "seeds")}})
    # Goodput of every system at WISP's capacity (the load WISP just sustains).
    load = capacity["WISP"] or max(capacity.values())
    points = [(scenario(s, duration), "drafts", load, seed) for s in SYSTEMS for seed in seeds]
    results = ctx.map(evaluate_point, points)
    goodput: dict[str, float] = {}
    for system in SYSTEMS:
        mine = [r for r, (cfg, *_rest) in zip(results, points, strict=True)
                if cfg["name"].endswith(system)]
        goodput[system] = sum(r["goodput_tps"] for r in mine) / len(mine)
        row = {"system": system, "phase": "goodput", "drafts": load}
        row.update({k: sum(r[k] for r in mine) / len(mine) for k in mine[0]
                    if k not in ("load", "seed") and mine[0][k] is not None})
        rows.append(row)
    summary = {
        "slo": SLO, "attainment_target": 0.9, "capacity_drafts": capacity,
        "capacity_ratio_vs_centralized": _ratio(capacity["WISP"], capacity["centralized"]),
        "capacity_ratio_vs_sled": _ratio(capacity["WISP"], capacity["SLED"]),
        "peak_goodput_tps": peak,
        "peak_goodput_ratio_vs_centralized": _ratio(peak["WISP"], peak["centralized"]),
        "peak_goodput_ratio_vs_sled": _ratio(peak["WISP"], peak["SLED"]),
        "goodput_load_drafts": load, "goodput_tps": goodput,
        "goodput_ratio_vs_centralized": _ratio(goodput["WISP"], goodput["centralized"]),
        "goodput_ratio_vs_sled": _ratio(goodput["WISP"], goodput["SLED"]),
        "paper": {"capacity_ratio_vs_centralized": 2.1, "capacity_ratio_vs_sled": 4.1,
                  "goodput_ratio_vs_centralized": 1.94, "goodput_ratio_vs_sled": 3.7},
    }
    xs = sorted({x for c in curves.values() for x in c})
    att = {s: [curves[s].get(x) for x in xs] for s in SYSTEMS}
    setting = (f"one A100 80GB, Qwen3-32B; {duration:g} s runs, {len(seeds)} "
               f"seed{'s' if len(seeds) > 1 else ''}")
    plots = [
        line_plot(ctx.out / "wisp-capacity.png", xs, att, "edge devices",
                  "SLO attainment (fraction)",
                  f"SLO attainment at the loads the searches evaluated\n({setting})",
                  hline=0.9, hline_label="90% target"),
        # Capacity and goodput have different units: a panel each, never one shared axis.
        bar_plot(ctx.out / "wisp-goodput.png", [""], {
            "capacity at 90% attainment (devices)": {s: [capacity[s]] for s in SYSTEMS},
            "peak goodput over the search (tok/s)": {s: [peak[s]] for s in SYSTEMS},
            f"goodput at {load:.0f} devices (tok/s)": {s: [goodput[s]] for s in SYSTEMS}},
            ["capacity at 90% attainment (devices)", "peak goodput over the search (tok/s)",
             f"goodput at {load:.0f} devices (tok/s)"],
            f"WISP vs SLED vs centralized ({setting})"),
    ]
    cols = ["system", "phase", "drafts", "attainment", "throughput_rps", "goodput_tps",
            "ttft_ms_p99", "tpot_ms_p50", "tpot_ms_p99"]
    return ExperimentResult(rows, summary, plots, cols, axes=("drafts", "system"))

"""`dsd experiment lab`: what Length-Aware Batching does to TPOT and TTFT, across load.

The paper-large cluster (600 drafts, 20 servers), JSQ routing, static gamma 4, GSM8K and
CNN/DailyMail, closed-loop users at three think times (light 40 s, the DSD paper's
operating point 18 s, heavy 3 s), three seeds. Batchers:

- `fifo`: first come, first served, up to 32 jobs;
- `lab`: the paper's rule, prefills in steps of their own;
- `lab-mixed`: prefills ride after the similar-length verifies, within the engine's
  2048-token step budget;
- `lab-mixed-512`: Sarathi-style, a 512-token budget per step (long prompts chunked).

Reports the seed means per (dataset, load, batcher) and the change against FIFO
(results.csv; every run in seeds.csv).
"""

from __future__ import annotations

import statistics
from typing import Any

from dsd.experiments.common import (
    bar_plot,
    cluster_label,
    paper_large,
    scale_cluster,
    simulate_point,
)
from dsd.experiments.registry import (
    ExperimentContext,
    ExperimentResult,
    register_experiment,
    write_rows,
)

# name -> (batcher, engine overrides)
BATCHERS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "fifo": ({"name": "fifo", "max_batch": 32}, {}),
    "lab": ({"name": "lab", "max_batch": 32}, {}),
    "lab-mixed": ({"name": "lab", "max_batch": 32, "prefill": "mixed"}, {}),
    "lab-mixed-512": ({"name": "lab", "max_batch": 32, "prefill": "mixed"},
                      {"max_num_batched_tokens": 512}),
}
LOADS = {"light": 40.0, "paper": 18.0, "heavy": 3.0}  # think time, s
METRICS = ("tpot_ms_mean", "tpot_ms_p99", "ttft_ms_mean", "throughput_rps",
           "verify_interference_ms_mean")


@register_experiment("lab", "LAB vs FIFO (and mixed/chunked prefills) across load, 3 seeds")
def lab(ctx: ExperimentContext) -> ExperimentResult:
    base = paper_large()
    if ctx.quick:  # a tenth of the cluster, one dataset and seed, 60 simulated seconds
        base = scale_cluster(base, 0.1, 0.1)
        base["simulation"] = {"duration_s": 60, "warmup_s": 10, "drain": False}
        datasets, seeds = ("gsm8k",), (ctx.seed,)
    else:
        base["simulation"] = {"duration_s": 180, "warmup_s": 30, "drain": False}
        datasets, seeds = ("gsm8k", "cnndm"), (ctx.seed, ctx.seed + 1, ctx.seed + 2)
    points = []
    for ds in datasets:
        for load, think in LOADS.items():
            for name, (batcher, engine) in BATCHERS.items():
                for seed in seeds:
                    cfg = {**base, "seed": seed, "engine": engine,
                           "policies": {"router": "jsq", "batcher": batcher,
                                        "window": {"name": "static", "gamma": 4}},
                           "workload": {"dataset": ds,
                                        "arrival": {"type": "closed_loop",
                                                    "think_time_s": think}}}
                    labels = {"dataset": ds, "load": load, "batcher": name, "seed": seed}
                    points.append((labels, cfg))
    rows = ctx.map(simulate_point, points)
    write_rows(ctx.out / "seeds.csv", rows)  # results.csv holds the seed means

    means: list[dict[str, Any]] = []
    summary: dict[str, Any] = {"seeds": len(seeds), "think_time_s": LOADS}
    for ds in datasets:
        for load in LOADS:
            fifo = None
            for name in BATCHERS:
                group = [r for r in rows if (r["dataset"], r["load"], r["batcher"])
                         == (ds, load, name)]
                row = {"dataset": ds, "load": load, "batcher": name}
                row.update({m: statistics.fmean(r[m] for r in group) for m in METRICS})
                fifo = fifo or row
                row["tpot_vs_fifo_ms"] = row["tpot_ms_mean"] - fifo["tpot_ms_mean"]
                row["ttft_vs_fifo_ms"] = row["ttft_ms_mean"] - fifo["ttft_ms_mean"]
                means.append(row)
            summary[f"{ds}/{load}"] = {
                r["batcher"]: f"TPOT {r['tpot_ms_mean']:.2f} ({r['tpot_vs_fifo_ms']:+.2f}) ms, "
                              f"TTFT {r['ttft_ms_mean']:.1f} ({r['ttft_vs_fifo_ms']:+.1f}) ms"
                for r in means if (r["dataset"], r["load"]) == (ds, load)}
    plots = []
    for ds in datasets:
        def values(metric: str, ds: str = ds) -> dict[str, list[Any]]:
            return {name: [next(r[metric] for r in means if (r["dataset"], r["load"],
                                                             r["batcher"]) == (ds, ld, name))
                           for ld in LOADS] for name in BATCHERS}

        labels = ["TPOT mean (ms)", "TTFT mean (ms)", "interference (ms)"]
        plots.append(bar_plot(
            ctx.out / f"lab-{ds}.png", list(LOADS),
            dict(zip(labels, (values("tpot_ms_mean"), values("ttft_ms_mean"),
                              values("verify_interference_ms_mean")), strict=True)),
            labels, f"LAB vs FIFO on {ds} ({cluster_label(base)}, JSQ, gamma 4, "
                    f"{len(seeds)} seed{'s' if len(seeds) > 1 else ''})"))
    cols = ["dataset", "load", "batcher", "throughput_rps", "ttft_ms_mean", "tpot_ms_mean",
            "tpot_ms_p99", "verify_interference_ms_mean", "tpot_vs_fifo_ms", "ttft_vs_fifo_ms"]
    return ExperimentResult(means, summary, plots, cols, axes=("load", "batcher", "dataset"))

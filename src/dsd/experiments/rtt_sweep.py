"""`dsd experiment rtt-sweep`: distributed vs fused vs cloud-only as the RTT grows.

One cloud server (4x A100, Llama-2-70B) and 7B edge drafts on A40s, 120 closed-loop users
(2 s think); every link gets the same RTT, swept over 0-150 ms. Verify batches hold up to
32 sequences; cloud-only decodes with vLLM's 256 sequences per step (`cloud_only`) and,
as a second series, with 32 (`cloud_only@32`, the cap this experiment used for every mode
before the caps were separated). Reports throughput and TPOT per series and RTT, and the
crossover RTT where distributed throughput falls below each cloud-only series (linear
interpolation between sweep points; None if it never does; the DSD paper reports 50-60 ms).
"""

from __future__ import annotations

from typing import Any

from dsd.experiments.common import line_plot, series, simulate_point
from dsd.experiments.registry import ExperimentContext, ExperimentResult, register_experiment

# Series label -> (mode, decode sequences per step).
SERIES = {"distributed": ("distributed", 256), "fused": ("fused", 256),
          "cloud_only": ("cloud_only", 256), "cloud_only@32": ("cloud_only", 32)}
MODES = tuple(SERIES)


def scenario(drafts: int, think_s: float, duration_s: float) -> dict[str, Any]:
    return {
        "name": "rtt-sweep", "seed": 0, "mode": "distributed",
        "cluster": {"drafts": [{"count": drafts, "gpu": "A40", "model": "llama-2-7b"}],
                    "targets": [{"count": 1, "gpu": "A100", "tp": 4, "model": "llama-2-70b",
                                 "draft_model": "llama-2-7b"}]},
        "network": {"rtt_ms": 0.0, "jitter_ms": 0.0, "bandwidth_mbps": 100},
        "workload": {"dataset": "gsm8k", "arrival": {"type": "closed_loop", "concurrency": 1,
                                                     "think_time_s": think_s}},
        "policies": {"router": "jsq", "batcher": {"name": "fifo", "max_batch": 32},
                     "window": {"name": "static", "gamma": 4}},
        "slo": {"ttft_ms": 1000, "tpot_ms": 80},
        "simulation": {"duration_s": duration_s, "warmup_s": min(30.0, duration_s / 4),
                       "drain": False},
    }


def crossover(rtts: list[float], a: list[float], b: list[float]) -> float | None:
    """First RTT where series a drops below series b (interpolated), None if never."""
    for i in range(1, len(rtts)):
        d0, d1 = a[i - 1] - b[i - 1], a[i] - b[i]
        if d0 >= 0 > d1:
            return rtts[i - 1] + (rtts[i] - rtts[i - 1]) * d0 / (d0 - d1)
    return None


@register_experiment("rtt-sweep", "distributed vs fused vs cloud-only over RTT 0-150 ms")
def rtt_sweep(ctx: ExperimentContext) -> ExperimentResult:
    if ctx.quick:
        rtts = [0.0, 25.0, 50.0, 75.0, 100.0, 150.0]
        base = scenario(drafts=120, think_s=2.0, duration_s=60)
    else:
        rtts = [float(r) for r in range(0, 151, 10)]
        base = scenario(drafts=120, think_s=2.0, duration_s=240)
    base["seed"] = ctx.seed
    points = []
    for label, (mode, seqs) in SERIES.items():
        for rtt in rtts:
            cfg = {**base, "mode": mode, "network": {**base["network"], "rtt_ms": rtt},
                   "engine": {"max_num_seqs": seqs}}
            points.append(({"mode": label, "rtt_ms": rtt}, cfg))
    rows = ctx.map(simulate_point, points)

    thr = {m: series(rows, {"mode": m}, "rtt_ms", rtts, "throughput_rps") for m in MODES}
    tpot = {m: series(rows, {"mode": m}, "rtt_ms", rtts, "tpot_ms_mean") for m in MODES}
    cross = crossover(rtts, thr["distributed"], thr["cloud_only"])
    cross_capped = crossover(rtts, thr["distributed"], thr["cloud_only@32"])
    cross_fused = crossover(rtts, thr["distributed"], thr["fused"])
    summary = {
        "crossover_rtt_ms": cross,
        "crossover_vs_cloud_only_32_rtt_ms": cross_capped,
        "crossover_vs_fused_rtt_ms": cross_fused,
        "tpot_crossover_rtt_ms": crossover(rtts, [-v for v in tpot["distributed"]],
                                           [-v for v in tpot["cloud_only"]]),
        "throughput_at_0ms": {m: thr[m][0] for m in MODES},
        "throughput_at_max_rtt": {m: thr[m][-1] for m in MODES},
        "paper_crossover_rtt_ms": [50, 60],
        "verify_batch_cap": base["policies"]["batcher"]["max_batch"],
        "users": base["cluster"]["drafts"][0]["count"],
        "think_time_s": base["workload"]["arrival"]["think_time_s"],
    }
    plot = line_plot(ctx.out / "rtt-sweep.png", rtts, thr, "RTT (ms)", "throughput (req/s)",
                     f"Distributed vs fused vs cloud-only (one 4xA100 70B server, "
                     f"{summary['users']} users, {base['simulation']['duration_s']:g} s runs)",
                     panels={"TPOT mean (ms)": tpot},
                     vline=cross if cross is not None else cross_capped,
                     vline_label=(f"throughput crossover ({cross:.0f} ms)" if cross is not None
                                  else f"crossover vs capped cloud-only ({cross_capped:.0f} ms)"
                                  if cross_capped is not None else ""))
    cols = ["mode", "rtt_ms", "throughput_rps", "ttft_ms_mean", "tpot_ms_mean", "tpot_ms_p99",
            "mean_batch_size", "mean_batch_occupancy", "slo_attainment"]
    return ExperimentResult(rows, summary, [plot], cols, axes=("rtt_ms", "mode"))

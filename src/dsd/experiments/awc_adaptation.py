"""`dsd experiment awc-adaptation`: AWC where adapting the window can pay.

At the paper's operating points the best static gamma barely beats gamma=4, so no window
controller can gain much there (`dsd experiment awc`). These cases make the best window
change within a run: links from 1 to 150 ms, bursty open-loop arrivals, sessions whose
acceptance differs widely, and all three together (`dsd.awc.scenarios.
adaptation_scenarios`). AWC runs against every static gamma (the hindsight-best one is
the reference), the dynamic heuristic, and the early-stopping SpecDec++ and WISP windows.

Metrics: throughput by the response-time law for closed-loop users (N / (think + mean
E2E), `dsd.awc.objective`) or goodput (requests meeting the SLO per second) for open-loop
arrivals, where throughput is the arrival rate whatever the window does; and mean TPOT.
"""

from __future__ import annotations

import statistics
from typing import Any

from dsd.awc.dataset import CANDIDATE_GAMMAS
from dsd.awc.objective import closed_loop_throughput
from dsd.awc.scenarios import Scenario, adaptation_scenarios
from dsd.experiments.common import bar_plot
from dsd.experiments.registry import ExperimentContext, ExperimentResult, register_experiment

BASELINES: dict[str, dict[str, Any]] = {
    "dynamic": {"name": "dynamic"},
    "specdecpp": {"name": "specdecpp"},
    "wisp": {"name": "wisp"},
    "awc": {"name": "awc"},
}


def windows(quick: bool) -> dict[str, dict[str, Any]]:
    gammas = (2, 4, 6) if quick else CANDIDATE_GAMMAS
    return {**{f"static{g}": {"name": "static", "gamma": g} for g in gammas}, **BASELINES}


def run_case(job: tuple[dict[str, Any], str, dict[str, Any]]) -> dict[str, Any]:
    from dsd.sim import simulate

    sdict, name, window = job
    sc = Scenario.from_dict(sdict)
    s = simulate(sc.config(window), keep_requests=False).summary
    closed = sc.arrival == "closed"
    return {"case": sc.sid, "seed": sc.seed, "window": name,
            "metric": "throughput (req/s)" if closed else "goodput (req/s)",
            "value": (closed_loop_throughput(s, sc.drafts, sc.think_s) if closed
                      else s["goodput_rps"]),
            "tpot_ms": s["tpot_ms_mean"], "ttft_ms": s["ttft_ms_mean"],
            "slo_attainment": s["slo_attainment"], "mean_gamma": s["mean_drafted_gamma"]}


@register_experiment("awc-adaptation", "AWC vs static (hindsight-best), dynamic, SpecDec++ "
                                       "and WISP windows where the best window varies")
def awc_adaptation(ctx: ExperimentContext) -> ExperimentResult:
    seeds = (1,) if ctx.quick else (1, 2, 3)
    duration, warmup = (40.0, 5.0) if ctx.quick else (240.0, 30.0)
    scale = 0.2 if ctx.quick else 1.0
    cases = [sc for seed in seeds for sc in adaptation_scenarios(seed, duration, warmup)]
    if ctx.quick:
        cases = [Scenario.from_dict({**sc.to_dict(), "drafts_per_server":
                                     sc.drafts_per_server * scale}) for sc in cases]
    pols = windows(ctx.quick)
    runs = ctx.map(run_case, [(sc.to_dict(), n, w) for sc in cases for n, w in pols.items()])
    rows = aggregate(runs)
    names = list(dict.fromkeys(r["case"] for r in rows))
    summary: dict[str, Any] = {"seeds": len(seeds), "duration_s": duration}
    for case in names:
        r = next(r for r in rows if r["case"] == case and r["window"] == "awc")
        summary[case] = {k: r[k] for k in ("vs_best_static", "vs_static4", "vs_dynamic",
                                           "vs_specdecpp", "vs_wisp", "tpot_vs_best_static")}
    order = ["static4", "best static", "dynamic", "specdecpp", "wisp", "awc"]
    series = {label: {w: [next((r[key] for r in rows if r["case"] == c and r["label"] == w),
                               None) for c in names] for w in order}
              for label, key in (("value / hindsight-best static", "relative"),
                                 ("TPOT mean (ms)", "tpot_ms"))}
    plot = bar_plot(ctx.out / "awc-adaptation.png", names, series, list(series),
                    f"Windows where adaptation can pay ({len(seeds)} seed"
                    f"{'s' if len(seeds) > 1 else ''} x {duration:g} s)")
    cols = ["case", "window", "metric", "value", "relative", "tpot_ms", "ttft_ms",
            "slo_attainment", "mean_gamma"]
    return ExperimentResult(rows, summary, [plot], cols, axes=("case", "window"))


def aggregate(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Seed means per (case, window), each relative to the case's hindsight-best static
    window (the static gamma with the best seed-mean value), and AWC's margins."""
    keys = ("value", "tpot_ms", "ttft_ms", "slo_attainment", "mean_gamma")
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in runs:
        groups.setdefault((r["case"], r["window"]), []).append(r)
    rows = []
    for (case, window), rs in groups.items():
        row = {"case": case, "window": window, "label": window, "metric": rs[0]["metric"]}
        row.update({k: statistics.fmean(r[k] or 0.0 for r in rs) for k in keys})
        rows.append(row)
    for case in dict.fromkeys(r["case"] for r in rows):
        mine = {r["window"]: r for r in rows if r["case"] == case}
        statics = {w: r for w, r in mine.items() if w.startswith("static")}
        best = max(statics.values(), key=lambda r: r["value"])
        rows.append({**best, "window": f"best static ({best['window']})",
                     "label": "best static"})
        for r in mine.values():
            r["relative"] = r["value"] / best["value"] if best["value"] else None
        rows[-1]["relative"] = 1.0
        awc = mine["awc"]
        for other, key in (("best static", "vs_best_static"), ("static4", "vs_static4"),
                           ("dynamic", "vs_dynamic"), ("specdecpp", "vs_specdecpp"),
                           ("wisp", "vs_wisp")):
            ref = best if other == "best static" else mine[other]
            awc[key] = awc["value"] / ref["value"] - 1 if ref["value"] else None
        awc["tpot_vs_best_static"] = (awc["tpot_ms"] / best["tpot_ms"] - 1
                                      if best["tpot_ms"] else None)
    return rows

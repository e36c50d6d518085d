"""`dsd experiment sim-vs-real`: run the real runtime, then the simulator on the same
configurations with the measured profile and the fitted acceptance, and report the
simulator's error on TTFT, TPOT and throughput.

Steps: (1) pick the model pair (the Qwen2.5-Coder 0.5B/1.5B pair when installed and not
--quick, else tiny random models written into the output folder); (2) start the verifier
pinned to one CPU and the edge pinned to the other, each profiling its own model first
(profile.csv); (3) serve every configuration (emulated RTT x gamma x concurrency, closed
loop, fixed prompt/output lengths, greedy) and keep the per-request records
(requests_real.jsonl); (4) fit per-position acceptance from those records
(acceptance.yaml) and take each configuration's link as the edge measured it (round trip
minus the verifier's time: the emulated delay plus gRPC and event-loop costs); (5) simulate
each configuration with `latency: {type: table}` and the fitted acceptance; (6) write
results.csv, summary.json (mape_ttft, mape_tpot, mape_throughput as fractions) and
parity.png.

Environment: DSD_SIM_VS_REAL_MODELS=tiny forces the tiny pair; DSD_MODEL_CACHE points at
the folder holding qwen2.5-coder-0.5b/ and qwen2.5-coder-1.5b/ (default .cache/models).
"""

from __future__ import annotations

import json
import os
import statistics
from itertools import product
from pathlib import Path
from typing import Any

from dsd.calibrate.grid import ProfileGrid
from dsd.calibrate.realrun import PairSpec, RealConfig
from dsd.experiments.registry import ExperimentContext, ExperimentResult, register_experiment

QWEN = ("qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b")
# TPOT and throughput average over many steps, preemptions by other processes included, so
# the profile's mean (not its median) is the step cost the runs actually paid.
STAT = "median"


def _plan(quick: bool, qwen: bool) -> dict[str, Any]:
    """Configurations and lengths. Quick: tiny models, 8 configurations, ~1-2 minutes."""
    if quick:
        return {"rtts": (0, 30), "gammas": (2, 4), "concurrency": (1, 2), "requests": 8,
                "prompt": 64, "output": 32}
    if qwen:  # ~1 s per target step on one core: keep requests few and short
        return {"rtts": (0, 10, 30, 60), "gammas": (2, 4, 6), "concurrency": (1, 2),
                "requests": 4, "prompt": 64, "output": 24}
    return {"rtts": (0, 10, 30, 60), "gammas": (2, 4, 6), "concurrency": (1, 2, 4),
            "requests": 16, "prompt": 64, "output": 48}


def _qwen_dirs() -> tuple[Path, Path] | None:
    roots = [Path(os.environ["DSD_MODEL_CACHE"])] if os.environ.get("DSD_MODEL_CACHE") else []
    roots += [Path.cwd() / ".cache" / "models",
              Path(__file__).resolve().parents[3] / ".cache" / "models"]
    for root in roots:
        draft, target = root / QWEN[0], root / QWEN[1]
        if (draft / "config.json").is_file() and (target / "config.json").is_file():
            return draft, target
    return None


def _pair(ctx: ExperimentContext) -> tuple[PairSpec, list[str]]:
    """The model pair and the extra catalog files its names need."""
    qwen = None if ctx.quick or os.environ.get("DSD_SIM_VS_REAL_MODELS") == "tiny" \
        else _qwen_dirs()
    if qwen is not None:
        return PairSpec(str(qwen[0]), str(qwen[1]), *QWEN), []
    import yaml

    from dsd.calibrate.hfspec import catalog_entry
    from dsd.runtime.tiny import write_tiny_pair

    target_dir, draft_dir = write_tiny_pair(ctx.out / "models", seed=ctx.seed)
    catalog = ctx.out / "catalog.yaml"
    catalog.write_text(yaml.safe_dump({"models": {
        "tiny-draft": catalog_entry(draft_dir, family="tiny"),
        "tiny-target": catalog_entry(target_dir, family="tiny"),
    }}, sort_keys=False))
    return PairSpec(str(draft_dir), str(target_dir), "tiny-draft", "tiny-target"), [
        str(catalog)]


def _grids(plan: dict[str, Any]) -> tuple[ProfileGrid, ProfileGrid]:
    """Profile grids that cover every step the configurations make (no extrapolation)."""
    longest = plan["prompt"] + plan["output"] + max(plan["gammas"]) + 1
    # 512 also covers the simulator's routing estimate (one verify at context 512).
    contexts = tuple(sorted({c for c in (16, 32, 64, 128, 256) if c < longest}
                            | {1 << (longest - 1).bit_length(), 512}))
    prompts = tuple(sorted({8, 16, plan["prompt"], 2 * plan["prompt"]}))
    batches = tuple(sorted({1, *plan["concurrency"]}))
    target = ProfileGrid(batches, contexts, tuple(plan["gammas"]), prompts)
    draft = ProfileGrid((1,), contexts, (1,), prompts)
    return target, draft


@register_experiment("sim-vs-real", "simulator vs real runtime: TTFT/TPOT/throughput error")
def sim_vs_real(ctx: ExperimentContext) -> ExperimentResult:
    from dsd.acceptance.fitted import load_fitted, write_fitted
    from dsd.calibrate.acceptance import fit_acceptance
    from dsd.calibrate.compare import ape, metrics, scenario, simulate_config
    from dsd.calibrate.profile import environment
    from dsd.calibrate.realrun import RealHarness
    from dsd.perf.table import write_profile

    pair, catalogs = _pair(ctx)
    qwen = pair.draft_name == QWEN[0]
    plan = _plan(ctx.quick, qwen)
    grid_target, grid_draft = _grids(plan)
    configs = [RealConfig(rtt, g, c, plan["requests"], plan["prompt"], plan["output"])
               for rtt, g, c in product(plan["rtts"], plan["gammas"], plan["concurrency"])]

    # Profiling passes are spread between the runs (a few passes after each configuration,
    # after some up front), so the profile sees the same background load as the runs.
    passes_between = 1 if qwen else 4
    records: list[dict[str, Any]] = []
    real: dict[str, dict[str, float]] = {}
    overheads: dict[str, float] = {}
    with RealHarness(pair, grid_target, grid_draft, warmup=1 if qwen else 2) as harness:
        harness.start(passes=2 if qwen else 3)
        meta = environment("cpu")
        for cfg in configs:
            recs, overhead = harness.run(cfg, seed=ctx.seed)
            harness.profile(passes_between)
            records += recs
            overheads[cfg.label] = overhead
            real[cfg.label] = metrics(recs)
            real[cfg.label]["acceptance"] = (sum(r["accepted_tokens"] for r in recs)
                                             / max(1, sum(r["drafted_tokens"] for r in recs)))
        meta.update(threads="1", statistic=STAT, warmup=str(harness.warmup), dtype="float32",
                    cpus=f"edge {harness.edge_cpus}, verifier {harness.verifier_cpus}",
                    note="edge and verifier pinned to one CPU each; passes interleaved "
                         "with the runtime runs")
        meta[f"model.{pair.draft_name}"] = pair.draft_dir
        meta[f"model.{pair.target_name}"] = pair.target_dir
        profile = write_profile(ctx.out / "profile.csv", harness.profile_rows(STAT), meta)
    with (ctx.out / "requests_real.jsonl").open("w") as fh:
        for r in records:
            fh.write(json.dumps(r) + "\n")

    fit = fit_acceptance(records, pair.draft_name, pair.target_name, "synthetic")
    acc_path = write_fitted(ctx.out / "acceptance.yaml", fit)
    acceptance = load_fitted(acc_path)
    overhead_ms = statistics.median(overheads.values()) * 1000.0

    out_rows = []
    for cfg in configs:
        # The link as the edge measured it in this configuration (round trip minus the
        # verifier's own time): the emulated delay plus gRPC, event-loop and timer costs.
        link_ms = overheads[cfg.label] * 1000.0
        sim = simulate_config(scenario(cfg, pair.draft_name, pair.target_name, str(profile),
                                       acceptance, link_ms, catalogs, seed=ctx.seed))
        r = real[cfg.label]
        out_rows.append({
            "config": cfg.label, "rtt_ms": cfg.rtt_ms, "gamma": cfg.gamma,
            "concurrency": cfg.concurrency, "acceptance": round(r["acceptance"], 3),
            "link_overhead_ms": round(link_ms, 3),
            "real_ttft_ms": r["ttft_ms"], "sim_ttft_ms": sim["ttft_ms"],
            "err_ttft": ape(sim["ttft_ms"], r["ttft_ms"]),
            "real_tpot_ms": r["tpot_ms"], "sim_tpot_ms": sim["tpot_ms"],
            "err_tpot": ape(sim["tpot_ms"], r["tpot_ms"]),
            "real_tput": r["throughput"], "sim_tput": sim["throughput"],
            "err_throughput": ape(sim["throughput"], r["throughput"]),
        })

    def mean_of(key: str) -> float:
        return statistics.fmean(row[key] for row in out_rows)

    summary = {
        "mape_ttft": mean_of("err_ttft"),
        "mape_tpot": mean_of("err_tpot"),
        "mape_throughput": mean_of("err_throughput"),
        "max_err_ttft": max(row["err_ttft"] for row in out_rows),
        "max_err_tpot": max(row["err_tpot"] for row in out_rows),
        "max_err_throughput": max(row["err_throughput"] for row in out_rows),
        # The same errors over configurations with an emulated RTT of 10 ms or more, where
        # millisecond scheduler noise matters less than on the bare loopback.
        **_mape_where(out_rows, lambda row: row["rtt_ms"] >= 10, "_rtt10plus"),
        "configurations": len(out_rows),
        "requests_per_config": plan["requests"],
        "draft": pair.draft_name, "target": pair.target_name,
        "prompt_tokens": plan["prompt"], "output_tokens": plan["output"],
        "network_overhead_ms_median": round(overhead_ms, 3),
        "fitted_alphas": fit["alphas"], "fitted_spread": fit["spread"],
        "loadavg_1m": meta.get("loadavg_1m"),
    }
    plots = _parity_plot(out_rows, ctx.out / "parity.png")
    notes = [f"profile {profile.name}, acceptance {acc_path.name} (alpha mean "
             f"{fit['acceptance_rate']:.3f}), measured link overhead {overhead_ms:.2f} ms "
             "(median) on top of the emulated RTT"]
    cols = ["config", "acceptance", "real_ttft_ms", "sim_ttft_ms", "err_ttft", "real_tpot_ms",
            "sim_tpot_ms", "err_tpot", "real_tput", "sim_tput", "err_throughput"]
    return ExperimentResult(out_rows, summary, plots, cols, notes)


def _mape_where(rows: list[dict[str, Any]], keep: Any, suffix: str) -> dict[str, float]:
    chosen = [row for row in rows if keep(row)]
    if not chosen:
        return {}
    return {f"mape_{m}{suffix}": statistics.fmean(row[f"err_{m}"] for row in chosen)
            for m in ("ttft", "tpot", "throughput")}


def _parity_plot(rows: list[dict[str, Any]], path: Path) -> list[Path]:
    """Simulated vs measured, one panel per metric, with the y = x line."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2))
    for ax, (key, label) in zip(axes, (("ttft_ms", "TTFT (ms)"), ("tpot_ms", "TPOT (ms)"),
                                       ("tput", "throughput (tokens/s)")), strict=True):
        xs = [row[f"real_{key}"] for row in rows]
        ys = [row[f"sim_{key}"] for row in rows]
        sizes = [20 + 10 * row["concurrency"] for row in rows]
        sc = ax.scatter(xs, ys, c=[row["rtt_ms"] for row in rows], s=sizes, cmap="viridis")
        lo, hi = min(xs + ys) * 0.9, max(xs + ys) * 1.1
        ax.plot([lo, hi], [lo, hi], "k--", lw=1)
        ax.set_xscale("log")  # RTT 0 and RTT 60 differ by 10x: log axes show both
        ax.set_yscale("log")
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_xlabel(f"measured {label}")
        ax.set_ylabel(f"simulated {label}")
        err = statistics.fmean(row["err_" + ("throughput" if key == "tput" else
                                             key.split("_")[0])] for row in rows)
        ax.set_title(f"{label}: MAPE {err:.1%}")
    fig.colorbar(sc, ax=axes, label="emulated RTT (ms)")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return [path]

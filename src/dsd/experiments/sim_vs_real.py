"""`dsd experiment sim-vs-real`: run the real runtime, then the simulator on the same
configurations with the measured profile and the fitted acceptance, and report the
simulator's error on TTFT, TPOT and throughput.

Steps: (1) pick the model pair and engine (`--models`, below); (2) start the verifier
pinned to one CPU and the edge pinned to the other, each profiling its own model first
(profile.csv, with each model's idle wake-up curve); (3) serve one run that measures the
edge's host work per round (RTT 0, one user, the middle window: a round's wall time minus
its link, the verifier's time and the profiled drafting), then every configuration
(emulated RTT x gamma x concurrency, closed loop, fixed prompt/output lengths, greedy) and
keep the per-request records (requests_real.jsonl); (4) fit per-position acceptance from
those records (acceptance.yaml) and take each configuration's link as the edge measured it
(round trip minus the verifier's time: the emulated delay plus gRPC and event-loop costs);
(5) simulate each configuration with `latency: {type: table}`, the edge's host work
(`round_host_ms`) and the fitted acceptance; (6) write
results.csv, summary.json (mape_ttft, mape_tpot, mape_throughput as fractions) and
parity.png.

Models (`--models`, or the environment variable DSD_SIM_VS_REAL_MODELS): `tiny` (the tiny
random pair on HF transformers, written into the output folder), `tiny-gguf` (the same pair
as GGUF on llama.cpp), `qwen` (Qwen2.5-Coder 0.5B/1.5B model directories on HF
transformers), `qwen-gguf` (their Q4_K_M GGUFs on llama.cpp). Default: `qwen` when
installed and not --quick, else `tiny`. DSD_MODEL_CACHE points at the folder holding
qwen2.5-coder-0.5b/, qwen2.5-coder-1.5b/ and the GGUFs (default .cache/models).
"""

from __future__ import annotations

import json
import os
import statistics
from dataclasses import asdict
from itertools import product
from pathlib import Path
from typing import Any

from dsd.calibrate.grid import ProfileGrid
from dsd.calibrate.realrun import PairSpec, RealConfig
from dsd.errors import DsdError
from dsd.experiments.registry import ExperimentContext, ExperimentResult, register_experiment

QWEN = ("qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b")
QWEN_GGUF = ("qwen2.5-coder-0.5b-q4_k_m.gguf", "qwen2.5-coder-1.5b-q4_k_m.gguf")
MODEL_CHOICES = ("tiny", "tiny-gguf", "qwen", "qwen-gguf")
# TPOT and throughput average over many steps, preemptions by other processes included, so
# the profile's mean (not its median) is the step cost the runs actually paid.
STAT = "median"
# What the measurement leaves in the output folder; `--reuse` re-simulates from these.
MEASURED, PROFILE, RECORDS = "measured.json", "profile.csv", "requests_real.jsonl"
# The `config` of the records that measure the edge's host work per round (not compared).
EDGE_HOST = "edge-host"


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


def _qwen_paths(gguf: bool) -> tuple[Path, Path] | None:
    roots = [Path(os.environ["DSD_MODEL_CACHE"])] if os.environ.get("DSD_MODEL_CACHE") else []
    roots += [Path.cwd() / ".cache" / "models",
              Path(__file__).resolve().parents[3] / ".cache" / "models"]
    for root in roots:
        if gguf:
            draft, target = root / QWEN_GGUF[0], root / QWEN_GGUF[1]
            if draft.is_file() and target.is_file():
                return draft, target
            continue
        draft, target = root / QWEN[0], root / QWEN[1]
        if (draft / "config.json").is_file() and (target / "config.json").is_file():
            return draft, target
    return None


def _choice(ctx: ExperimentContext) -> str:
    choice = ctx.options.get("models") or os.environ.get("DSD_SIM_VS_REAL_MODELS") or ""
    if choice and choice not in MODEL_CHOICES:
        raise DsdError(f"sim-vs-real: unknown model choice {choice!r}; choose one of "
                       f"{', '.join(MODEL_CHOICES)}")
    if not choice:
        choice = "tiny" if ctx.quick or _qwen_paths(False) is None else "qwen"
    return choice


def _pair(ctx: ExperimentContext) -> tuple[PairSpec, list[str]]:
    """The model pair and the extra catalog files its names need."""
    choice = _choice(ctx)
    if choice.startswith("qwen"):
        qwen = _qwen_paths(choice == "qwen-gguf")
        if qwen is None:
            want = ", ".join(QWEN_GGUF if choice == "qwen-gguf" else QWEN)
            raise DsdError(f"sim-vs-real --models {choice}: {want} not found under "
                           "$DSD_MODEL_CACHE or .cache/models (scripts/install_qwen_pair.py)")
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
    if choice == "tiny-gguf":  # the same weights, run by llama.cpp
        from dsd.runtime.tiny_gguf import write_tiny_gguf_pair

        target_dir, draft_dir = write_tiny_gguf_pair(ctx.out / "models", seed=ctx.seed)
    return PairSpec(str(draft_dir), str(target_dir), "tiny-draft", "tiny-target"), [
        str(catalog)]


def _grids(plan: dict[str, Any]) -> tuple[ProfileGrid, ProfileGrid]:
    """Profile grids that cover every step the configurations make (no extrapolation)."""
    longest = plan["prompt"] + plan["output"] + max(plan["gammas"]) + 1
    # 512 also covers the simulator's routing estimate (one verify at context 512).
    # Every step after the prefill sees at least the prompt in its cache.
    contexts = tuple(sorted({c for c in (16, 32, 64, 128, 256) if plan["prompt"] <= c < longest}
                            | {plan["prompt"], 1 << (longest - 1).bit_length(), 512}))
    prompts = tuple(sorted({8, 16, plan["prompt"], 2 * plan["prompt"]}))
    batches = tuple(sorted({1, *plan["concurrency"]}))
    target = ProfileGrid(batches, contexts, tuple(plan["gammas"]), prompts)
    draft = ProfileGrid((1,), contexts, (1,), prompts)
    return target, draft


@register_experiment("sim-vs-real", "simulator vs real runtime: TTFT/TPOT/throughput error")
def sim_vs_real(ctx: ExperimentContext) -> ExperimentResult:
    if ctx.reuse:
        if not (ctx.out / MEASURED).is_file():
            raise DsdError(f"--reuse: {ctx.out} holds no {MEASURED} from an earlier run")
    else:
        _measure(ctx)
    return _compare(ctx.out, ctx.seed)


def _measure(ctx: ExperimentContext) -> None:
    """Steps 1-3: run the real runtime over every configuration, profiling both models in
    between; leaves profile.csv, requests_real.jsonl and measured.json in ctx.out."""
    from dsd.calibrate.profile import backend_dtype, environment
    from dsd.calibrate.realrun import RealHarness
    from dsd.perf.table import write_profile
    from dsd.sweep.progress import SweepProgress

    pair, catalogs = _pair(ctx)
    qwen = pair.draft_name == QWEN[0]
    plan = _plan(ctx.quick, qwen)
    grid_target, grid_draft = _grids(plan)
    configs = [RealConfig(rtt, g, c, plan["requests"], plan["prompt"], plan["output"])
               for rtt, g, c in product(plan["rtts"], plan["gammas"], plan["concurrency"])]

    # The edge's host work per round is measured on a run of its own, not on the runs the
    # simulator is judged against: one user, no added RTT, the middle window.
    gammas = sorted(plan["gammas"])
    edge_cfg = RealConfig(0, gammas[len(gammas) // 2], 1, plan["requests"], plan["prompt"],
                          plan["output"])

    # Profiling passes are spread between the runs (after some up front), so the profile
    # sees the same background load as the runs. A Qwen pass takes about a minute.
    every, passes = (3, 1) if qwen else (1, 4)
    records: list[dict[str, Any]] = []
    bar = SweepProgress(len(configs) + 1, description="runtime configurations")
    with RealHarness(pair, grid_target, grid_draft, warmup=1 if qwen else 2,
                     draft_gammas=tuple(plan["gammas"])) as harness:
        harness.start(passes=2 if qwen else 3)
        meta = environment("cpu")
        for rec in harness.run(edge_cfg, seed=ctx.seed + 1):
            records.append({**rec, "config": EDGE_HOST})
        bar.advance(True)
        for i, cfg in enumerate(configs):
            records += harness.run(cfg, seed=ctx.seed)
            if (i + 1) % every == 0 or i + 1 == len(configs):
                harness.profile(passes)
            bar.advance(True)
        bar.close()
        meta.update(threads="1", statistic=STAT, warmup=str(harness.warmup),
                    dtype=backend_dtype(harness.draft),
                    engine=type(harness.draft).__name__,
                    cpus=f"edge {harness.edge_cpus}, verifier {harness.verifier_cpus}",
                    note="edge and verifier pinned to one CPU each; passes interleaved "
                         "with the runtime runs; draft decode timed per step in bursts of "
                         f"{harness.decode_burst}")
        meta[f"model.{pair.draft_name}"] = pair.draft_dir
        meta[f"model.{pair.target_name}"] = pair.target_dir
        meta.update(harness.wake_metadata())
        write_profile(ctx.out / PROFILE, harness.profile_rows(STAT), meta)
    with (ctx.out / RECORDS).open("w") as fh:
        for r in records:
            fh.write(json.dumps(r) + "\n")
    (ctx.out / MEASURED).write_text(json.dumps({
        # catalog files the experiment wrote live beside this file: store them relative
        "draft": pair.draft_name, "target": pair.target_name,
        "engine": type(harness.draft).__name__, "draft_path": pair.draft_dir,
        "target_path": pair.target_dir,
        "catalogs": [os.path.relpath(c, ctx.out) for c in catalogs],
        "configs": [asdict(c) for c in configs], "edge_host_config": asdict(edge_cfg),
        "loadavg_1m": meta.get("loadavg_1m"),
    }, indent=2) + "\n")


def _compare(out: Path, seed: int) -> ExperimentResult:
    """Steps 4-6: fit acceptance and the link from the measured records, simulate every
    configuration on the measured profile, and compare."""
    from dsd.acceptance.fitted import load_fitted, write_fitted
    from dsd.calibrate.acceptance import fit_acceptance
    from dsd.calibrate.compare import (
        ape,
        edge_host_ms,
        link_costs,
        metrics,
        scenario,
        simulate_config,
    )

    try:
        measured = json.loads((out / MEASURED).read_text())
        records = [json.loads(line) for line in (out / RECORDS).read_text().splitlines()
                   if line.strip()]
    except (OSError, ValueError) as exc:
        raise DsdError(f"{out}: no usable measurements to reuse ({exc})") from None
    draft, target = measured["draft"], measured["target"]
    configs = [RealConfig(**c) for c in measured["configs"]]
    catalogs = [str(out / c) for c in measured["catalogs"]]
    host_records = [r for r in records if r["config"] == EDGE_HOST]
    records = [r for r in records if r["config"] != EDGE_HOST]
    # Runs measured before the edge-host run existed simulate without host work.
    host_ms = (edge_host_ms(host_records, _draft_step_ms(out / PROFILE, draft, catalogs))
               if host_records else 0.0)
    fit = fit_acceptance(records, draft, target, "synthetic")
    acceptance = load_fitted(write_fitted(out / "acceptance.yaml", fit))
    by_config = {cfg.label: [r for r in records if r["config"] == cfg.label] for cfg in configs}
    # The session set-up (what the first token cost beyond a round's link time and the
    # verifier's prefill) is a property of the edge and the link, not of a configuration:
    # one value from every request.
    setup_ms = statistics.median(link_costs(r)[1] for r in records)

    out_rows = []
    for cfg in configs:
        recs = by_config[cfg.label]
        # The link as the edge measured it in this configuration (round trip minus the
        # verifier's own time): the emulated delay plus gRPC, event-loop and timer costs.
        link_ms = max(0.0, statistics.median(link_costs(r)[0] for r in recs) - cfg.rtt_ms)
        # Replayed: each simulated request accepts, round by round, what the measured
        # request it stands for accepted (issue order), which leaves the latency model to be
        # judged; fitted: acceptance sampled from the fit, the fully predictive variant.
        logs = [x["rounds_log"] for x in sorted(recs, key=_issue_order)]
        sims = {name: simulate_config(scenario(
            cfg, draft, target, str(out / PROFILE), acceptance, link_ms, catalogs,
            setup_ms=setup_ms, seed=seed, replay=replay, round_host_ms=host_ms))
            for name, replay in (("replay", logs), ("fitted", None))}
        sim = sims["replay"]
        r = metrics(recs)
        drafted = sum(x["drafted_tokens"] for x in recs)
        out_rows.append({
            "config": cfg.label, "rtt_ms": cfg.rtt_ms, "gamma": cfg.gamma,
            "concurrency": cfg.concurrency,
            "acceptance": round(sum(x["accepted_tokens"] for x in recs) / max(1, drafted), 3),
            "link_overhead_ms": round(link_ms, 3),
            "real_ttft_ms": r["ttft_ms"], "sim_ttft_ms": sim["ttft_ms"],
            "err_ttft": ape(sim["ttft_ms"], r["ttft_ms"]),
            "real_tpot_ms": r["tpot_ms"], "sim_tpot_ms": sim["tpot_ms"],
            "err_tpot": ape(sim["tpot_ms"], r["tpot_ms"]),
            "real_tput": r["throughput"], "sim_tput": sim["throughput"],
            "err_throughput": ape(sim["throughput"], r["throughput"]),
            **{f"err_{m}_fitted": ape(sims["fitted"][k], r[k])
               for m, k in (("ttft", "ttft_ms"), ("tpot", "tpot_ms"),
                            ("throughput", "throughput"))},
        })

    def mean_of(key: str) -> float:
        return statistics.fmean(row[key] for row in out_rows)

    overhead_ms = statistics.median(row["link_overhead_ms"] for row in out_rows)
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
        # With acceptance sampled from the fitted model instead of replayed per request.
        **{f"mape_{m}_fitted": mean_of(f"err_{m}_fitted")
           for m in ("ttft", "tpot", "throughput")},
        "configurations": len(out_rows),
        "requests_per_config": configs[0].requests,
        "draft": draft, "target": target,
        "prompt_tokens": configs[0].prompt_tokens, "output_tokens": configs[0].output_tokens,
        "network_overhead_ms_median": round(overhead_ms, 3),
        "session_setup_ms": round(setup_ms, 3),
        "edge_round_host_ms": round(host_ms, 3),
        "fitted_alphas": fit["alphas"], "fitted_spread": fit["spread"],
        "loadavg_1m": measured.get("loadavg_1m"),
    }
    plots = _parity_plot(out_rows, out / "parity.png",
                         f"Simulator vs runtime: {target} verifying {draft}, "
                         f"{len(out_rows)} configurations x {configs[0].requests} requests")
    notes = [f"profile {PROFILE}, acceptance acceptance.yaml (alpha mean "
             f"{fit['acceptance_rate']:.3f}), measured link overhead {overhead_ms:.2f} ms "
             f"(median) on top of the emulated RTT, session set-up {setup_ms:.2f} ms, edge "
             f"host work {host_ms:.2f} ms a round (measured on a run of its own)"]
    cols = ["config", "acceptance", "real_ttft_ms", "sim_ttft_ms", "err_ttft", "real_tpot_ms",
            "sim_tpot_ms", "err_tpot", "real_tput", "sim_tput", "err_throughput"]
    return ExperimentResult(out_rows, summary, plots, cols, notes, axes=("config",))


def _draft_step_ms(profile: Path, draft: str, catalogs: list[str]) -> Any:
    """The profiled cost (ms) of one draft decode step at a context, as the simulator
    prices it."""
    from dsd.catalog import load_catalog
    from dsd.perf import Deployment
    from dsd.perf.table import TablePredictor

    catalog = load_catalog(catalogs)
    step = TablePredictor(str(profile)).bind(Deployment(catalog.gpu("cpu"),
                                                        catalog.model(draft)))
    return lambda context: 1000.0 * step.step_s(1, 1, context, context + 1)


def _issue_order(record: dict[str, Any]) -> tuple[int, str]:
    """Requests in the order the closed loop issued them (ids r0, r1, ...)."""
    rid = str(record.get("request_id", ""))
    return (int(rid[1:]), rid) if rid[1:].isdigit() else (1 << 30, rid)


def _mape_where(rows: list[dict[str, Any]], keep: Any, suffix: str) -> dict[str, float]:
    chosen = [row for row in rows if keep(row)]
    if not chosen:
        return {}
    return {f"mape_{m}{suffix}": statistics.fmean(row[f"err_{m}"] for row in chosen)
            for m in ("ttft", "tpot", "throughput")}


def _parity_plot(rows: list[dict[str, Any]], path: Path, title: str) -> list[Path]:
    """Simulated vs measured, one panel per metric, with the y = x line."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter
    except ImportError:
        return []
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    fig.subplots_adjust(wspace=0.4)  # room for each panel's y label
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
        for axis in (ax.xaxis, ax.yaxis):  # 1-2-5 labels; minor ones collide over short ranges
            axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            axis.set_major_formatter(FormatStrFormatter("%g"))
            axis.set_minor_formatter(NullFormatter())
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_xlabel(f"measured {label}")
        ax.set_ylabel(f"simulated {label}")
        err = statistics.fmean(row["err_" + ("throughput" if key == "tput" else
                                             key.split("_")[0])] for row in rows)
        ax.set_title(f"{label}: MAPE {err:.1%}")
    fig.colorbar(sc, ax=axes, label="emulated RTT (ms)")
    fig.suptitle(title, y=1.02)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return [path]

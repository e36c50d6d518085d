"""`dsd simulate CONFIG.yaml`: run a scenario, print its summary, write a run folder."""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from dsd.cli.report import add_report_flag, write_after_run

if TYPE_CHECKING:
    from dsd.config import ScenarioConfig


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("simulate", help="run one DSD-Sim scenario",
                       description="Run a scenario YAML; writes summary.json, requests.parquet "
                                   "and the resolved config.yaml to the run folder.")
    p.add_argument("config", help="scenario YAML (see examples/)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE",
                   help="override a config value, e.g. --set network.rtt_ms=50 (repeatable)")
    p.add_argument("--seed", type=int, default=None, help="random seed (overrides the config)")
    p.add_argument("--out", default=None, help="run folder (default: runs/<name>-<time>)")
    p.add_argument("--modes", default=None,
                   help="comma-separated modes to compare on the same workload, e.g. "
                        "distributed,fused,cloud_only (one sub-folder each)")
    p.add_argument("--quiet", action="store_true",
                   help="no progress bar or summary: print nothing but errors and warnings")
    add_report_flag(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from dsd.config import load_config
    from dsd.progress import SimulationProgress

    config = load_config(args.config, args.overrides, args.seed)
    out = Path(args.out or f"runs/{config.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    configs = mode_configs(config, args.modes)
    from dsd.sim import simulate  # after the configs are checked: a mistake reports sooner

    results = []
    for cfg in configs:
        label = f"simulate {cfg.mode}" if len(configs) > 1 else "simulate"
        with SimulationProgress(cfg.simulation.duration_s, description=label,
                                enabled=not args.quiet) as bar:
            results.append(simulate(cfg, out=out / cfg.mode if len(configs) > 1 else out,
                                    progress=bar))
    for r in results:
        if not r.summary.get("requests_completed"):
            print(f"dsd simulate: warning: {r.config.mode}: no request completed in the measured "
                  f"window ({r.summary.get('requests_arrived', 0)} arrived in "
                  f"{r.summary.get('sim_time_s', 0):g} simulated s); check workload.arrival "
                  "and simulation.duration_s / warmup_s", file=sys.stderr)
    if len(configs) > 1:
        _write_comparison(out / "comparison.csv", [r.summary for r in results])
    if not args.quiet:
        from dsd.metrics.report import print_summaries

        print_summaries([r.summary for r in results], [r.config.mode for r in results],
                        title=f"dsd simulate: {config.name}")
        print(f"run folder: {out}")
    if args.report:
        write_after_run(out, args.quiet)
    return 0


def mode_configs(config: ScenarioConfig, modes: str | None) -> list[ScenarioConfig]:
    """The config once per mode of `--modes`, all checked before any runs."""
    from dsd.config import load_config
    from dsd.errors import ConfigError

    if not modes:
        return [config]
    names = [m.strip() for m in modes.split(",") if m.strip()]
    repeated = next((m for m in names if names.count(m) > 1), None)
    if repeated or not names:
        raise ConfigError(f"--modes: {repeated!r} is given twice" if repeated
                          else "--modes: name at least one mode")
    try:
        return [load_config(config, [f"mode={mode}"]) for mode in names]
    except ConfigError as exc:
        raise ConfigError(f"--modes: {str(exc).removeprefix('mode: ')}") from None


def _write_comparison(path: Path, summaries: list[dict]) -> None:
    keys = [k for k, v in summaries[0].items() if not isinstance(v, list)]
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(summaries)

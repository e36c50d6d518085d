"""`dsd capacity CONFIG --slo ttft_ms=...,tpot_ms=... --attainment 0.9 --over drafts|rate`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "capacity", help="largest load (drafts or arrival rate) that meets an SLO",
        description="Binary search on the number of edge devices (--over drafts) or the "
                    "arrival rate (--over rate) for the largest load whose SLO attainment "
                    "reaches --attainment.")
    p.add_argument("config", help="scenario YAML")
    p.add_argument("--slo", default=None, metavar="ttft_ms=X,tpot_ms=Y",
                   help="SLO to meet (default: the config's slo)")
    p.add_argument("--attainment", type=float, default=0.9, help="target attainment (0.9)")
    p.add_argument("--over", choices=["drafts", "rate"], default="drafts")
    p.add_argument("--lo", type=float, default=None, help="a load known to pass (optional)")
    p.add_argument("--hi", type=float, default=None, help="starting upper load (optional)")
    p.add_argument("--tol", type=float, default=0.05, help="relative precision (0.05)")
    p.add_argument("--seeds", type=int, default=1, help="seeds averaged per load (1)")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="PATH=VALUE", help="override a config value (repeatable)")
    p.add_argument("--workers", type=int, default=None,
                   help="loads evaluated in parallel (default: all cores)")
    p.add_argument("--out", default=None, help="write capacity.json and points.csv here")
    p.add_argument("--quiet", action="store_true",
                   help="print nothing but errors (results in --out)")
    p.set_defaults(handler=run)


def parse_slo(text: str | None) -> dict[str, float] | None:
    from dsd.errors import ConfigError

    if not text:
        return None
    slo: dict[str, float] = {}
    for part in text.split(","):
        key, _, value = part.partition("=")
        try:
            slo[key.strip()] = float(value)
        except ValueError:
            raise ConfigError(f"--slo: expected key=number, got {part!r}") from None
    return slo


def run(args: argparse.Namespace) -> int:
    from dsd.experiments.capacity import capacity_search
    from dsd.experiments.executors import get_executor, workers_arg
    from dsd.experiments.registry import write_rows
    from dsd.progress import ProgressBar

    executor = get_executor(workers_arg(args.workers))
    bar = ProgressBar(f"capacity over {args.over}", None, unit="loads", enabled=not args.quiet)

    def step(done: int, expected: int | None, lo: float | None, hi: float | None) -> None:
        bracket = f"between {lo:g} and {hi:g}" if lo is not None else f"bracketing, at {hi:g}"
        bar.update(done, total=expected, info=bracket)

    try:
        res = capacity_search(
            args.config, slo=parse_slo(args.slo), attainment=args.attainment, over=args.over,
            lo=args.lo, hi=args.hi, tol=args.tol, seeds=tuple(range(args.seeds)),
            executor=executor, overrides=tuple(args.overrides), progress=step)
        bar.update(len(res.points), total=len(res.points), info=f"capacity {res.capacity:g}")
    finally:
        bar.close()
        close = getattr(executor, "close", None)
        if close:
            close()
    if not args.quiet:
        for p in res.points:
            mark = "pass" if p["passes"] else "FAIL"
            print(f"  {args.over}={p['load']:<10g} attainment {p['attainment']:.3f} {mark}  "
                  f"goodput {p['goodput_tps']:.1f} tok/s  TPOT p99 {p['tpot_ms_p99']} ms")
        print(f"capacity: {res.capacity:g} {res.unit} at {args.attainment:.0%} SLO attainment")
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "capacity.json").write_text(json.dumps(
            {"over": res.over, "key": res.key, "capacity": res.capacity,
             "attainment": res.attainment_target, "at_capacity": res.at_capacity},
            indent=2) + "\n")
        write_rows(out / "points.csv", res.points)
    return 0

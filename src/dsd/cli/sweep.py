"""`dsd sweep SWEEP.yaml`: run a grid of simulations into a results table;
`dsd sweep plot RESULTS`: a quick line plot of one."""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from dsd.cli.report import add_report_flag, write_after_run

if TYPE_CHECKING:
    import pyarrow as pa

USAGE = """dsd sweep SWEEP.yaml [--executor local|ray] [--address ADDR] [--workers N] [--out DIR]
                 [--no-resume] [--dry-run] [--quiet] [--report]
       dsd sweep plot RESULTS --x COLUMN --y COLUMN [--hue COLUMN] [--where COLUMN=VALUE]
                 [--out PNG]"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep", help="run a grid of simulations (local processes or Ray); plot results",
        usage=USAGE,
        description="Run every point of a sweep file (a base scenario and axes) and write one "
                    "row per point to DIR/results.parquet. Re-running resumes: finished points "
                    "are skipped, failed ones retried. `dsd sweep plot` draws a results table. "
                    "See docs/sweeps.md and examples/sweeps/.")
    # One positional list instead of sub-subcommands, so `dsd sweep FILE` works as is.
    p.add_argument("target", nargs="+", metavar="SWEEP.yaml | plot RESULTS",
                   help="a sweep file to run, or `plot` and a results table (file or folder)")
    run = p.add_argument_group("running a sweep")
    run.add_argument("--executor", default="local", choices=["local", "ray"],
                     help="local process pool (default) or Ray")
    run.add_argument("--address", default=None,
                     help="Ray cluster to join, e.g. auto (default: start a local Ray)")
    run.add_argument("--workers", type=int, default=None,
                     help="parallel simulations (default: all cores / the cluster's CPUs)")
    run.add_argument("--no-resume", action="store_true",
                     help="run every point again, even those already in the results table")
    run.add_argument("--dry-run", action="store_true",
                     help="expand and validate the grid, print its size, run nothing")
    run.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    add_report_flag(run)
    both = p.add_argument_group("both")
    both.add_argument("--out", default=None,
                      help="sweep: results folder (default: runs/sweeps/<name>); "
                           "plot: PNG path (default: next to the results)")
    plot = p.add_argument_group("plotting (dsd sweep plot)")
    plot.add_argument("--x", default=None, help="column on the x axis, e.g. network.rtt_ms")
    plot.add_argument("--y", default=None, help="metric on the y axis, e.g. throughput_rps")
    plot.add_argument("--hue", default=None, help="one line per value of this column")
    plot.add_argument("--where", action="append", default=[], metavar="COLUMN=VALUE",
                      help="keep only rows with this value (repeatable)")
    p.set_defaults(handler=dispatch)


def dispatch(args: argparse.Namespace) -> int:
    from dsd.errors import ConfigError

    target = list(args.target)
    if target[0] == "plot":
        if len(target) != 2:
            raise ConfigError("usage: dsd sweep plot RESULTS --x COLUMN --y COLUMN")
        return plot(args, target[1])
    if target[0] == "run":  # `dsd sweep run FILE` reads naturally too
        target = target[1:]
    if len(target) != 1:
        raise ConfigError("expected one sweep file: dsd sweep SWEEP.yaml")
    stray = [f"--{k}" for k in ("x", "y", "hue") if getattr(args, k)] + (
        ["--where"] if args.where else [])
    if stray:
        raise ConfigError(f"{stray[0]} applies to `dsd sweep plot` only")
    return run(args, target[0])


def run(args: argparse.Namespace, sweep_file: str) -> int:
    from dsd.sweep import (
        finished_rows,
        load_sweep,
        make_executor,
        run_points,
        summarize,
        validate_points,
    )

    spec = load_sweep(sweep_file)
    points = spec.points()
    out = Path(args.out or f"runs/sweeps/{spec.name}")
    if args.dry_run:
        validate_points(points)
        axes = ", ".join(spec.param_names) or "none"
        seeds = len(spec.seeds) if spec.seeds else 1
        print(f"sweep {spec.name}: {len(points)} points valid ({seeds} seed(s); axes: {axes}); "
              f"results would go to {out / 'results.parquet'}")
        return 0
    skipped = len(finished_rows(points, out)) if not args.no_resume else 0
    if skipped and not args.quiet:
        print(f"sweep {spec.name}: resuming: {skipped} of {len(points)} points already in "
              f"{out / 'results.parquet'} are skipped ({len(points) - skipped} to run; "
              "--no-resume runs all)")
    started = time.perf_counter()
    with make_executor(args.executor, address=args.address, workers=args.workers) as executor:
        table = run_points(points, executor, out, progress=not args.quiet,
                           resume=not args.no_resume, description=f"sweep {spec.name}")
    _keep_copy(Path(sweep_file), out)
    counts = summarize(table)
    if not args.quiet:
        wall = time.perf_counter() - started
        print(f"sweep {spec.name}: {counts['points']} points, {counts['ok']} ok, "
              f"{counts['error']} failed" + (f", {skipped} skipped as done" if skipped else "")
              + f" ({executor.name}, {executor.workers} workers, {wall:.1f} s) -> "
              f"{out / 'results.parquet'}")
        _print_errors(table)
    if args.report:
        write_after_run(out, args.quiet)
    return 1 if counts["points"] and not counts["ok"] else 0


def _keep_copy(sweep_file: Path, out: Path) -> None:
    """The sweep file next to its results, so a results folder says how it was made."""
    try:
        shutil.copyfile(sweep_file, out / "sweep.yaml")
    except (OSError, shutil.SameFileError):
        pass


def _print_errors(table: pa.Table, limit: int = 3) -> None:
    errors = [(pid, msg) for pid, st, msg in zip(table.column("point_id").to_pylist(),
                                                 table.column("status").to_pylist(),
                                                 table.column("error").to_pylist(), strict=True)
              if st == "error"]
    for pid, msg in errors[:limit]:
        print(f"  failed {pid}: {msg}", file=sys.stderr)
    if len(errors) > limit:
        print(f"  ... and {len(errors) - limit} more (see the error column)", file=sys.stderr)


def plot(args: argparse.Namespace, results: str) -> int:
    from dsd.errors import ConfigError
    from dsd.sweep import plot_results, read_results

    if not args.x or not args.y:
        raise ConfigError("dsd sweep plot needs --x COLUMN and --y COLUMN")
    table = read_results(results)
    folder = Path(results) if Path(results).is_dir() else Path(results).parent
    name = f"{args.y}-vs-{args.x}" + (f"-by-{args.hue}" if args.hue else "")
    default = folder / f"{name.replace('/', '_')}.png"  # column names become a file name
    path = plot_results(table, args.x, args.y, args.hue, args.out or default, args.where)
    if not args.quiet:
        print(f"plot: {path}")
    return 0

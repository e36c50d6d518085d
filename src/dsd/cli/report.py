"""`dsd report RUN_DIR [--out report.html]`: one self-contained HTML page for a run folder."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report", help="an HTML report (interactive charts) of a run folder",
        description="Write one self-contained HTML page (plotly charts inline; opens without "
                    "network access) for a run folder of dsd simulate (also --modes), sweep, "
                    "experiment or bench runtime: summary cards, latency CDFs, acceptance by "
                    "draft position, gamma and per-server batch size, queue length and KV "
                    "occupancy over simulated time; for sweeps, each metric against each "
                    "axis. `--report` on simulate, sweep and experiment writes it after the run.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder")
    p.add_argument("--out", default=None, help="HTML file (default RUN_DIR/report.html)")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from dsd.report import write_report

    path = write_report(args.run_dir, args.out)
    if not args.quiet:
        print(f"report: {path}")
    return 0


def add_report_flag(p: argparse.ArgumentParser) -> None:
    """`--report` for commands that write a run folder."""
    p.add_argument("--report", action="store_true",
                   help="also write an HTML report (report.html) into the run folder")


def write_after_run(folder, quiet: bool) -> None:  # noqa: ANN001 - a path
    """The report of a folder a command just wrote (`--report`)."""
    from dsd.report import write_report

    path = write_report(folder)
    if not quiet:
        print(f"report: {path}")

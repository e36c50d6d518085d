"""The HTML run report: one self-contained page (interactive plotly charts, no network
needed to view it) for any dsd run folder. Reads what the engines wrote; never imported by
them.

    from dsd.report import write_report
    write_report("runs/quickstart-20260101-120000")   # -> .../report.html
"""

from __future__ import annotations

from pathlib import Path

from dsd.report.build import build
from dsd.report.runs import read_run_folder

REPORT_NAME = "report.html"


def write_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the report of `run_dir` (a simulation, `--modes` comparison, sweep, experiment
    or runtime bench folder) to `out` (default RUN_DIR/report.html); returns its path."""
    run = read_run_folder(run_dir)
    path = Path(out) if out else Path(run_dir) / REPORT_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(build(run).html(), encoding="utf-8")
    return path


__all__ = ["REPORT_NAME", "write_report"]

"""The HTML run report: what each kind of run folder's page holds, without a browser
(tests/test_report_browser.py draws them in Chromium)."""

from __future__ import annotations

import re

import pytest

from dsd.cli.main import main
from dsd.errors import DataError
from dsd.report import write_report
from dsd.report.runs import read_run_folder


@pytest.fixture
def runs(report_runs):
    return report_runs


def _charts(page: str) -> int:
    return len(re.findall(r'<div class="chart" id="chart-\d+"></div>', page))


def test_every_kind_of_run_folder_gets_its_charts(runs):
    for kind, (folder, charts) in runs.items():
        assert read_run_folder(folder).kind == kind.replace("no-timeseries", "simulation")
        page = write_report(folder).read_text()
        assert _charts(page) == charts, kind
        assert page.count("Plotly.newPlot") == 1  # one loop over every figure
        # Self-contained: plotly.js inline, no script, style or image fetched from elsewhere.
        assert "plotly.js v" in page and not re.search(r"<(script|link|img)[^>]+(src|href)="
                                                       r'"(https?:)?//', page), kind


def test_summary_cards_and_notes(runs):
    sim = write_report(runs["simulation"][0]).read_text()
    for label in ("throughput", "goodput", "SLO attainment", "TTFT p50", "TPOT p50",
                  "E2E p50", "acceptance rate"):
        assert f'<div class="label">{label}</div>' in sim
    assert "γ chosen over time" in sim and "KV-cache occupancy per server" in sim
    plain = write_report(runs["no-timeseries"][0]).read_text()
    assert "No time series in this run folder (timeseries.parquet)" in plain
    modes = write_report(runs["modes"][0]).read_text()
    assert "<th class=\"text\">metric</th>" in modes and ">distributed<" in modes
    assert ">cloud_only<" in modes
    sweep = write_report(runs["sweep"][0]).read_text()
    assert "throughput_rps vs network.rtt_ms" in sweep and "policies.window.gamma" in sweep
    experiment = write_report(runs["experiment"][0]).read_text()
    assert "best_router: low" in experiment and "a note" in experiment
    bench = write_report(runs["bench"][0]).read_text()
    assert "runtime bench records per-request figures only" in bench
    assert "Acceptance by draft position" in bench


def test_cli_report_and_errors(runs, tmp_path, capsys):
    out = tmp_path / "deep" / "r.html"
    assert main(["report", str(runs["simulation"][0]), "--out", str(out)]) == 0
    assert out.is_file() and capsys.readouterr().out.strip() == f"report: {out}"
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"dsd report: error: {tmp_path}: not a dsd run folder (no summary.json, "
                   "results.parquet or requests.parquet)")
    with pytest.raises(DataError, match="no such run folder"):
        write_report(tmp_path / "missing")


def test_report_flag_on_simulate(tmp_path, capsys):
    from report_runs import QUICK, SHORT

    assert main(["simulate", QUICK, *SHORT, "--out", str(tmp_path / "r"), "--report"]) == 0
    assert (tmp_path / "r" / "report.html").is_file()
    assert capsys.readouterr().out == ""  # --quiet: the report is written silently

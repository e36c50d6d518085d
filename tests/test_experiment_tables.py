"""Experiment tables: one number format per column, headers that wrap instead of truncating."""

from __future__ import annotations

import io

from rich.console import Console

from dsd.experiments.registry import ExperimentResult, column_format, print_rows


def test_a_column_has_one_number_format():
    fmt = column_format([25.0, 100.0, 24.93, None])
    assert [fmt(v) for v in (25.0, 100.0, 24.93, None)] == ["25.0", "100.0", "24.9", "-"]
    fmt = column_format([1.0, 0.993, 1])
    assert [fmt(v) for v in (1.0, 0.993, 1)] == ["1.000", "0.993", "1.000"]
    assert column_format([3000.5, 12000.0])(12000.0) == "12,000"
    assert column_format([1, 2])(2) == "2" and column_format(["jsq"])("jsq") == "jsq"


def test_headers_wrap_and_nothing_is_truncated():
    rows = [{"load": "medium", "router": "round-robin", "throughput_rps": 2.6,
             "target_utilization": 0.681, "slo_attainment": 1.0},
            {"load": "high", "router": "least-work", "throughput_rps": 5.31,
             "target_utilization": 0.88, "slo_attainment": 0.984}]
    buf = io.StringIO()
    print_rows(ExperimentResult(rows, {}), "t", Console(file=buf, width=72, force_terminal=True,
                                                        color_system=None))
    text = buf.getvalue()
    assert "…" not in text
    for word in ("throughput", "utilization", "attainment", "round-robin", "2.60", "5.31",
                 "0.681", "0.880", "1.000", "0.984"):
        assert word in text, word

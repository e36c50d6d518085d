"""The summary table `dsd simulate` prints: one column per run, aligned, only known rows."""

from __future__ import annotations

import io

from dsd.metrics.report import print_summaries, summary_table


def test_table_has_one_aligned_column_per_run_and_only_rows_with_data() -> None:
    a = {"requests_completed": 1234, "throughput_rps": 2.5, "ttft_ms_p50": None}
    b = {"requests_completed": 7, "throughput_rps": 10.0, "ttft_ms_p50": 12.34}
    text = summary_table([a, b], ["distributed", "fused"], title="dsd simulate: x")
    lines = text.splitlines()
    assert lines[0].strip() == "dsd simulate: x"
    body = lines[1:]
    assert len({len(line) for line in body}) == 1  # every line as wide as the box
    assert body[1].split("┃")[1:-1] == [" metric             ", " distributed ", " fused "]
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:-1]]
            for line in body if line.startswith("│")}
    assert rows == {"requests completed": ["1,234", "7"],
                    "throughput (req/s)": ["2.50", "10.00"],
                    "TTFT p50 (ms)": ["-", "12.3"]}


def test_no_ansi_codes_unless_a_terminal() -> None:
    out = io.StringIO()
    print_summaries([{"requests_completed": 1}], ["run"], file=out)
    assert "\033[" not in out.getvalue()
    assert "\033[1mmetric" in summary_table([{"requests_completed": 1}], ["run"], bold=True)

"""Human-readable summaries: one table per run, or side by side for several runs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

# (summary key, label, format)
ROWS: list[tuple[str, str, str]] = [
    ("requests_completed", "requests completed", "{:,.0f}"),
    ("requests_rejected", "requests rejected", "{:,.0f}"),
    ("throughput_rps", "throughput (req/s)", "{:.2f}"),
    ("output_tps", "output tokens/s", "{:,.1f}"),
    ("goodput_rps", "goodput (req/s)", "{:.2f}"),
    ("slo_attainment", "SLO attainment", "{:.1%}"),
    ("ttft_ms_p50", "TTFT p50 (ms)", "{:,.1f}"),
    ("ttft_ms_p99", "TTFT p99 (ms)", "{:,.1f}"),
    ("tpot_ms_p50", "TPOT p50 (ms)", "{:,.2f}"),
    ("tpot_ms_p99", "TPOT p99 (ms)", "{:,.2f}"),
    ("e2e_ms_p50", "E2E p50 (ms)", "{:,.0f}"),
    ("acceptance_rate", "acceptance rate", "{:.3f}"),
    ("mean_acceptance_length", "mean acceptance length", "{:.2f}"),
    ("target_utilization", "target utilization", "{:.1%}"),
    ("mean_batch_size", "mean batch (seqs/step)", "{:.1f}"),
    ("mean_batch_occupancy", "batch occupancy", "{:.1%}"),
    ("kv_occupancy_mean", "KV occupancy (mean)", "{:.1%}"),
    ("preemptions", "preemptions", "{:,.0f}"),
    ("wasted_draft_s", "wasted draft time (s)", "{:,.1f}"),
    ("sim_time_s", "simulated time (s)", "{:,.1f}"),
    ("wall_time_s", "wall time (s)", "{:.2f}"),
    ("events_processed", "events", "{:,.0f}"),
]


def _fmt(value: Any, fmt: str) -> str:
    if value is None:
        return "-"
    try:
        return fmt.format(value)
    except (TypeError, ValueError):
        return str(value)


def summary_table(summaries: Sequence[dict[str, Any]], titles: Sequence[str],
                  title: str = "") -> Table:
    table = Table(title=title or None, show_header=True, header_style="bold")
    table.add_column("metric")
    for name in titles:
        table.add_column(name, justify="right")
    for key, label, fmt in ROWS:
        if any(key in s for s in summaries):
            table.add_row(label, *(_fmt(s.get(key), fmt) for s in summaries))
    return table


def print_summaries(summaries: Sequence[dict[str, Any]], titles: Sequence[str],
                    title: str = "", console: Console | None = None) -> None:
    (console or Console()).print(summary_table(summaries, titles, title))

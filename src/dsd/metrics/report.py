"""Human-readable summaries: one table per run, or side by side for several runs.

The table is drawn here, in rich's heavy-head box style, rather than by rich: importing and
rendering with rich costs ~40 ms, a sixth of `dsd simulate`'s start-up budget (0.25 s), to
print 23 lines.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO

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
                  title: str = "", bold: bool = False) -> str:
    """The summaries as a box-drawn table, one column per run; `bold` sets the header in
    ANSI bold."""
    rows = [[label, *(_fmt(s.get(key), fmt) for s in summaries)]
            for key, label, fmt in ROWS if any(key in s for s in summaries)]
    header = ["metric", *titles]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(left: str, fill: str, mid: str, right: str) -> str:
        return left + mid.join(fill * (w + 2) for w in widths) + right

    def cells(row: list[str], edge: str, head: bool = False) -> str:
        texts = [c.ljust(w) if i == 0 else c.rjust(w)
                 for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        if head and bold:
            texts = [f"\033[1m{t}\033[0m" for t in texts]
        return edge + edge.join(f" {t} " for t in texts) + edge

    out = [line("┏", "━", "┳", "┓"), cells(header, "┃", head=True), line("┡", "━", "╇", "┩")]
    out += [cells(r, "│") for r in rows]
    out.append(line("└", "─", "┴", "┘"))
    if title:
        out.insert(0, title.center(len(out[0])).rstrip())
    return "\n".join(out)


def print_summaries(summaries: Sequence[dict[str, Any]], titles: Sequence[str],
                    title: str = "", file: TextIO | None = None) -> None:
    file = file or sys.stdout
    bold = file.isatty() and "NO_COLOR" not in os.environ
    print(summary_table(summaries, titles, title, bold), file=file)

"""The report's sections for each kind of run folder."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from dsd.report import charts
from dsd.report.page import Page, footer_note
from dsd.report.runs import RunFolder, Simulation

# (label, summary key, format, note built from the summary)
CARDS: list[tuple[str, str, str, Any]] = [
    ("throughput", "throughput_rps", "{:.2f} req/s",
     lambda s: _fmt(s.get("output_tps"), "{:,.0f} output tok/s")),
    ("goodput", "goodput_rps", "{:.2f} req/s",
     lambda s: _fmt(s.get("goodput_tps"), "{:,.0f} tok/s within SLO")),
    ("SLO attainment", "slo_attainment", "{:.1%}", lambda s: "requests meeting TTFT and TPOT"),
    ("TTFT p50", "ttft_ms_p50", "{:,.1f} ms", lambda s: _percentiles(s, "ttft_ms")),
    ("TPOT p50", "tpot_ms_p50", "{:,.2f} ms", lambda s: _percentiles(s, "tpot_ms")),
    ("E2E p50", "e2e_ms_p50", "{:,.0f} ms", lambda s: _percentiles(s, "e2e_ms")),
    ("acceptance rate", "acceptance_rate", "{:.3f}",
     lambda s: _fmt(s.get("mean_acceptance_length"), "mean acceptance length {:.2f}")),
    ("target utilization", "target_utilization", "{:.1%}",
     lambda s: _fmt(s.get("mean_batch_size"), "mean verify batch {:.1f}")),
    ("requests completed", "requests_completed", "{:,.0f}",
     lambda s: _fmt(s.get("sim_time_s"), "in {:,.0f} simulated s")),
]
SWEEP_METRICS = ("throughput_rps", "goodput_rps", "goodput_tps", "slo_attainment",
                 "ttft_ms_p50", "ttft_ms_p99", "tpot_ms_p50", "tpot_ms_p99", "e2e_ms_p50",
                 "acceptance_rate", "mean_acceptance_length", "target_utilization")
NO_TIMESERIES = ("No time series in this run folder (timeseries.parquet): γ over time and "
                 "the per-server batch size, queue length and KV occupancy need a simulation "
                 "that recorded them.")


def build(run: RunFolder) -> Page:
    stamp = time.strftime("%Y-%m-%d %H:%M")
    page = Page(run.title, f"{run.folder} · report made {stamp} by {footer_note()}")
    {"simulation": _simulations, "modes": _simulations, "bench": _simulations,
     "sweep": _sweep, "experiment": _experiment}[run.kind](page, run)
    return page


def _simulations(page: Page, run: RunFolder) -> None:
    runs = run.runs
    page.section("Summary")
    if len(runs) == 1:
        page.cards(summary_cards(runs[0].summary))
    else:
        page.table(["metric", *[r.name for r in runs]],
                   [[label, *[_fmt(r.summary.get(key), fmt) or "-" for r in runs]]
                    for label, key, fmt, _ in CARDS])
    page.section("Latency distributions")
    for metric, label in (("ttft_ms", "TTFT"), ("tpot_ms", "TPOT"), ("e2e_ms", "E2E latency")):
        page.chart(charts.cdf(f"{label} (CDF over requests)", f"{label} (ms)",
                              {r.name: _request_values(r, metric) for r in runs}),
                   missing=f"No {label} samples: no finished request in requests.parquet.")
    page.section("Speculation")
    page.chart(charts.acceptance_by_position(
        {r.name: r.summary.get("acceptance_by_position") for r in runs}),
        missing="No acceptance by draft position: the run has no speculation rounds "
                "(cloud-only decoding drafts nothing).")
    has_series = any(r.timeseries is not None for r in runs)
    if has_series:
        page.chart(charts.timeseries("gamma", {r.name: r.timeseries for r in runs}),
                   missing="No γ time series (the run drafts with a fixed window or none).")
        page.section("Servers over simulated time")
        for series in ("batch_size", "queue_len", "kv_occupancy"):
            page.chart(charts.timeseries(series, {r.name: r.timeseries for r in runs}),
                       missing=f"No {series} series in timeseries.parquet.")
    else:
        page.note(NO_TIMESERIES if run.kind != "bench" else
                  "A runtime bench records per-request figures only; γ and server time "
                  "series come from simulations.")
    if run.config_text:
        page.details("Resolved scenario (config.yaml)", run.config_text)


def summary_cards(summary: dict[str, Any]) -> list[tuple[str, str, str]]:
    cards = []
    for label, key, fmt, note in CARDS:
        value = _fmt(summary.get(key), fmt)
        if value:
            cards.append((label, value, note(summary) or ""))
    return cards


def _request_values(run: Simulation, metric: str) -> Any:
    table = run.requests
    if table is None or not table.num_rows:
        return np.zeros(0)
    values = table.column(metric).to_numpy(zero_copy_only=False).astype(float)
    if metric == "tpot_ms":  # one-token requests have no time per output token
        values = values[table.column("output_tokens").to_numpy() > 1]
    return values


def _sweep(page: Page, run: RunFolder) -> None:
    rows = run.results
    ok = [r for r in rows if r.get("status") == "ok"]
    failed = [r for r in rows if r.get("status") != "ok"]
    seeds = sorted({r.get("seed") for r in rows if r.get("seed") is not None})
    page.section("Summary")
    page.cards([("points", f"{len(rows):,}", f"{len(ok)} ok, {len(failed)} failed"),
                ("axes", str(len(run.params)), ", ".join(run.params) or "none"),
                ("seeds", str(len(seeds)), ", ".join(map(str, seeds[:8])))]
               + [(p, str(len(_values(rows, p))) + " values",
                   ", ".join(map(str, _values(rows, p)[:6]))) for p in run.params])
    metrics = [m for m in SWEEP_METRICS if any(_number(r.get(m)) for r in ok)]
    for metric in metrics:
        page.section(f"{metric} against each axis")
        for axis in run.params:
            others = [p for p in run.params if p != axis]
            page.chart(charts.metric_vs(ok, axis, metric, others,
                                        title=f"{metric} vs {axis}"
                                        + (" (mean over seeds)" if len(seeds) > 1 else "")))
    if not run.params:
        page.note("This sweep has no axes (a single point, or seeds only).")
    if failed:
        page.section(f"Failed points ({len(failed)})")
        page.table(["point_id", *run.params, "error"],
                   [[r.get("point_id"), *[r.get(p) for p in run.params], r.get("error")]
                    for r in failed])
    page.section("All points")
    columns = ["point_id", "seed", *run.params, "status", *metrics]
    page.table(columns, [[r.get(c) for c in columns] for r in rows])
    if run.config_text:
        page.details("Sweep file (sweep.yaml)", run.config_text)


def _experiment(page: Page, run: RunFolder) -> None:
    summary = run.summary
    skip = {"experiment", "quick", "plots", "notes", "axes", "table_columns"}
    cards = []
    for key, value in summary.items():
        if key in skip:
            continue
        if isinstance(value, dict):
            cards += [(f"{key}: {k}", _short(v), "") for k, v in value.items()]
        else:
            cards.append((key, _short(value), ""))
    page.section("Headline figures")
    page.cards(cards)
    for note in summary.get("notes", []):
        page.note(note)
    if run.plots:
        page.section("Figures")
        for plot in run.plots:
            page.image(plot, plot.name)
    rows = run.results
    axes = [a for a in summary.get("axes", []) if rows and a in rows[0]]
    columns = summary.get("table_columns") or (list(rows[0]) if rows else [])
    if axes:
        page.section("Each metric against " + axes[0])
        for metric in [c for c in columns if c not in axes and _numeric_column(rows, c)]:
            page.chart(charts.metric_vs(rows, axes[0], metric, axes[1:]))
    page.section("Results (results.csv)")
    page.table(columns, [[r.get(c) for c in columns] for r in rows])


def _values(rows: list[dict[str, Any]], column: str) -> list[Any]:
    """The distinct values of a column, numbers in order and before text."""
    values = {r.get(column) for r in rows if r.get(column) is not None}
    return sorted(values, key=lambda v: (0, v, "") if _number(v) is not None else (1, 0, str(v)))


def _numeric_column(rows: list[dict[str, Any]], column: str) -> bool:
    return any(_number(r.get(column)) is not None for r in rows)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if np.isfinite(value) else None


def _percentiles(summary: dict[str, Any], metric: str) -> str:
    parts = [f"p{q} {_ms(summary[f'{metric}_p{q}'])}" for q in (95, 99)
             if _number(summary.get(f"{metric}_p{q}")) is not None]
    return " · ".join(parts) + " ms" if parts else ""


def _ms(value: float) -> str:
    return f"{value:,.0f}" if value >= 1000 else f"{value:,.1f}"


def _fmt(value: Any, fmt: str) -> str:
    return fmt.format(value) if _number(value) is not None else ""


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.4g}"
    if isinstance(value, list):
        return ", ".join(_short(v) for v in value)
    return "-" if value is None else str(value)

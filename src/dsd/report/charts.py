"""Plotly figures as plain dicts (`{"data": [...], "layout": {...}}`): the page hands them to
plotly.js, so building them needs no plotting package and no browser."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
          "#7f7f7f", "#bcbd22", "#17becf")  # plotly's default colorway
DASHES = ("solid", "dot", "dash", "longdash", "dashdot", "longdashdot")
CDF_POINTS = 400  # per curve: enough for a smooth curve, small enough for a light page
SERIES = {  # timeseries.parquet series -> (chart title, y axis, one line per server)
    "gamma": ("γ chosen over time (mean over sessions)", "γ", False),
    "batch_size": ("Verify batch size per server", "sequences per batch", True),
    "queue_len": ("Queue length per server", "requests waiting", True),
    "kv_occupancy": ("KV-cache occupancy per server", "fraction of KV memory", True),
}


def layout(title: str, x: str, y: str, **extra: Any) -> dict[str, Any]:
    out = {"title": {"text": title, "x": 0.02, "font": {"size": 15}},
           "xaxis": {"title": {"text": x}, "gridcolor": "#e8e8e8", "zeroline": False},
           "yaxis": {"title": {"text": y}, "gridcolor": "#e8e8e8", "zeroline": False},
           "margin": {"l": 64, "r": 16, "t": 48, "b": 96}, "height": 380,
           "paper_bgcolor": "white", "plot_bgcolor": "white",
           # Below the x-axis title, not over it.
           "legend": {"orientation": "h", "x": 0, "y": -0.24, "yanchor": "top",
                      "font": {"size": 11}},
           "font": {"family": "system-ui, -apple-system, Segoe UI, sans-serif", "size": 12},
           "hovermode": "closest"}
    out.update(extra)
    return out


def cdf(title: str, unit: str, curves: Mapping[str, Any]) -> dict[str, Any] | None:
    """Empirical CDFs, one curve per name (values as an array); None when all are empty."""
    traces = []
    for name, values in curves.items():
        v = np.sort(np.asarray(values, dtype=float))
        v = v[np.isfinite(v)]
        if not v.size:
            continue
        p = np.arange(1, v.size + 1) / v.size
        if v.size > CDF_POINTS:  # the curve at evenly spaced probabilities
            keep = np.unique(np.linspace(0, v.size - 1, CDF_POINTS).round().astype(int))
            v, p = v[keep], p[keep]
        traces.append({"type": "scatter", "mode": "lines", "name": name,
                       "x": _list(v), "y": _list(p), "line": {"shape": "hv", "width": 2},
                       "hovertemplate": "%{x:.1f} ms<br>%{y:.1%} of requests"
                                        "<extra>%{fullData.name}</extra>"})
    if not traces:
        return None
    return {"data": traces, "layout": layout(title, unit, "fraction of requests",
                                             yaxis={"range": [0, 1.02], "tickformat": ".0%",
                                                    "gridcolor": "#e8e8e8",
                                                    "title": {"text": "fraction of requests"}},
                                             showlegend=len(traces) > 1)}


def acceptance_by_position(runs: Mapping[str, Sequence[float] | None]) -> dict[str, Any] | None:
    traces = [{"type": "bar", "name": name, "x": list(range(1, len(a) + 1)), "y": _list(a),
               "hovertemplate": "position %{x}: %{y:.3f}<extra>%{fullData.name}</extra>"}
              for name, a in runs.items() if a]
    if not traces:
        return None
    return {"data": traces, "layout": layout(
        "Acceptance by draft position", "draft position (1 = first drafted token)",
        "P(accepted | reached)", barmode="group", showlegend=len(traces) > 1,
        xaxis={"dtick": 1, "title": {"text": "draft position (1 = first drafted token)"}},
        yaxis={"range": [0, 1], "gridcolor": "#e8e8e8",
               "title": {"text": "P(accepted | reached)"}})}


def timeseries(series: str, runs: Mapping[str, Any]) -> dict[str, Any] | None:
    """One figure for `series` from timeseries tables (one per run name): a line per server
    (or the one mean line), named by run when there are several runs."""
    title, ylabel, per_server = SERIES[series]
    traces = []
    several = len([t for t in runs.values() if t is not None]) > 1
    for i, (run, table) in enumerate(runs.items()):
        if table is None:
            continue
        names = table.column("series").to_numpy(zero_copy_only=False)
        chosen = names == series
        if not chosen.any():
            continue
        t = table.column("t_s").to_numpy()[chosen]
        value = table.column("value").to_numpy()[chosen]
        entity = table.column("entity").to_numpy()[chosen]
        for j, e in enumerate(np.unique(entity)):
            mine = entity == e
            order = np.argsort(t[mine], kind="stable")
            label = f"server {e}" if per_server and e >= 0 else series
            name = (f"{run} {label}" if per_server else run) if several else label
            # Several runs: a colour per run, a dash per server; one run: a colour per server.
            line = ({"color": COLORS[i % len(COLORS)], "dash": DASHES[j % len(DASHES)]}
                    if several else {"color": COLORS[j % len(COLORS)]})
            traces.append({"type": "scatter", "mode": "lines", "name": name,
                           "legendgroup": run, "x": _list(t[mine][order]),
                           "y": _list(value[mine][order]),
                           "line": {"width": 1.5, "shape": "hv", **line},
                           "hovertemplate": f"t=%{{x:.1f}} s: %{{y:.3g}}<extra>{name}</extra>"})
    if not traces:
        return None
    extra: dict[str, Any] = {"showlegend": 1 < len(traces) <= 24}
    if series == "kv_occupancy":
        extra["yaxis"] = {"range": [0, 1.02], "tickformat": ".0%", "gridcolor": "#e8e8e8",
                          "title": {"text": ylabel}}
    return {"data": traces, "layout": layout(title, "simulated time (s)", ylabel, **extra)}


def metric_vs(rows: Sequence[Mapping[str, Any]], x: str, metric: str,
              by: Sequence[str] = (), title: str = "") -> dict[str, Any] | None:
    """`metric` against column `x`: a line per combination of the `by` columns (their other
    values), averaged over rows that share x and that combination (e.g. seeds); grouped
    bars when x is categorical."""
    groups: dict[str, dict[Any, list[float]]] = {}
    for row in rows:
        y = row.get(metric)
        if not _finite(y) or row.get(x) is None:
            continue
        key = ", ".join(f"{b}={row.get(b)}" for b in by) if by else metric
        groups.setdefault(key, {}).setdefault(row[x], []).append(float(y))
    if not groups:
        return None
    xs = list(dict.fromkeys(row.get(x) for row in rows if row.get(x) is not None))
    numeric = all(_finite(v) for v in xs)
    if numeric:
        xs = sorted(xs)
    traces = []
    for key, points in groups.items():
        ys = [sum(points[v]) / len(points[v]) if v in points else None for v in xs]
        trace = {"name": key, "x": [str(v) for v in xs] if not numeric else xs, "y": ys,
                 "hovertemplate": f"{x}=%{{x}}<br>{metric}=%{{y:.4g}}<extra>{key}</extra>"}
        trace.update({"type": "scatter", "mode": "lines+markers"} if numeric
                     else {"type": "bar"})
        traces.append(trace)
    extra: dict[str, Any] = {"showlegend": len(traces) > 1, "barmode": "group"}
    if not numeric:
        extra["xaxis"] = {"type": "category", "title": {"text": x}}
    return {"data": traces, "layout": layout(title or f"{metric} vs {x}", x, metric, **extra)}


def _finite(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def _list(values: Any) -> list[float | None]:
    """JSON-ready floats (NaN and infinities become null)."""
    return [float(v) if math.isfinite(v) else None for v in np.asarray(values, dtype=float)]

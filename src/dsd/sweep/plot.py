"""`dsd sweep plot`: a quick line plot of a results table - a metric against one parameter,
one line per value of another, mean over the remaining rows (seeds, other axes) with a
min/max band."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml

from dsd.errors import ConfigError


def _matches(cell: Any, wanted: Any) -> bool:
    if isinstance(cell, int | float) and isinstance(wanted, int | float):
        return float(cell) == float(wanted)
    if isinstance(cell, str) and not isinstance(wanted, str):
        return cell == json.dumps(wanted)  # lists are stored as JSON text
    return cell == wanted


def select_rows(table: pa.Table, where: list[str] | None = None) -> list[dict[str, Any]]:
    """Rows with status ok that match every `path=value` filter."""
    filters = []
    for item in where or []:
        if "=" not in item:
            raise ConfigError(f"--where {item!r}: expected column=value")
        col, raw = item.split("=", 1)
        if col not in table.column_names:
            raise ConfigError(f"--where {col}: no such column")
        filters.append((col, yaml.safe_load(raw)))
    rows = table.to_pylist()
    return [r for r in rows if r.get("status", "ok") == "ok"
            and all(_matches(r.get(c), v) for c, v in filters)]


def aggregate(rows: list[dict[str, Any]], x: str, y: str, hue: str | None
              ) -> dict[Any, list[tuple[Any, float, float, float]]]:
    """hue value -> sorted [(x, mean, min, max)] of y over rows sharing (hue, x)."""
    groups: dict[Any, dict[Any, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        value = row.get(y)
        if isinstance(value, int | float) and not isinstance(value, bool):
            groups[row.get(hue) if hue else None][row.get(x)].append(float(value))
    out = {}
    for h, by_x in groups.items():
        out[h] = [(xv, sum(v) / len(v), min(v), max(v))
                  for xv, v in sorted(by_x.items(), key=lambda kv: _sort_key(kv[0]))]
    return dict(sorted(out.items(), key=lambda kv: _sort_key(kv[0])))


def _sort_key(value: Any) -> tuple[int, Any]:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (0, value)
    return (1, str(value))


def plot_results(table: pa.Table, x: str, y: str, hue: str | None = None,
                 out: str | Path = "sweep.png", where: list[str] | None = None,
                 title: str | None = None) -> Path:
    """Write a PNG of `y` against `x` (one line per `hue` value); returns its path."""
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, safe in workers

    for role, col in (("--x", x), ("--y", y), ("--hue", hue)):
        if col and col not in table.column_names:
            names = [c for c in table.column_names if c not in ("point_id", "error")]
            shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
            raise ConfigError(f"{role} {col}: no such column (columns: {shown})")
    series = aggregate(select_rows(table, where), x, y, hue)
    if not series:
        raise ConfigError(f"--y {y}: no numeric values in ok rows to plot")
    xs_all = [p[0] for pts in series.values() for p in pts]
    numeric_x = all(isinstance(v, int | float) and not isinstance(v, bool) for v in xs_all)
    categories = sorted({str(v) for v in xs_all}) if not numeric_x else []
    fig = Figure(figsize=(7, 4.5), dpi=110)
    ax = fig.add_subplot()
    for h, pts in series.items():
        xs = [p[0] if numeric_x else categories.index(str(p[0])) for p in pts]
        label = f"{hue}={h}" if hue else None
        line, = ax.plot(xs, [p[1] for p in pts], marker="o", label=label)
        if any(p[2] != p[3] for p in pts):
            ax.fill_between(xs, [p[2] for p in pts], [p[3] for p in pts],
                            color=line.get_color(), alpha=0.2, linewidth=0)
    if not numeric_x:
        ax.set_xticks(range(len(categories)), categories)
    ax.set_xlabel(x)
    ax.set_ylabel(f"{y} (mean, min-max band)")
    ax.set_title(title or f"{y} vs {x}")
    ax.grid(True, alpha=0.3)
    if hue:
        ax.legend(title=None, fontsize="small")
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    return out

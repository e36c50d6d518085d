"""The experiment registry: each paper experiment registers a function by name, and
`run_experiment` gives them all the same output contract.

An experiment function takes an `ExperimentContext` (quick flag, output folder, a `map`
that may fan simulation points out over a `dsd.sweep` executor) and returns an
`ExperimentResult`: one row per configuration, the headline figures, and the plots it
wrote. `run_experiment` writes `results.csv` and `summary.json` and prints the table, so
every experiment (ours and plug-ins such as `awc`) leaves the same files behind.

    from dsd.experiments.registry import register_experiment, ExperimentResult

    @register_experiment("my-experiment", "one line for `dsd experiment --list`")
    def my_experiment(ctx):
        rows = ctx.map(some_top_level_fn, points)
        return ExperimentResult(rows, {"headline": 1.0})
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from dsd.errors import DsdError


class Executor(Protocol):
    """What `dsd.sweep` executors offer: an ordered, possibly parallel map."""

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]: ...


class InProcessExecutor:
    """Serial fallback when no executor is given (or `dsd.sweep` is not installed)."""

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
        return [fn(item) for item in items]


@dataclass
class ExperimentContext:
    quick: bool
    out: Path
    executor: Executor = field(default_factory=InProcessExecutor)
    seed: int = 0
    # Reuse measurements an earlier run left in `out` (experiments that measure real
    # hardware re-simulate without measuring again).
    reuse: bool = False
    progress: bool = False  # a progress bar (points done, ETA) on a terminal
    name: str = "experiment"
    # Experiment-specific inputs from the command line, e.g. {"profiles": DIR}.
    options: dict[str, Any] = field(default_factory=dict)

    def progress_bar(self, description: str, total: float | None = None,
                     unit: str = "points") -> Any:
        """A progress bar for work that is not one `map` (drawn when `progress` is on)."""
        from dsd.progress import ProgressBar

        return ProgressBar(description, total, unit=unit, enabled=self.progress)

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
        """Run `fn` over `items` on the executor; `fn` must be a picklable top-level
        function when the executor uses other processes. Results in input order."""
        items = list(items)
        results: dict[int, Any] = {}
        unordered = getattr(self.executor, "imap_unordered", None)
        stream = unordered(fn, items) if unordered else enumerate(self.executor.map(fn, items))
        with self.progress_bar(self.name, len(items)) as bar:
            for index, result in stream:
                results[index] = result
                bar.update(len(results))
        return [results[i] for i in range(len(items))]


@dataclass
class ExperimentResult:
    rows: list[dict[str, Any]]  # one per configuration -> results.csv
    summary: dict[str, Any]  # headline figures -> summary.json
    plots: list[Path] = field(default_factory=list)
    table_columns: Sequence[str] | None = None  # columns printed (default: all scalars)
    notes: list[str] = field(default_factory=list)  # printed under the table, kept in summary
    echo_summary: bool = True  # print the summary's figures under the table
    # The labels a row is a configuration of, x first (e.g. ("rtt_ms", "mode")): the HTML
    # report draws each metric against the first, a line or bar group per the others.
    axes: Sequence[str] = ()
    out: Path | None = None  # the folder run_experiment wrote (set by it)


ExperimentFn = Callable[[ExperimentContext], ExperimentResult]


@dataclass(frozen=True)
class Experiment:
    name: str
    description: str
    fn: ExperimentFn


EXPERIMENTS: dict[str, Experiment] = {}


def register_experiment(name: str, description: str = "") -> Callable[[ExperimentFn],
                                                                      ExperimentFn]:
    def decorator(fn: ExperimentFn) -> ExperimentFn:
        if name in EXPERIMENTS:
            raise ValueError(f"experiment {name!r} is already registered")
        doc = description or ((fn.__doc__ or "").strip().splitlines() or [""])[0]
        EXPERIMENTS[name] = Experiment(name, doc, fn)
        return fn

    return decorator


def load_builtin() -> None:
    """Import every module of this package so their experiments register (a plug-in whose
    optional dependency is missing is skipped)."""
    import importlib
    import pkgutil

    import dsd.experiments as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        try:
            importlib.import_module(f"dsd.experiments.{info.name}")
        except ImportError:
            continue


def run_experiment(name: str, *, quick: bool = False, out: str | Path | None = None,
                   executor: Executor | None = None, seed: int = 0,
                   echo: bool = True, reuse: bool = False,
                   progress: bool | None = None,
                   options: dict[str, Any] | None = None) -> ExperimentResult:
    """Run a registered experiment; writes DIR/results.csv, DIR/summary.json and its plots.
    `echo` prints the table; `progress` (default: as `echo`) draws a bar on a terminal."""
    load_builtin()
    if name not in EXPERIMENTS:
        known = ", ".join(sorted(EXPERIMENTS))
        raise DsdError(f"unknown experiment {name!r} (known: {known})")
    out_dir = Path(out or f"runs/experiment-{name}{'-quick' if quick else ''}")
    out_dir.mkdir(parents=True, exist_ok=True)
    ctx = ExperimentContext(quick, out_dir, executor or InProcessExecutor(), seed, reuse,
                            echo if progress is None else progress, name, dict(options or {}))
    started = time.perf_counter()
    result = EXPERIMENTS[name].fn(ctx)
    wall = time.perf_counter() - started
    summary = {"experiment": name, "quick": quick, "wall_time_s": round(wall, 2),
               **result.summary, "plots": [p.name for p in result.plots],
               "axes": list(result.axes),
               "table_columns": list(result.table_columns or [])}
    if result.notes:
        summary["notes"] = result.notes
    result.summary = summary
    result.out = out_dir
    write_rows(out_dir / "results.csv", result.rows)
    (out_dir / "summary.json").write_text(json.dumps(_jsonable(summary), indent=2) + "\n")
    if echo:
        print_rows(result, title=f"dsd experiment {name}{' --quick' if quick else ''}")
        print(f"results: {out_dir}/results.csv, summary.json"
              + "".join(f", {p.name}" for p in result.plots) + f" ({wall:.1f} s)")
    return result


def write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    keys: list[str] = []
    for row in rows:
        keys.extend(k for k in row if k not in keys and not isinstance(row[k], (list, dict)))
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def print_rows(result: ExperimentResult, title: str, console: Any = None) -> None:
    from rich.console import Console
    from rich.table import Table

    rows = result.rows
    cols = list(result.table_columns or [k for k in (rows[0] if rows else {})
                                         if not isinstance(rows[0][k], (list, dict))])
    table = Table(title=title, header_style="bold")
    formats = {c: column_format([row.get(c) for row in rows]) for c in cols}
    cells = [[formats[c](row.get(c)) for c in cols] for row in rows]
    for c in cols:
        # A line per word of the header, and fold rather than truncate: a narrow terminal
        # gets taller cells, never "thro…".
        table.add_column(c.replace("_", "\n"), overflow="fold",
                         justify="left" if rows and isinstance(rows[0].get(c), str)
                         else "right")
    for r in cells:
        table.add_row(*r)
    console = console or Console()
    if not console.is_terminal:  # logs and CI: do not squeeze the table to 80 columns
        console = Console(file=console.file, width=max(160, 12 * len(cols)))
    console.print(table)
    for key, value in (result.summary if result.echo_summary else {}).items():
        if key in ("plots", "notes", "experiment", "quick", "axes", "table_columns"):
            continue
        if isinstance(value, dict):
            value = ", ".join(f"{k}={_cell(v)}" for k, v in value.items())
        console.print(f"  {key}: {_cell(value) if not isinstance(value, str) else value}")
    for note in result.notes:
        console.print(f"  note: {note}")


def column_format(values: Sequence[Any]) -> Callable[[Any], str]:
    """One format for a column: every number with the same decimals, enough for three
    significant digits of its smallest value (so 25.0 sits above 100.0, not 25)."""
    numbers = [abs(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)
               and math.isfinite(v) and v != 0]
    if not numbers or not any(isinstance(v, float) for v in values):
        return _cell
    decimals = max(0, min(4, 2 - math.floor(math.log10(min(numbers)))))

    def fmt(value: Any) -> str:
        if isinstance(value, (int, float)) and not isinstance(value, bool) \
                and math.isfinite(value):
            return f"{value:,.{decimals}f}"
        return _cell(value)

    return fmt


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.1f}"
    return str(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else round(value, 6)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value

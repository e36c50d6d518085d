"""`run_points`: run sweep points on an executor into one results table.

One row per point: point_id, seed, one column per parameter (named by its dotted path),
status (`ok` or `error`), error (one line, null when ok) and the simulator's summary metrics.
A point that fails (e.g. a cluster that does not fit in memory) becomes an error row and the
sweep goes on; errored points are retried when the sweep is resumed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from dsd.errors import ConfigError, DsdError
from dsd.sweep.executor import Executor, LocalExecutor
from dsd.sweep.point import SweepPoint
from dsd.sweep.progress import SweepProgress
from dsd.sweep.store import ResultStore, rows_to_table, scalar

FLUSH_ROWS = 32  # rows per part file ...
FLUSH_SECONDS = 10.0  # ... or this often, whichever comes first


def run_point(point: SweepPoint) -> dict[str, Any]:
    """Simulate one point and return its row; never raises for a failing point. Top level
    so process pools and Ray can ship it."""
    from dsd.sim import simulate

    row: dict[str, Any] = {"point_id": point.point_id, "seed": point.seed}
    row.update({k: scalar(v) for k, v in point.params.items()})
    try:
        summary = simulate(point.config, overrides=list(point.overrides), seed=point.seed,
                           keep_requests=False).summary
    except Exception as exc:  # a failing point is data, not the end of the sweep
        row.update(status="error", error=_one_line(exc))
        return row
    if point.seed is None:
        row["seed"] = summary.get("seed")
    row.update(status="ok", error=None)
    for key, value in summary.items():
        if key not in row:  # params and the id columns win over same-named metrics
            row[key] = scalar(value)
    return row


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    text = text[0] if text else ""
    return text if isinstance(exc, DsdError) else f"{type(exc).__name__}: {text}".rstrip(": ")


def validate_points(points: Sequence[SweepPoint]) -> None:
    """Load and check every point's scenario before anything runs; the first invalid one
    raises a one-line `ConfigError` naming the point and the field."""
    from dsd.config import load_config

    for point in points:
        try:
            load_config(point.config, list(point.overrides), point.seed)
        except ConfigError as exc:
            raise ConfigError(f"{point.describe()}: {exc}") from None


def finished_rows(points: Sequence[SweepPoint], out: str | Path | None) -> dict[str, dict]:
    """Rows already in `out/results.parquet` with status ok, for points of this sweep
    (what a resumed sweep skips), by point id."""
    if out is None:
        return {}
    wanted = {p.point_id for p in points}
    return {pid: row for pid, row in ResultStore(out).load().items()
            if row.get("status") == "ok" and pid in wanted}


def run_points(points: Sequence[SweepPoint], executor: Executor | None = None,
               out: str | Path | None = None, *, progress: bool = True, resume: bool = True,
               validate: bool = True, description: str = "sweep") -> pa.Table:
    """Run `points` (default executor: a local process pool on all cores) and return their
    rows, in the order of `points`. With `out` (a folder), rows are written to
    `out/results.parquet` as they finish; with `resume`, points already there with status
    ok are not run again (their stored rows are returned)."""
    ids = [p.point_id for p in points]
    if len(set(ids)) != len(ids):
        dup = next(p for p in points if ids.count(p.point_id) > 1)
        raise ConfigError(f"{dup.describe()}: appears more than once in the sweep")
    params = list(dict.fromkeys(k for p in points for k in p.params))
    store = ResultStore(out) if out is not None else None
    rows = finished_rows(points, out) if resume else {}
    todo = [p for p in points if p.point_id not in rows]
    if validate:
        validate_points(todo)
    owned = executor is None
    executor = executor or LocalExecutor()
    bar = SweepProgress(len(todo), enabled=progress, description=description,
                        skipped=len(points) - len(todo))
    buffer: list[dict[str, Any]] = []
    last_flush = time.monotonic()
    try:
        if todo:
            for _, row in executor.imap_unordered(run_point, todo):
                rows[row["point_id"]] = row
                buffer.append(row)
                bar.advance(row["status"] == "ok")
                if store and (len(buffer) >= FLUSH_ROWS
                              or time.monotonic() - last_flush > FLUSH_SECONDS):
                    store.append(buffer, params)
                    buffer, last_flush = [], time.monotonic()
    finally:
        bar.close()
        if store is not None:
            store.append(buffer, params)  # keep what finished, even when interrupted
        if owned:
            executor.close()
    if store is not None:
        store.consolidate(ids, params)
    return rows_to_table([rows[pid] for pid in ids], params)


def summarize(table: pa.Table) -> dict[str, int]:
    """Counts of ok and error rows."""
    status = table.column("status").to_pylist() if "status" in table.column_names else []
    return {"points": table.num_rows, "ok": status.count("ok"), "error": status.count("error")}

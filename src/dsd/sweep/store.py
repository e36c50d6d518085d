"""The results table on disk: `DIR/results.parquet`, one row per point, kept crash-safe.

While a sweep runs, finished rows go to small part files in `DIR/parts/` (each written to a
temporary name and renamed, so a killed sweep never leaves half a file); at the end they
are merged into `results.parquet` (also replaced atomically) and the parts deleted. Loading
reads both, later rows winning, so a resumed sweep sees everything that finished.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from dsd.errors import DataError

LEADING = ("point_id", "seed")
STATUS = ("status", "error")


def scalar(value: Any) -> Any:
    """Table cells are scalars: lists and mappings (e.g. acceptance_by_position, an RTT
    range) are stored as JSON text."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return json.dumps(value, default=str)


def rows_to_table(rows: list[dict[str, Any]], params: list[str] | None = None) -> pa.Table:
    """Rows (dicts of scalars) -> a table with columns point_id, seed, params..., status,
    error, metrics... Each column gets one type from all its values (mixed -> text)."""
    names: dict[str, None] = dict.fromkeys(LEADING)
    names.update(dict.fromkeys(params or []))
    names.update(dict.fromkeys(STATUS))
    for row in rows:
        names.update(dict.fromkeys(row))
    return pa.table({name: _column([row.get(name) for row in rows]) for name in names})


def _column(values: list[Any]) -> pa.Array:
    kinds = {_kind(v) for v in values if v is not None}
    if not kinds:
        return pa.array(values, type=pa.string())
    if kinds == {"bool"}:
        return pa.array(values, type=pa.bool_())
    if kinds == {"int"}:
        return pa.array(values, type=pa.int64())
    if kinds <= {"int", "float"}:
        return pa.array([None if v is None else float(v) for v in values], type=pa.float64())
    return pa.array([None if v is None else v if isinstance(v, str) else json.dumps(v)
                     for v in values], type=pa.string())


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    return "str"


def read_results(path: str | Path) -> pa.Table:
    """A results table from `DIR/results.parquet` or the file itself."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.parquet"
    try:
        return pq.read_table(path)
    except FileNotFoundError:
        raise DataError(f"{path}: no such results table (run `dsd sweep SWEEP.yaml` first)"
                        ) from None
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"{path}: not a Parquet results table ({exc})") from None


class ResultStore:
    """Rows of one sweep folder, keyed by point id."""

    def __init__(self, out_dir: str | Path) -> None:
        self.dir = Path(out_dir)
        self.path = self.dir / "results.parquet"
        self.parts = self.dir / "parts"
        self._written = 0

    def load(self) -> dict[str, dict[str, Any]]:
        """Every recorded row (results table, then parts in the order they were written)."""
        rows: dict[str, dict[str, Any]] = {}
        files = [self.path] if self.path.exists() else []
        if self.parts.is_dir():
            files += sorted(self.parts.glob("part-*.parquet"))
        for file in files:
            try:
                table = pq.read_table(file)
            except (pa.ArrowInvalid, OSError) as exc:
                raise DataError(f"{file}: unreadable results ({exc}); delete it to go on") from None
            for row in table.to_pylist():
                pid = row.get("point_id")
                if pid:
                    # A row keeps only its own columns: nulls are other sweeps' columns.
                    rows[pid] = {k: v for k, v in row.items() if v is not None or k in STATUS}
        return rows

    def append(self, rows: list[dict[str, Any]], params: list[str]) -> None:
        if not rows:
            return
        self.parts.mkdir(parents=True, exist_ok=True)
        self._written += 1
        name = f"part-{time.time_ns():020d}-{os.getpid()}-{self._written:05d}.parquet"
        _write_atomic(rows_to_table(rows, params), self.parts / name)

    def consolidate(self, order: list[str], params: list[str]) -> None:
        """Merge everything into results.parquet: rows of `order` first, in that order, then
        rows of points from earlier sweeps into this folder; then drop the parts."""
        rows = self.load()
        if not rows:
            return
        ordered = [rows.pop(pid) for pid in order if pid in rows] + list(rows.values())
        _write_atomic(rows_to_table(ordered, params), self.path)
        if self.parts.is_dir():
            for part in self.parts.glob("part-*.parquet"):
                part.unlink()
            for tmp in self.parts.glob("*.tmp"):
                tmp.unlink()
            try:
                self.parts.rmdir()
            except OSError:
                pass  # something else lives there; leave it


def _write_atomic(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)

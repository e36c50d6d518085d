"""The per-request table, shared by the simulator and the runtime bench so the two compare.

Rows are streamed to disk in row groups, so memory stays bounded by the buffer size.

Parquet files are written by dsd's own writer (`dsd.metrics.parquet`), without pyarrow or
numpy, which take about as long to import as a short simulation takes to run. The in-memory
table and CSV still use pyarrow, imported when the first rows are flushed.
`request_schema()` builds the Arrow schema on first use.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dsd.metrics.parquet import ParquetWriter

if TYPE_CHECKING:
    import pyarrow as pa

# (column, Arrow type name): int64, float64, string or bool.
REQUEST_FIELDS: tuple[tuple[str, str], ...] = (
    ("request_id", "int64"),
    ("device_id", "int64"),
    ("target_id", "int64"),
    ("mode", "string"),
    ("arrival_s", "float64"),
    ("prompt_tokens", "int64"),
    ("output_tokens", "int64"),
    ("ttft_ms", "float64"),
    ("tpot_ms", "float64"),
    ("e2e_ms", "float64"),
    ("rounds", "int64"),
    ("drafted_tokens", "int64"),
    ("accepted_tokens", "int64"),
    ("slo_met", "bool"),
)
REQUEST_COLUMNS: list[str] = [name for name, _ in REQUEST_FIELDS]


def arrow_schema(fields: tuple[tuple[str, str], ...]) -> pa.Schema:
    """The Arrow schema of (column, type name) pairs."""
    import pyarrow as pa

    types = {"int64": pa.int64(), "float64": pa.float64(), "string": pa.string(),
             "bool": pa.bool_()}
    return pa.schema([(name, types[kind]) for name, kind in fields])


@cache
def request_schema() -> pa.Schema:
    return arrow_schema(REQUEST_FIELDS)


class RequestTableWriter:
    """Buffers rows (tuples in REQUEST_COLUMNS order) and writes Parquet or CSV by suffix.

    With `path=None` rows are kept in memory and returned by `close()` as a table.
    """

    def __init__(self, path: str | Path | None, flush_rows: int = 8192) -> None:
        self.path = Path(path) if path else None
        self.flush_rows = flush_rows
        self._rows: list[tuple[Any, ...]] = []
        self._batches: list[pa.RecordBatch] = []
        self._writer: Any = None
        self.rows_written = 0

    def add(self, row: tuple[Any, ...]) -> None:
        self._rows.append(row)
        if len(self._rows) >= self.flush_rows:
            self._flush()

    def _flush(self) -> None:
        if not self._rows:
            return
        columns = list(zip(*self._rows, strict=True))
        self.rows_written += len(self._rows)
        self._rows = []
        if self.path is not None and self.path.suffix != ".csv":  # dsd's writer: no pyarrow
            self._open().write_columns([list(col) for col in columns])
            return
        import pyarrow as pa

        schema = request_schema()
        batch = pa.RecordBatch.from_arrays(
            [arrow_column(col, f.type) for col, f in zip(columns, schema, strict=True)],
            schema=schema,
        )
        if self.path is None:
            self._batches.append(batch)
        else:
            self._open().write_batch(batch)

    def _open(self) -> Any:
        """The file's writer, made on first use."""
        if self._writer is None:
            assert self.path is not None
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.path.suffix == ".csv":
                import pyarrow.csv as pacsv

                self._writer = pacsv.CSVWriter(str(self.path), request_schema())
            else:
                self._writer = ParquetWriter(self.path, REQUEST_FIELDS)
        return self._writer

    def close(self) -> pa.Table | None:
        self._flush()
        if self.path is None:
            import pyarrow as pa

            return pa.Table.from_batches(self._batches, schema=request_schema())
        self._open().close()  # with no rows, still a valid file with the header or schema
        return None


def arrow_column(values: Sequence[Any], type_: pa.DataType) -> pa.Array:
    """An Arrow array built from its buffers: `pa.array` imports pandas (~40 MB, ~0.25 s) to
    check whether its input is a pandas object, a cost every `dsd simulate` would pay."""
    import numpy as np
    import pyarrow as pa

    n = len(values)
    if type_ == pa.string():
        data = [v.encode() for v in values]
        offsets = np.zeros(n + 1, dtype=np.int32)
        np.cumsum([len(b) for b in data], out=offsets[1:])
        buffers = [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(data))]
    elif type_ == pa.bool_():
        bits = np.packbits(np.fromiter(values, dtype=bool, count=n), bitorder="little")
        buffers = [None, pa.py_buffer(bits)]
    else:
        dtype = {pa.int64(): np.int64, pa.float64(): np.float64}[type_]
        data = np.fromiter(values, dtype=dtype, count=n)
        valid = None
        if dtype is np.float64:  # NaN marks a missing value (e.g. a one-token TPOT): null
            missing = np.isnan(data)
            if missing.any():
                valid = pa.py_buffer(np.packbits(~missing, bitorder="little"))
                data[missing] = 0.0
        buffers = [valid, pa.py_buffer(data)]
    return pa.Array.from_buffers(type_, n, buffers)


def read_request_table(path: str | Path) -> pa.Table:
    path = Path(path)
    if path.suffix == ".csv":
        import pyarrow.csv as pacsv

        return pacsv.read_csv(str(path))
    import pyarrow.parquet as pq

    return pq.read_table(str(path))

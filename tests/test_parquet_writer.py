"""dsd's pure-Python Parquet writer: what it writes, pyarrow reads back as the same table."""

from __future__ import annotations

import math
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dsd.metrics import RequestTableWriter, TimeSeriesRecorder, request_schema
from dsd.metrics.parquet import ParquetWriter
from dsd.metrics.table import arrow_schema
from dsd.metrics.timeseries import TIMESERIES_FIELDS

FIELDS = (("i", "int64"), ("f", "float64"), ("s", "string"), ("b", "bool"),
          ("j", "int64"), ("g", "float64"))
TYPES = {"int64": pa.int64(), "float64": pa.float64(), "string": pa.string(),
         "bool": pa.bool_()}
INTS = [0, 1, -1, 2**63 - 1, -(2**63), 2**31, -(2**31) - 1, 255]
FLOATS = [0.0, -0.0, 1.5, -2.25e300, 5e-324, math.inf, -math.inf, math.nan]
STRINGS = ["", "a", "distributed", "é", "日本語", "😀 emoji", "x" * 300, "nul\x00byte"]


def random_value(rng: random.Random, kind: str) -> object:
    if rng.random() < 0.15:
        return None
    if kind == "int64":
        return rng.choice(INTS) if rng.random() < 0.3 else rng.randint(-10**12, 10**12)
    if kind == "float64":
        return rng.choice(FLOATS) if rng.random() < 0.3 else rng.uniform(-1e6, 1e6)
    if kind == "string":
        return rng.choice(STRINGS) if rng.random() < 0.5 else str(rng.random())
    return rng.random() < 0.5


def expected(columns: list[list], fields=FIELDS) -> pa.Table:
    """The same data built by pyarrow, NaN as null."""
    arrays = [pa.array([None if v != v else v for v in col], TYPES[kind])
              for col, (_, kind) in zip(columns, fields, strict=True)]
    return pa.Table.from_arrays(arrays, schema=arrow_schema(fields))


@pytest.mark.parametrize("compression", ["gzip", "none"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_tables_round_trip_through_pyarrow(tmp_path, seed, compression):
    rng = random.Random(seed)
    path = tmp_path / "t.parquet"
    sizes = [rng.randint(1, 300) for _ in range(rng.randint(2, 5))]
    groups = [[[random_value(rng, kind) for _ in range(n)] for _, kind in FIELDS]
              for n in sizes]
    groups[0][3][:2] = [None, None]  # a null in every column of some group
    with ParquetWriter(path, FIELDS, compression) as writer:
        for cols in groups:
            writer.write_columns(cols)
    table = pq.read_table(path)
    want = expected([sum((g[c] for g in groups), []) for c in range(len(FIELDS))])
    assert table.schema.equals(arrow_schema(FIELDS))
    assert table.equals(want)
    meta = pq.ParquetFile(path).metadata
    assert meta.num_rows == sum(sizes) and meta.num_row_groups == len(sizes)
    assert [meta.row_group(i).num_rows for i in range(len(sizes))] == sizes
    assert meta.created_by == "dsd"


def test_values_nulls_and_nan_land_where_written(tmp_path):
    """Definition levels and bit-packed bools across byte boundaries: the k-th value is
    the k-th written (a bit-order slip would move them)."""
    n = 37
    cols = [[k if k % 3 else None for k in range(n)],
            [float(k) if k % 5 else math.nan for k in range(n)],
            [str(k) if k % 7 else None for k in range(n)],
            [k % 4 == 1 if k % 11 else None for k in range(n)],
            [-k for k in range(n)],
            [None] * n]
    path = tmp_path / "t.parquet"
    with ParquetWriter(path, FIELDS) as writer:
        writer.write_columns(cols)
    rows = pq.read_table(path).to_pylist()
    assert [r["i"] for r in rows] == cols[0]
    assert [r["f"] for r in rows] == [None if v != v else v for v in cols[1]]
    assert [r["s"] for r in rows] == cols[2]
    assert [r["b"] for r in rows] == cols[3]
    assert [r["j"] for r in rows] == cols[4]
    assert [r["g"] for r in rows] == cols[5]


def test_empty_and_one_row_tables(tmp_path):
    with ParquetWriter(tmp_path / "empty.parquet", FIELDS) as writer:
        writer.write_columns([[] for _ in FIELDS])  # no rows: no row group
    table = pq.read_table(tmp_path / "empty.parquet")
    assert table.num_rows == 0 and table.schema.equals(arrow_schema(FIELDS))
    assert pq.ParquetFile(tmp_path / "empty.parquet").metadata.num_row_groups == 0

    one = [[-5], [math.inf], ["ü"], [False], [None], [math.nan]]
    with ParquetWriter(tmp_path / "one.parquet", FIELDS) as writer:
        writer.write_columns(one)
    assert pq.read_table(tmp_path / "one.parquet").equals(expected(one))


def test_many_columns(tmp_path):
    """More than 14 columns: Thrift lists of 15+ elements take the long size header."""
    fields = tuple((f"c{k}", ["int64", "float64", "string", "bool"][k % 4]) for k in range(23))
    cols = [[random_value(random.Random(k), kind) for _ in range(5)] for k, (_, kind)
            in enumerate(fields)]
    with ParquetWriter(tmp_path / "wide.parquet", fields) as writer:
        writer.write_columns(cols)
    assert pq.read_table(tmp_path / "wide.parquet").equals(expected(cols, fields))


def test_mismatched_columns_are_refused(tmp_path):
    with ParquetWriter(tmp_path / "t.parquet", FIELDS) as writer:
        with pytest.raises(ValueError, match="columns for"):
            writer.write_columns([[1]])
        with pytest.raises(ValueError, match="has 1 values"):
            writer.write_columns([[1, 2], [1.0], ["a", "b"], [True, False], [1, 2], [1, 2]])


def test_request_table_without_rows_is_a_valid_file(tmp_path):
    RequestTableWriter(tmp_path / "requests.parquet").close()
    table = pq.read_table(tmp_path / "requests.parquet")
    assert table.num_rows == 0 and table.schema.equals(request_schema())


def recorder() -> TimeSeriesRecorder:
    """Merged points (the interval doubles twice) and no gamma row for some of them."""
    rng = random.Random(3)
    rec = TimeSeriesRecorder(3, duration_s=10.0, max_points=8)
    cum = [[0] * 3, [0] * 3, [0.0] * 3]
    g_sum = g_n = 0
    t = 0.0
    for _ in range(29):
        t += rng.uniform(0.05, 1.0)
        for s in range(3):
            steps = rng.choice([0, 0, 1, 4])  # some servers start no step: batch 0
            cum[1][s] += steps
            cum[0][s] += steps * rng.randint(1, 8)
            cum[2][s] += rng.uniform(0, 1.5) * t  # sometimes over capacity: clipped to 1
        if rng.random() < 0.6:
            rounds = rng.randint(1, 5)
            g_n += rounds
            g_sum += rounds * rng.randint(1, 8)
        rec.sample(t, cum[0], cum[1], [rng.randint(0, 9) for _ in range(3)], cum[2], g_sum,
                   g_n)
    return rec


def test_timeseries_file_holds_the_documented_rows_in_order(tmp_path):
    rec = recorder()
    assert rec.interval > 10.0 / 4  # merged
    assert 0 < sum(n > 0 for _, n in rec.gamma) < len(rec.t)  # gamma rows missing for some
    want = []  # (t_s, series, entity, value) as the module docstring defines them
    for t, dt, (jobs, steps, queue, area), (g_sum, g_n) in zip(
            rec.t, rec.dt, rec.values, rec.gamma, strict=True):
        for e in range(rec.n):
            want.append((t, "batch_size", e, jobs[e] / steps[e] if steps[e] else 0.0))
            want.append((t, "queue_len", e, queue[e]))
            want.append((t, "kv_occupancy", e, min(1.0, max(0.0, area[e] / dt))))
        if g_n:
            want.append((t, "gamma", -1, g_sum / g_n))
    want.sort(key=lambda row: row[:3])  # by time, series name, entity
    rec.write_parquet(tmp_path / "timeseries.parquet")
    table = pq.read_table(tmp_path / "timeseries.parquet")
    assert table.schema.equals(arrow_schema(TIMESERIES_FIELDS))
    got = list(zip(*(table.column(c).to_pylist() for c in ("t_s", "series", "entity",
                                                             "value")), strict=True))
    assert got == want
    assert any(v == 1.0 for t, name, _, v in got if name == "kv_occupancy")  # clipped
    assert rec.to_table().equals(table)  # the in-memory table holds the same rows
    empty = TimeSeriesRecorder(2, duration_s=1.0)
    empty.write_parquet(tmp_path / "empty.parquet")
    empty_table = pq.read_table(tmp_path / "empty.parquet")
    assert empty_table.num_rows == 0 and empty_table.equals(empty.to_table())

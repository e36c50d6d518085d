"""Bounded, down-sampled time series of a run: per-server load and the window chosen.

The engine hands in cumulative counters at coarse sample times (it samples when a step
starts at or after `next_t`, and once at the end); each point keeps the deltas over its
interval. When `max_points` points are stored, neighbours merge pairwise (counters add)
and the sampling interval doubles, so memory stays fixed however long the run.

Long-format table (`timeseries.parquet`), one value per interval, stamped with the
interval's end `t_s`:

- `batch_size` (entity = server id): mean sequences per step started in the interval
  (0 when the server started none);
- `queue_len` (server id): requests waiting at the server, for a step or for KV memory, at
  the sample time (the mean of merged samples);
- `kv_occupancy` (server id): time-weighted KV in use / KV capacity, 0..1;
- `gamma` (entity -1): mean window chosen over all sessions' rounds in the interval
  (no row when no round started).

Recording is plain Python (a point is 4 lists of n floats), and so is `write_parquet` (dsd's
own Parquet writer); numpy and pyarrow are imported by `to_table` only, so a run that keeps
no table in memory never loads them.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from dsd.metrics.parquet import ParquetWriter
from dsd.metrics.table import arrow_column, arrow_schema

if TYPE_CHECKING:
    import pyarrow as pa

SERIES = ("batch_size", "queue_len", "kv_occupancy", "gamma")
TIMESERIES_FIELDS = (("t_s", "float64"), ("series", "string"), ("entity", "int64"),
                     ("value", "float64"))


@cache
def timeseries_schema() -> pa.Schema:
    return arrow_schema(TIMESERIES_FIELDS)


class TimeSeriesRecorder:
    def __init__(self, n_entities: int, duration_s: float, max_points: int | None = None) -> None:
        self.n = n_entities
        # ~100k stored numbers at most, and 32-512 points.
        self.max_points = max_points or max(32, min(512, 100_000 // max(1, 4 * n_entities)))
        self.interval = max(duration_s / (self.max_points // 2), 1e-3)
        self.next_t = self.interval
        self._t = 0.0  # end of the last point
        self._last = [[0.0] * n_entities for _ in range(3)]  # cumulative jobs, steps, KV area
        self._gamma_last = (0, 0)
        # Per point: end time, length, per-entity deltas (jobs, steps, queue, KV area), and
        # the gamma sum and count.
        self.t: list[float] = []
        self.dt: list[float] = []
        self.values: list[list[list[float]]] = []  # 4 rows of n
        self.gamma: list[tuple[int, int]] = []

    def sample(self, now: float, jobs: Sequence[int], steps: Sequence[int],
               queue: Sequence[int], kv_area: Sequence[float], gamma_sum: int,
               gamma_rounds: int) -> None:
        """Close the interval ending `now`. `jobs`, `steps`, `kv_area` (KV in use over time
        / capacity) and the gamma counters are cumulative; `queue` is the current length."""
        dt = now - self._t
        if dt <= 0:
            return
        cum = [[float(v) for v in jobs], [float(v) for v in steps],
               [float(v) for v in kv_area]]
        last = self._last
        point = [[c - p for c, p in zip(cum[0], last[0], strict=True)],
                 [c - p for c, p in zip(cum[1], last[1], strict=True)],
                 [float(v) for v in queue],
                 [c - p for c, p in zip(cum[2], last[2], strict=True)]]
        self._last = cum
        g_sum, g_n = self._gamma_last
        self.gamma.append((gamma_sum - g_sum, gamma_rounds - g_n))
        self._gamma_last = (gamma_sum, gamma_rounds)
        self.t.append(now)
        self.dt.append(dt)
        self.values.append(point)
        self._t = now
        if len(self.t) >= self.max_points:
            self._merge()
        self.next_t = now + self.interval

    def _merge(self) -> None:
        """Halve the stored points: each pair becomes one point over both intervals."""
        t, dt, values, gamma = [], [], [], []
        for i in range(0, len(self.t) - 1, 2):
            a, b = self.values[i], self.values[i + 1]
            merged = [[x + y for x, y in zip(ra, rb, strict=True)]
                      for ra, rb in zip(a, b, strict=True)]
            # queue length: a snapshot, so average
            merged[2] = [0.5 * (x + y) for x, y in zip(a[2], b[2], strict=True)]
            t.append(self.t[i + 1])
            dt.append(self.dt[i] + self.dt[i + 1])
            values.append(merged)
            gamma.append((self.gamma[i][0] + self.gamma[i + 1][0],
                          self.gamma[i][1] + self.gamma[i + 1][1]))
        if len(self.t) % 2:  # an odd last point stays as it is
            t.append(self.t[-1])
            dt.append(self.dt[-1])
            values.append(self.values[-1])
            gamma.append(self.gamma[-1])
        self.t, self.dt, self.values, self.gamma = t, dt, values, gamma
        self.interval *= 2

    def columns(self) -> list[list]:
        """The table's columns (t_s, series, entity, value) as lists: the rows of `to_table`,
        in its order (by time, series name, entity), computed without numpy."""
        t_s: list[float] = []
        series: list[str] = []
        entity: list[int] = []
        value: list[float] = []
        servers = list(range(self.n))
        # Time order is point order: `sample` never stores two points at one time.
        for t, dt, (jobs, steps, queue, area), (g_sum, g_n) in zip(
                self.t, self.dt, self.values, self.gamma, strict=True):
            per_server = {
                "batch_size": [j / s if s > 0 else 0.0
                               for j, s in zip(jobs, steps, strict=True)],
                "kv_occupancy": [min(max(a / dt, 0.0), 1.0) for a in area],
                "queue_len": queue,
            }
            for name in sorted(SERIES):
                if name == "gamma":  # one row for all sessions, only when rounds started
                    if g_n > 0:
                        t_s.append(t)
                        series.append(name)
                        entity.append(-1)
                        value.append(float(g_sum) / float(g_n))
                    continue
                t_s += [t] * self.n
                series += [name] * self.n
                entity += servers
                value += per_server[name]
        return [t_s, series, entity, value]

    def write_parquet(self, path: str | Path) -> None:
        """Writes the table to a Parquet file (one row group) without numpy or pyarrow."""
        with ParquetWriter(path, TIMESERIES_FIELDS) as writer:
            writer.write_columns(self.columns())

    def to_table(self) -> pa.Table:
        """The table in memory, as an Arrow table (pyarrow and numpy are imported here)."""
        import pyarrow as pa

        schema = timeseries_schema()
        return pa.Table.from_arrays(
            [arrow_column(col, f.type) for col, f in zip(self.columns(), schema, strict=True)],
            schema=schema)

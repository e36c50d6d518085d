"""`simulate(config) -> Result`: one simulation run, from Python or the CLI."""

from __future__ import annotations

import json
import math
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dsd.config import ScenarioConfig, dump_config, load_config
from dsd.metrics import RequestTableWriter, TimeSeriesRecorder, read_request_table
from dsd.sim.cluster import build_cluster
from dsd.sim.simulator import Simulator

if TYPE_CHECKING:
    import pyarrow as pa


@dataclass
class Result:
    """A finished run: the flat summary, the per-request table (in memory or on disk) and
    the down-sampled time series of server load and window choice (`timeseries`). Both
    tables are Arrow tables made on first use, so a caller that reads only the summary
    never imports pyarrow."""

    summary: dict[str, Any]
    config: ScenarioConfig
    out_dir: Path | None = None
    _table: pa.Table | None = field(default=None, repr=False)
    _series: pa.Table | TimeSeriesRecorder | None = field(default=None, repr=False)

    @property
    def requests(self) -> pa.Table:
        if self._table is None and self.out_dir is not None:
            self._table = read_request_table(self.out_dir / "requests.parquet")
        return self._table  # type: ignore[return-value]

    @property
    def timeseries(self) -> pa.Table | None:
        if isinstance(self._series, TimeSeriesRecorder):
            self._series = self._series.to_table()
        return self._series

    def __getitem__(self, key: str) -> Any:
        return self.summary[key]


def simulate(
    config: ScenarioConfig | dict[str, Any] | str | Path,
    *,
    overrides: list[str] | tuple[str, ...] = (),
    seed: int | None = None,
    out: str | Path | None = None,
    keep_requests: bool = True,
    progress: Callable[[float, int, int], None] | None = None,
) -> Result:
    """Run one scenario. With `out`, writes summary.json, requests.parquet (rows streamed to
    disk), timeseries.parquet and config.yaml there; else the request table stays in memory
    when `keep_requests`, or is dropped (for sweeps and benchmarks). `progress(sim_time_s,
    requests_done, in_flight)` is called every 1% of the simulated duration."""
    if not isinstance(config, ScenarioConfig) or overrides or seed is not None:
        config = load_config(config, overrides, seed)
    out_dir = Path(out) if out else None
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
        writer = RequestTableWriter(out_dir / "requests.parquet")
    else:
        writer = RequestTableWriter(None) if keep_requests else _NullWriter()
    started = time.perf_counter()
    sim = Simulator(build_cluster(config), writer)
    if progress is not None:
        def report(now: float) -> None:
            progress(now, sim.arrived - sim.in_flight, sim.in_flight)

        sim.loop.observer = (max(config.simulation.duration_s / 100, 1e-3), report)
    stats = sim.run()
    wall = time.perf_counter() - started
    table = writer.close()

    measured_span = max(stats["window_s"], 1e-9)
    summary: dict[str, Any] = {"name": config.name, "mode": config.mode, "seed": config.seed}
    summary.update(sim.metrics.summary(measured_span))
    summary.update(stats)
    summary["wall_time_s"] = wall
    summary["accepted_tokens_per_wall_s"] = summary["accepted_tokens"] / wall if wall else 0.0
    summary["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    summary = {k: _clean(v) for k, v in summary.items()}
    result = Result(summary, config, out_dir, table, sim.series)
    if out_dir:  # dsd's own Parquet writer: neither pyarrow nor numpy is imported
        (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        (out_dir / "config.yaml").write_text(dump_config(config))
        sim.series.write_parquet(out_dir / "timeseries.parquet")
    return result


def _clean(value: Any) -> Any:
    """JSON has no NaN: a metric with no samples is null."""
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 6)
    return value


class _NullWriter:
    def add(self, row: tuple[Any, ...]) -> None:
        pass

    def close(self) -> None:
        return None

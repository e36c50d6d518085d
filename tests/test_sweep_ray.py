"""The Ray executor (local Ray instance): same rows as the local executor for the same
points, and the generic map. Skipped when Ray is not installed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dsd.sweep import Executor, LocalExecutor, SweepPoint, make_executor, run_points

ray = pytest.importorskip("ray")

QUICKSTART = Path(__file__).resolve().parents[1] / "examples" / "quickstart.yaml"
TINY = ["simulation.duration_s=10", "simulation.warmup_s=1", "cluster.drafts.0.count=8"]
WALL = {"wall_time_s", "accepted_tokens_per_wall_s", "peak_rss_mb"}


@pytest.fixture(scope="module")
def ray_executor() -> Iterator[Executor]:
    if ray.is_initialized():
        pytest.skip("a Ray instance is already running in this process")
    ex = make_executor("ray", workers=2)
    yield ex
    ex.close()
    assert not ray.is_initialized()


def test_ray_sweep_equals_local_sweep(ray_executor: Executor, tmp_path: Path) -> None:
    points = [SweepPoint.make(QUICKSTART, [*TINY, f"network.rtt_ms={r}",
                                           f"cluster.targets.0.tp={tp}"], seed=seed)
              for r in (0, 40) for tp in (4, 1) for seed in (0, 1)]
    local = run_points(points, LocalExecutor(1), progress=False)
    remote = run_points(points, ray_executor, tmp_path / "out", progress=False)
    strip = [{k: v for k, v in row.items() if k not in WALL} for row in local.to_pylist()]
    assert strip == [{k: v for k, v in row.items() if k not in WALL}
                     for row in remote.to_pylist()]
    assert remote.column("status").to_pylist().count("error") == 4  # tp=1 does not fit


def test_ray_map_is_ordered_and_raises(ray_executor: Executor) -> None:
    assert list(ray_executor.map(abs, [-3, 2, -1, 0])) == [3, 2, 1, 0]
    with pytest.raises(ValueError):
        list(ray_executor.map(int, ["1", "x"]))

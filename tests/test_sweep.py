"""Sweeps: grid expansion, point ids, validation, executors, results table, resume, plot."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from dsd.cli.main import main
from dsd.errors import ConfigError, DsdError
from dsd.sweep import (
    LocalExecutor,
    SweepPoint,
    load_sweep,
    make_executor,
    parse_sweep,
    plot_results,
    run_points,
    validate_points,
)

QUICKSTART = Path(__file__).resolve().parents[1] / "examples" / "quickstart.yaml"
TINY = {"simulation.duration_s": 10, "simulation.warmup_s": 1, "cluster.drafts.0.count": 8}
WALL = {"wall_time_s", "accepted_tokens_per_wall_s", "peak_rss_mb"}


def spec(tmp_path: Path, **body: object) -> Path:
    data = {"base": str(QUICKSTART), "set": TINY, **body}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def metrics(table: pa.Table) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in WALL} for row in table.to_pylist()]


class Recording(LocalExecutor):
    """A serial executor that remembers which points it ran."""

    def __init__(self) -> None:
        super().__init__(workers=1)
        self.ran: list[str] = []

    def imap_unordered(self, fn: Callable, items: Iterable) -> Iterator:
        items = list(items)
        self.ran += [p.point_id for p in items]
        return super().imap_unordered(fn, items)


# --- grid ------------------------------------------------------------------------------------

def test_cross_and_seeds_expand_in_order(tmp_path: Path) -> None:
    s = load_sweep(spec(tmp_path, seeds=[0, 1],
                        axes={"network.rtt_ms": [0, 30], "policies.router": ["random", "jsq"]}))
    points = s.points()
    assert len(points) == 2 * 2 * 2
    assert [(p.params["network.rtt_ms"], p.params["policies.router"], p.seed)
            for p in points[:3]] == [(0, "random", 0), (0, "random", 1), (0, "jsq", 0)]
    # fixed overrides first, then the params
    assert points[0].overrides[:3] == ("simulation.duration_s=10", "simulation.warmup_s=1",
                                       "cluster.drafts.0.count=8")
    assert points[0].overrides[3:] == ('network.rtt_ms=0', 'policies.router="random"')
    assert points[0].config == str(QUICKSTART)


def test_zip_moves_together_and_crosses_the_rest(tmp_path: Path) -> None:
    s = load_sweep(spec(tmp_path, axes={"network.rtt_ms": [0, 30]},
                        zip=[{"workload.dataset": ["gsm8k", "cnndm"],
                              "acceptance.alpha": [0.8, 0.7]}]))
    combos = [(p.params["network.rtt_ms"], p.params["workload.dataset"],
               p.params["acceptance.alpha"]) for p in s.points()]
    assert combos == [(0, "gsm8k", 0.8), (0, "cnndm", 0.7), (30, "gsm8k", 0.8),
                      (30, "cnndm", 0.7)]
    assert s.param_names == ["network.rtt_ms", "workload.dataset", "acceptance.alpha"]
    with pytest.raises(ConfigError, match="equal lengths"):
        load_sweep(spec(tmp_path, zip=[{"a.b": [1, 2], "c.d": [1]}]))


def test_ranges_are_inclusive() -> None:
    s = parse_sweep({"config": {}, "axes": {"x": {"range": [2, 8, 2]},
                                             "y": {"range": [0.1, 0.3, 0.1]},
                                             "z": {"range": [3, 1, -1]}}}, Path.cwd())
    assert s.axes == {"x": [2, 4, 6, 8], "y": [0.1, 0.2, 0.3], "z": [3, 2, 1]}
    with pytest.raises(ConfigError, match="never reaches"):
        parse_sweep({"config": {}, "axes": {"x": {"range": [0, 4, -1]}}}, Path.cwd())


@pytest.mark.parametrize("body, message", [
    ({"base": "nope.yaml"}, "no such scenario file"),
    ({"config": {}, "axes": {"x": 3}}, "single value goes under set"),
    ({"config": {}, "axes": {"seed": [1, 2]}}, "use 'seeds:'"),
    ({"config": {}, "set": {"x": 1}, "axes": {"x": [1, 2]}}, "set more than once"),
    ({"config": {}, "seeds": [0, 0]}, "repeated seed"),
    ({"config": {}, "base": "a.yaml"}, "exactly one"),
])
def test_sweep_file_errors_are_one_line(body: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        parse_sweep(body, Path.cwd())
    assert "\n" not in str(info.value)


def test_unknown_sweep_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown key 'axis'"):
        load_sweep(spec(tmp_path, axis={"network.rtt_ms": [1]}))


def test_point_ids_are_stable_across_runs_and_orderings(tmp_path: Path) -> None:
    a = load_sweep(spec(tmp_path, seeds=[0, 1],
                        axes={"network.rtt_ms": [0, 30], "policies.router": ["random", "jsq"]}))
    b = load_sweep(spec(tmp_path, seeds=[1, 0],
                        axes={"policies.router": ["jsq", "random"], "network.rtt_ms": [30, 0]}))
    ids_a = [p.point_id for p in a.points()]
    assert ids_a == [p.point_id for p in a.points()]
    assert sorted(ids_a) == sorted(p.point_id for p in b.points())
    assert len(set(ids_a)) == len(ids_a)
    # without explicit params, the overrides are the identity
    p1 = SweepPoint.make(QUICKSTART, ["network.rtt_ms=5"], seed=3)
    assert p1.params == {"network.rtt_ms": 5}
    assert p1.point_id == SweepPoint.make(QUICKSTART, ["network.rtt_ms=5"], seed=3).point_id
    assert p1.point_id != SweepPoint.make(QUICKSTART, ["network.rtt_ms=5"], seed=4).point_id


def test_validation_names_the_point_and_the_field(tmp_path: Path) -> None:
    s = load_sweep(spec(tmp_path, axes={"network.rtt_ms": [10, -5]}))
    with pytest.raises(ConfigError) as info:
        validate_points(s.points())
    msg = str(info.value)
    assert "network.rtt_ms=-5" in msg and "rtt_ms must be >= 0" in msg and "\n" not in msg
    with pytest.raises(ConfigError, match="network.rtt_ms=-5"):
        run_points(s.points(), LocalExecutor(1), progress=False)


# --- executors -------------------------------------------------------------------------------

def test_local_map_is_ordered_generic_and_raises() -> None:
    with LocalExecutor(workers=2) as ex:
        assert list(ex.map(abs, [-3, 2, -1, 0, -7])) == [3, 2, 1, 0, 7]
        assert sorted(ex.imap_unordered(abs, [-1, -2])) == [(0, 1), (1, 2)]
        with pytest.raises(ValueError):
            list(ex.map(math.sqrt, [4, -1, 9]))
    assert list(LocalExecutor(1).map(abs, [-2])) == [2]


def test_make_executor_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(make_executor("local", workers=2), LocalExecutor)
    with pytest.raises(ConfigError, match="unknown executor"):
        make_executor("dask")
    with pytest.raises(ConfigError, match="--address applies to --executor ray"):
        make_executor("local", address="auto")
    monkeypatch.setitem(__import__("sys").modules, "ray", None)  # as if not installed
    with pytest.raises(DsdError, match=r"pip install 'dsd\[ray\]'"):
        make_executor("ray")


# --- running ---------------------------------------------------------------------------------

def test_local_pool_matches_serial_and_rows_are_complete(tmp_path: Path) -> None:
    points = load_sweep(spec(tmp_path, seeds=[0, 1], axes={"network.rtt_ms": [0, 40]})).points()
    serial = run_points(points, LocalExecutor(1), progress=False)
    with LocalExecutor(2) as ex:
        pooled = run_points(points, ex, progress=False)
    assert metrics(serial) == metrics(pooled)
    cols = serial.column_names
    assert cols[:5] == ["point_id", "seed", "network.rtt_ms", "status", "error"]
    assert {"throughput_rps", "tpot_ms_p50", "acceptance_by_position", "mean_batch_occupancy",
            "kv_occupancy_mean", "preemptions", "requests_rejected"} <= set(cols)
    assert serial.column("status").to_pylist() == ["ok"] * 4
    assert serial.column("point_id").to_pylist() == [p.point_id for p in points]
    assert serial.schema.field("acceptance_by_position").type == "string"  # JSON text
    # seeds change the outcome, RTT changes the outcome
    tput = serial.column("throughput_rps").to_pylist()
    assert len(set(tput)) == 4


def test_failed_point_is_recorded_and_retried_on_resume(tmp_path: Path) -> None:
    path = spec(tmp_path, axes={"cluster.targets.0.tp": [4, 1]})
    points = load_sweep(path).points()
    out = tmp_path / "out"
    first = Recording()
    table = run_points(points, first, out, progress=False)
    rows = table.to_pylist()
    assert [r["status"] for r in rows] == ["ok", "error"]
    assert "does not fit" in rows[1]["error"] and rows[1]["throughput_rps"] is None
    assert len(first.ran) == 2
    assert pq.read_table(out / "results.parquet").num_rows == 2
    assert not (out / "parts").exists()

    again = Recording()  # resume: the ok point is skipped, the failed one runs again
    table2 = run_points(points, again, out, progress=False)
    assert again.ran == [points[1].point_id]
    assert metrics(table2)[0] == metrics(table)[0]

    fresh = Recording()
    run_points(points, fresh, out, progress=False, resume=False)
    assert len(fresh.ran) == 2


def test_resume_reads_parts_of_an_interrupted_sweep(tmp_path: Path) -> None:
    points = load_sweep(spec(tmp_path, axes={"network.rtt_ms": [0, 10, 20]})).points()
    out = tmp_path / "out"
    run_points(points[:2], LocalExecutor(1), out, progress=False)
    # simulate a crash after parts were written but before consolidation
    (out / "results.parquet").rename(tmp_path / "kept.parquet")
    (out / "parts").mkdir()
    (tmp_path / "kept.parquet").rename(out / "parts" / "part-00000000000000000001-1-00001.parquet")
    rec = Recording()
    table = run_points(points, rec, out, progress=False)
    assert rec.ran == [points[2].point_id]
    assert table.column("status").to_pylist() == ["ok"] * 3
    assert pq.read_table(out / "results.parquet").num_rows == 3


def test_duplicate_points_are_rejected() -> None:
    p = SweepPoint.make(QUICKSTART, ["network.rtt_ms=5"])
    with pytest.raises(ConfigError, match="more than once"):
        run_points([p, p], LocalExecutor(1), progress=False)


# --- plot and CLI ----------------------------------------------------------------------------

def test_cli_run_resume_and_plot(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = spec(tmp_path, seeds=[0, 1], axes={"network.rtt_ms": [0, 40],
                                              "policies.window.gamma": [2, 4]})
    out = tmp_path / "res"
    assert main(["sweep", str(path), "--workers", "1", "--out", str(out), "--quiet"]) == 0
    assert pq.read_table(out / "results.parquet").num_rows == 8
    assert (out / "sweep.yaml").is_file()
    assert main(["sweep", str(path), "--workers", "1", "--out", str(out)]) == 0
    out_text = capsys.readouterr().out
    assert "resuming: 8 of 8 points already in" in out_text  # a resumed sweep says so
    assert "8 points, 8 ok, 0 failed, 8 skipped as done" in out_text
    png = tmp_path / "p.png"
    assert main(["sweep", "plot", str(out), "--x", "network.rtt_ms", "--y", "throughput_rps",
                 "--hue", "policies.window.gamma", "--out", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["sweep", "plot", str(out / "results.parquet"), "--x", "rtt",
                 "--y", "throughput_rps"]) == 2
    assert "--x rtt: no such column" in capsys.readouterr().err
    assert main(["sweep", str(path), "--x", "a"]) == 2
    assert main(["sweep", str(tmp_path / "missing.yaml")]) == 2


def test_plot_categorical_x_and_where(tmp_path: Path) -> None:
    points = load_sweep(spec(tmp_path, axes={"policies.router": ["random", "jsq"],
                                             "network.rtt_ms": [0, 40]})).points()
    table = run_points(points, LocalExecutor(1), progress=False)
    png = plot_results(table, "policies.router", "goodput_tps", out=tmp_path / "c.png",
                       where=["network.rtt_ms=40"])
    assert png.stat().st_size > 1000
    with pytest.raises(ConfigError, match="no numeric values"):
        plot_results(table, "policies.router", "goodput_tps", out=tmp_path / "d.png",
                     where=["network.rtt_ms=41"])

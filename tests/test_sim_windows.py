"""What a run measures over which window: a drained run ends at its last completion, rates
count completions in [warm-up, end], utilization is clipped to the window, and the load
signals (batch and KV occupancy) and time series are recorded."""

import math

import pyarrow.parquet as pq
import pytest

from dsd.sim import simulate


def open_loop(rate: float, duration: float, **sim) -> dict:
    return {"name": "window",
            "cluster": {"drafts": [{"count": 10, "gpu": "A40", "model": "llama-2-7b"}],
                        "targets": [{"count": 1, "gpu": "A100", "tp": 4,
                                     "model": "llama-2-70b"}]},
            "workload": {"dataset": "gsm8k", "arrival": {"type": "poisson", "rate": rate}},
            "simulation": {"duration_s": duration, **sim}}


def test_a_drained_run_ends_at_its_last_completion() -> None:
    r = simulate(open_loop(0.05, 300))
    t = r.requests
    last = max(a + e / 1000 for a, e in zip(t.column("arrival_s").to_pylist(),
                                            t.column("e2e_ms").to_pylist(), strict=True))
    assert r.summary["sim_time_s"] == pytest.approx(last, abs=1e-6)
    assert r.summary["throughput_rps"] == pytest.approx(t.num_rows / last, rel=1e-4)
    # An arrival process too slow to send anything within the duration ends at once.
    idle = simulate(open_loop(1e-6, 300)).summary
    assert idle["sim_time_s"] < 300
    assert idle["requests_arrived"] == 0


def test_throughput_without_drain_counts_completions_in_the_window() -> None:
    over = {"cluster": {"drafts": [{"count": 40, "gpu": "A40", "model": "llama-2-7b"}],
                        "targets": [{"count": 1, "gpu": "A100", "tp": 4,
                                     "model": "llama-2-70b"}]}}
    base = {**open_loop(6.0, 60), **over}
    # The warm-up only decides what is measured, so both runs simulate the same thing.
    everything = simulate({**base, "simulation": {"duration_s": 60, "drain": False}})
    windowed = simulate({**base, "simulation": {"duration_s": 60, "warmup_s": 20,
                                                "drain": False}}).summary
    t = everything.requests
    ends = [a + e / 1000 for a, e in zip(t.column("arrival_s").to_pylist(),
                                         t.column("e2e_ms").to_pylist(), strict=True)]
    in_window = sum(1 for end in ends if 20 <= end <= 60)
    arrived_late = sum(1 for a in t.column("arrival_s").to_pylist() if a >= 20)
    assert in_window > arrived_late  # requests that arrived in warm-up finish in the window
    assert windowed["throughput_rps"] * 40 == pytest.approx(in_window, abs=1e-6)
    assert windowed["window_completions"] == in_window


def test_utilization_never_exceeds_one() -> None:
    s = simulate(open_loop(2000, 0.02, drain=False), keep_requests=False).summary
    assert 0 < s["target_utilization"] <= 1.0
    assert 0 < s["draft_utilization"] <= 1.0


def test_batch_and_kv_occupancy_follow_the_load() -> None:
    runs = [simulate("examples/quickstart.yaml", keep_requests=False, overrides=[
        f"workload.arrival.rate_per_device={rate}", "simulation.duration_s=60",
        "simulation.warmup_s=10", "simulation.drain=false"]).summary
        for rate in (0.02, 0.1, 0.3)]
    occupancy = [s["mean_batch_occupancy"] for s in runs]
    kv = [s["kv_occupancy_mean"] for s in runs]
    assert occupancy[0] < occupancy[1] < occupancy[2] <= 1.0
    assert 0 < kv[0] < kv[1] < kv[2] <= 1.0
    for s in runs:  # a step's batch over its cap: the cap is the verify batcher's 32
        assert s["mean_batch_occupancy"] == pytest.approx(s["mean_batch_size"] / 32, rel=1e-4)


def test_time_series_are_bounded_and_written(tmp_path) -> None:
    r = simulate("examples/quickstart.yaml", out=tmp_path, overrides=[
        "simulation.duration_s=60", "simulation.warmup_s=0"])
    ts = pq.read_table(tmp_path / "timeseries.parquet")
    assert ts.equals(r.timeseries)
    assert ts.schema.names == ["t_s", "series", "entity", "value"]
    assert [str(f.type) for f in ts.schema] == ["double", "string", "int64", "double"]
    rows = ts.to_pylist()
    assert {x["series"] for x in rows} == {"batch_size", "queue_len", "kv_occupancy", "gamma"}
    assert {x["entity"] for x in rows if x["series"] != "gamma"} == {0, 1}
    assert {x["entity"] for x in rows if x["series"] == "gamma"} == {-1}
    assert all(0.0 <= x["value"] <= 1.0 for x in rows if x["series"] == "kv_occupancy")
    gammas = [x["value"] for x in rows if x["series"] == "gamma"]
    assert all(0 <= g <= 4 for g in gammas)  # static gamma 4, last windows shorter
    assert sum(gammas) / len(gammas) == pytest.approx(r.summary["mean_drafted_gamma"], abs=0.2)
    times = [x["t_s"] for x in rows]
    assert times == sorted(times) and times[-1] == pytest.approx(r.summary["sim_time_s"])
    assert not any(math.isnan(x["value"]) for x in rows)


def test_time_series_stay_bounded_over_a_long_run() -> None:
    short = simulate("examples/single-pair.yaml", keep_requests=False,
                     overrides=["simulation.duration_s=60"]).timeseries
    long = simulate("examples/single-pair.yaml", keep_requests=False,
                    overrides=["simulation.duration_s=3600"]).timeseries
    points = {x for x in long.column("t_s").to_pylist()}
    assert len(points) <= 512
    assert long.num_rows <= 4 * 512
    assert long.num_rows < 4 * short.num_rows

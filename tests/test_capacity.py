"""Capacity search: bracketing and bisection on a monotone attainment curve."""

import pytest

from dsd.errors import ConfigError
from dsd.experiments import capacity as cap
from dsd.experiments.capacity import capacity_search, scaled_config

CFG = "examples/centralized.yaml"


def fake_point(threshold: float):
    def evaluate(point):
        _cfg, _over, value, seed = point
        ok = value <= threshold
        return {"load": value, "seed": seed, "attainment": 1.0 if ok else 0.5,
                "throughput_rps": value, "goodput_rps": value, "goodput_tps": value,
                "ttft_ms_p99": 1.0, "tpot_ms_p50": 1.0, "tpot_ms_p99": 1.0,
                "target_utilization": 0.5}
    return evaluate


class TwoWide:
    workers = 2

    def __init__(self) -> None:
        self.calls = 0

    def map(self, fn, items):
        self.calls += 1
        return iter([fn(i) for i in items])  # executors may return iterators


def test_bisection_finds_the_threshold(monkeypatch) -> None:
    monkeypatch.setattr(cap, "evaluate_point", fake_point(137))
    res = capacity_search(CFG, over="drafts", tol=0.0)
    assert res.capacity == 137
    assert all(p["passes"] == (p["load"] <= 137) for p in res.points)


def test_parallel_candidates_and_rate_search(monkeypatch) -> None:
    monkeypatch.setattr(cap, "evaluate_point", fake_point(0.0333))
    ex = TwoWide()
    res = capacity_search(CFG, over="rate", tol=0.01, executor=ex)
    assert res.capacity == pytest.approx(0.0333, rel=0.011)
    assert res.capacity <= 0.0333
    assert ex.calls < len(res.points)  # several loads per call


def test_nothing_passes_gives_zero(monkeypatch) -> None:
    monkeypatch.setattr(cap, "evaluate_point", fake_point(0))
    assert capacity_search(CFG, over="drafts").capacity == 0


def test_scaling_and_errors() -> None:
    base = {"cluster": {"drafts": [{"count": 30}, {"count": 10}]},
            "workload": {"arrival": {"type": "closed_loop"}}}
    scaled = scaled_config(base, "drafts", 80)
    assert [p["count"] for p in scaled["cluster"]["drafts"]] == [60, 20]
    with pytest.raises(ConfigError, match="open-loop"):
        scaled_config(base, "rate", 1.0)
    with pytest.raises(ConfigError, match="unknown SLO"):
        capacity_search(CFG, slo={"e2e_ms": 5})


def test_real_search_on_a_small_cluster() -> None:
    res = capacity_search(CFG, slo={"ttft_ms": 1000, "tpot_ms": 60}, over="drafts", tol=0.25,
                          overrides=("simulation.duration_s=40", "simulation.warmup_s=5"),
                          max_evals=8)
    assert res.capacity > 0
    assert res.at_capacity["attainment"] >= 0.9


def test_progress_and_the_unit_name_the_load(monkeypatch, capsys) -> None:
    monkeypatch.setattr(cap, "evaluate_point", fake_point(0.0333))
    steps: list[tuple] = []
    res = capacity_search(CFG, over="rate", tol=0.01, executor=TwoWide(),
                          progress=lambda *a: steps.append(a))
    done = [s[0] for s in steps]
    assert done == sorted(done) and done[-1] == len(res.points)
    expected = [s[1] for s in steps if s[1] is not None]
    assert expected and all(e >= d for d, e, *_ in steps if e is not None)
    assert res.key == "workload.arrival.rate_per_device"
    assert res.unit == "req/s per device (workload.arrival.rate_per_device)"
    from dsd.cli.main import main

    assert main(["capacity", CFG, "--over", "rate", "--workers", "1", "--tol", "0.01"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("capacity: 0.03") and "req/s per device " \
        "(workload.arrival.rate_per_device) at 90% SLO attainment" in last

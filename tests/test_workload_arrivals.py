"""Arrival processes and think times: moments, determinism, config errors."""

from __future__ import annotations

import math
import random

import pytest

from dsd.errors import ConfigError
from dsd.workload import (
    ConstantArrivals,
    GammaArrivals,
    PoissonArrivals,
    ThinkTime,
    make_arrivals,
)

N = 50_000


def _mean_cv(xs: list[float]) -> tuple[float, float]:
    mean = sum(xs) / len(xs)
    var = sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)
    return mean, math.sqrt(var) / mean


def _gaps(proc, seed: int = 0, n: int = N) -> list[float]:
    rng = random.Random(seed)
    return [proc.next_gap(rng) for _ in range(n)]


def test_poisson_gaps() -> None:
    mean, cv = _mean_cv(_gaps(PoissonArrivals(5.0)))
    assert mean == pytest.approx(0.2, rel=0.02)
    assert cv == pytest.approx(1.0, rel=0.03)


@pytest.mark.parametrize("cv", [0.5, 1.0, 3.0])
def test_gamma_gaps_mean_and_cv(cv: float) -> None:
    mean, got_cv = _mean_cv(_gaps(GammaArrivals(4.0, cv), n=200_000))
    assert mean == pytest.approx(0.25, rel=0.03)
    assert got_cv == pytest.approx(cv, rel=0.04)


def test_constant_gaps() -> None:
    assert set(_gaps(ConstantArrivals(8.0), n=10)) == {0.125}


def test_same_seed_same_gaps() -> None:
    for proc in (PoissonArrivals(2.0), GammaArrivals(2.0, 2.5)):
        assert _gaps(proc, seed=11, n=100) == _gaps(proc, seed=11, n=100)
        assert _gaps(proc, seed=11, n=100) != _gaps(proc, seed=12, n=100)


def test_think_time() -> None:
    rng = random.Random(0)
    xs = [ThinkTime(2.0).sample(rng) for _ in range(N)]
    assert sum(xs) / N == pytest.approx(2.0, rel=0.02)
    assert {ThinkTime(1.5, "constant").sample(rng) for _ in range(5)} == {1.5}
    assert ThinkTime(0.0).sample(rng) == 0.0
    with pytest.raises(ConfigError, match="think_time.dist"):
        ThinkTime(1.0, "weibull")
    with pytest.raises(ConfigError, match="think_time.mean_s"):
        ThinkTime(-1.0)


def test_make_arrivals() -> None:
    assert make_arrivals({"type": "poisson", "rate": 5.0}) == PoissonArrivals(5.0)
    assert make_arrivals({"type": "gamma", "rate": 5, "cv": 3}) == GammaArrivals(5, 3)
    assert make_arrivals({"type": "constant", "rate": 2}) == ConstantArrivals(2)
    assert make_arrivals({"rate": 1}) == PoissonArrivals(1)  # poisson is the default type


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"type": "pareto", "rate": 1}, r"arrival\.type must be one of poisson, gamma, constant"),
        ({"type": "poisson"}, r"arrival\.rate is required"),
        ({"type": "poisson", "rate": 1, "cv": 2}, r"arrival\.cv: not a parameter of poisson"),
        ({"type": "gamma", "rate": 1, "burst": 2}, r"arrival\.burst: not a parameter of gamma"),
        ({"type": "poisson", "rate": 0}, r"arrival\.rate must be a positive number, got 0"),
        ({"type": "gamma", "rate": 1, "cv": -1}, r"arrival\.cv must be a positive number"),
        ({"type": "poisson", "rate": "fast"}, r"arrival\.rate must be a positive number"),
        ("poisson", r"arrival must be a mapping"),
    ],
)
def test_make_arrivals_errors(spec, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_arrivals(spec)

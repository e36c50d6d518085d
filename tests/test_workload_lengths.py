"""Length profiles: quantile fit, clamping, overrides, aliases."""

from __future__ import annotations

import random

import pytest

from dsd.errors import ConfigError
from dsd.workload import PROFILES, LengthDist, LengthProfile, length_profile
from dsd.workload.lengths import quantile

N = 20_000

# name -> ((prompt p50, p90), (output p50, p90)) as documented in lengths.py
TARGETS = {
    "gsm8k": ((57, 92), (115, 197)),
    "cnndm": ((660, 1272), (75, 110)),
    "humaneval": ((118, 226), (46, 108)),
    "mtbench": ((38, 181), (250, 500)),
    "sharegpt": ((150, 600), (242, 548)),
    "synthetic": ((128, 128), (128, 128)),
}


def _p50_p90(values: list[int]) -> tuple[float, float]:
    values = sorted(values)
    return quantile(values, 0.5), quantile(values, 0.9)


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_profile_quantiles_match_targets(name: str) -> None:
    profile = PROFILES[name]
    rng = random.Random(1)
    draws = [profile.sample(rng) for _ in range(N)]
    for i, (t50, t90) in enumerate(TARGETS[name]):
        p50, p90 = _p50_p90([d[i] for d in draws])
        assert p50 == pytest.approx(t50, rel=0.05), (name, i, p50)
        assert p90 == pytest.approx(t90, rel=0.05), (name, i, p90)
    assert all(p >= 1 and o >= 1 and isinstance(p, int) and isinstance(o, int) for p, o in draws)


def test_sampling_is_deterministic_per_seed() -> None:
    a = [PROFILES["gsm8k"].sample(random.Random(7)) for _ in range(3)]
    b = [PROFILES["gsm8k"].sample(random.Random(7)) for _ in range(3)]
    assert a == b
    rng1, rng2 = random.Random(7), random.Random(8)
    assert [PROFILES["mtbench"].sample(rng1) for _ in range(20)] != [
        PROFILES["mtbench"].sample(rng2) for _ in range(20)
    ]


def test_lognormal_clamps_to_bounds() -> None:
    dist = LengthDist.lognormal(100, 1000, lo=50, hi=200)
    rng = random.Random(0)
    draws = [dist.sample(rng) for _ in range(5000)]
    assert min(draws) == 50 and max(draws) == 200
    # Both tails are heavy here, so a real share of draws sits on each bound.
    assert draws.count(50) > 500 and draws.count(200) > 500


def test_lognormal_sigma_from_quantiles() -> None:
    dist = LengthDist.lognormal(100, 200)
    assert dist.sigma == pytest.approx(0.5409, abs=1e-3)  # ln(2) / 1.2816


def test_mean_matches_sample_mean() -> None:
    rng = random.Random(3)
    for dist in (PROFILES["gsm8k"].output, LengthDist.lognormal(100, 1000, 50, 200)):
        sample_mean = sum(dist.sample(rng) for _ in range(N)) / N
        assert dist.mean() == pytest.approx(sample_mean, rel=0.03)
    assert LengthDist.fixed(9).mean() == 9
    assert LengthDist.empirical([1, 2, 3, 10]).mean() == 4


def test_fixed_and_empirical() -> None:
    rng = random.Random(0)
    assert {LengthDist.fixed(42).sample(rng) for _ in range(10)} == {42}
    emp = LengthDist.empirical([3, 5, 7])
    draws = [emp.sample(rng) for _ in range(3000)]
    assert set(draws) == {3, 5, 7}
    assert all(draws.count(v) > 850 for v in (3, 5, 7))  # uniform: ~1000 each


def test_overrides() -> None:
    rng = random.Random(0)
    p = length_profile("gsm8k", output={"fixed": 200})
    assert isinstance(p, LengthProfile) and p.name == "gsm8k"
    assert p.prompt == PROFILES["gsm8k"].prompt
    assert {p.sample(rng)[1] for _ in range(50)} == {200}

    p = length_profile("synthetic", prompt={"p50": 100, "p90": 200, "max": 150})
    prompts = sorted(p.sample(rng)[0] for _ in range(N))
    assert quantile(prompts, 0.5) == pytest.approx(100, rel=0.05)
    assert prompts[-1] == 150

    p = length_profile("cnndm", prompt={"values": [10, 20]}, output=LengthDist.fixed(5))
    assert {p.sample(rng) for _ in range(100)} == {(10, 5), (20, 5)}


@pytest.mark.parametrize(
    ("alias", "name"),
    [
        ("cnn_dailymail", "cnndm"),
        ("cnn/dm", "cnndm"),
        ("human-eval", "humaneval"),
        ("mt-bench", "mtbench"),
        ("GSM8K", "gsm8k"),
    ],
)
def test_aliases(alias: str, name: str) -> None:
    assert length_profile(alias) == PROFILES[name]


def test_unknown_profile_lists_known_names() -> None:
    with pytest.raises(ConfigError, match=r"unknown length profile 'wiki'.*gsm8k.*humaneval"):
        length_profile("wiki")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"p50": 100}, r"output\.p90 is required"),
        ({"p50": -1, "p90": 3}, r"output\.p50 must be a positive number"),
        ({"p50": 100, "p90": 50}, r"output\.p90 must be a number >= p50"),
        ({"p50": 10, "p90": 20, "min": 30, "max": 20}, r"output\.max must be an integer >= min"),
        ({"p50": 10, "p90": 20, "maximum": 9}, r"output\.maximum: unexpected key"),
        ({"fixed": 0}, r"output: fixed length must be a positive integer"),
        ({"values": []}, r"output: empirical length values must not be empty"),
        ({"values": [1, -2]}, r"positive integers, got -2"),
        ({"mean": 3}, r"output: expected one of 'fixed', 'values' or 'p50'/'p90'"),
    ],
)
def test_bad_overrides(override: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        length_profile("gsm8k", output=override)

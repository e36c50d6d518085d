"""Acceptance sampling and the streaming quantile sketch."""

import random

import pytest

from dsd.acceptance import AcceptanceModel, TokenAcceptance, resolve_acceptance
from dsd.errors import ConfigError
from dsd.metrics import QuantileSketch


def test_accepted_count_distribution_matches_positional_model() -> None:
    acc = TokenAcceptance((0.9, 0.8, 0.7))
    rng = random.Random(0)
    n, gamma = 100_000, 5
    counts = [0] * (gamma + 1)
    for _ in range(n):
        counts[acc.accepted(gamma, rng.random())] += 1
    alphas = [0.9, 0.8, 0.7, 0.7, 0.7]
    survive = 1.0
    for k in range(gamma):
        assert counts[k] / n == pytest.approx(survive * (1 - alphas[k]), abs=0.005)
        survive *= alphas[k]
    assert counts[gamma] / n == pytest.approx(survive, abs=0.005)
    assert acc.expected_accepted(gamma) == pytest.approx(
        sum(k * c for k, c in enumerate(counts)) / n, rel=0.01)


def test_session_spread_keeps_the_mean() -> None:
    model = AcceptanceModel((0.7,), spread=0.1)
    rng = random.Random(1)
    alphas = [model.session(rng).alphas[0] for _ in range(20_000)]
    mean = sum(alphas) / len(alphas)
    std = (sum((a - mean) ** 2 for a in alphas) / len(alphas)) ** 0.5
    assert mean == pytest.approx(0.7, abs=0.005)
    assert std == pytest.approx(0.1, rel=0.05)
    with pytest.raises(ConfigError, match="too large"):
        AcceptanceModel((0.9,), spread=0.4)


def test_resolve_uses_table_then_config_then_dataset_default() -> None:
    spec = {"table": [{"draft": "llama-2-7b", "dataset": "gsm8k", "alpha": 0.55}]}
    assert resolve_acceptance(spec, "llama-2-7b", "llama-2-70b", "gsm8k").alphas == (0.55,)
    assert resolve_acceptance(spec, "qwen-7b", "qwen-72b", "gsm8k").alphas == (0.8,)
    assert resolve_acceptance({"alpha": 0.6}, "a", "b", "cnndm").alphas == (0.6,)
    assert resolve_acceptance({}, "a", "b", "humaneval").alphas == (0.88,)
    assert resolve_acceptance({"alphas": [0.9, 0.5]}, "a", "b", "x").alphas == (0.9, 0.5)


def test_sketch_quantiles_within_relative_error() -> None:
    rng = random.Random(2)
    values = [rng.lognormvariate(3, 1) for _ in range(50_000)] + [0.0] * 10
    sketch = QuantileSketch(rel_err=0.005)
    for v in values:
        sketch.add(v)
    values.sort()
    for q in (0.01, 0.5, 0.9, 0.99, 0.999):
        exact = values[int(q * (len(values) - 1))]
        assert sketch.quantile(q) == pytest.approx(exact, rel=0.011)
    assert sketch.quantile(0.0) == 0.0
    assert sketch.mean == pytest.approx(sum(values) / len(values))
    other = QuantileSketch()
    other.add(1e6)
    sketch.merge(other)
    assert sketch.quantile(1.0) == pytest.approx(1e6, rel=0.01)
    assert len(sketch._buckets) < 2000  # memory follows the value range, not the count

"""Request arrival processes.

Open-loop processes give the gap to the next arrival (`next_gap`); closed-loop users wait a
`ThinkTime` after each response. All draws use a caller-owned `random.Random`, so a seeded
simulation is reproducible and the hot loop does no numpy calls.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from dsd.errors import ConfigError


class ArrivalProcess(Protocol):
    rate: float

    def next_gap(self, rng: random.Random) -> float:
        """Seconds from the previous arrival to the next one."""
        ...


def _positive(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"arrival.{key} must be a positive number, got {value!r}")
    if value <= 0:
        raise ConfigError(f"arrival.{key} must be a positive number, got {value!r}")
    return float(value)


@dataclass(frozen=True, slots=True)
class PoissonArrivals:
    """Exponential gaps: memoryless arrivals at `rate` requests per second."""

    rate: float

    def __post_init__(self) -> None:
        _positive(self.rate, "rate")

    def next_gap(self, rng: random.Random) -> float:
        return rng.expovariate(self.rate)


@dataclass(frozen=True, slots=True)
class GammaArrivals:
    """Gamma gaps with mean 1/rate and coefficient of variation `cv` (cv > 1 is bursty).

    Shape k = 1/cv^2 and scale = 1/(rate k) give mean k*scale = 1/rate and
    CV = 1/sqrt(k) = cv; cv = 1 is exactly Poisson.
    """

    rate: float
    cv: float = 1.0

    def __post_init__(self) -> None:
        _positive(self.rate, "rate")
        _positive(self.cv, "cv")

    def next_gap(self, rng: random.Random) -> float:
        shape = 1.0 / (self.cv * self.cv)
        return rng.gammavariate(shape, 1.0 / (self.rate * shape))


@dataclass(frozen=True, slots=True)
class ConstantArrivals:
    """Evenly spaced arrivals, 1/rate seconds apart (deterministic load)."""

    rate: float

    def __post_init__(self) -> None:
        _positive(self.rate, "rate")

    def next_gap(self, rng: random.Random) -> float:
        return 1.0 / self.rate


THINK_DISTS = ("exponential", "constant")


@dataclass(frozen=True, slots=True)
class ThinkTime:
    """Pause of a closed-loop user between receiving a response and sending the next request."""

    mean_s: float
    dist: str = "exponential"

    def __post_init__(self) -> None:
        m = self.mean_s
        if isinstance(m, bool) or not isinstance(m, (int, float)) or not math.isfinite(m) or m < 0:
            raise ConfigError(f"think_time.mean_s must be a number >= 0, got {m!r}")
        if self.dist not in THINK_DISTS:
            raise ConfigError(
                f"think_time.dist must be one of {', '.join(THINK_DISTS)}, got {self.dist!r}"
            )

    def sample(self, rng: random.Random) -> float:
        if self.dist == "constant" or self.mean_s == 0:
            return float(self.mean_s)
        return rng.expovariate(1.0 / self.mean_s)


ARRIVAL_TYPES: dict[str, tuple[type, frozenset[str]]] = {
    "poisson": (PoissonArrivals, frozenset({"rate"})),
    "gamma": (GammaArrivals, frozenset({"rate", "cv"})),
    "constant": (ConstantArrivals, frozenset({"rate"})),
}


def make_arrivals(spec: Mapping[str, Any]) -> PoissonArrivals | GammaArrivals | ConstantArrivals:
    """An arrival process from a config dict, e.g. {"type": "gamma", "rate": 5, "cv": 3}."""
    if not isinstance(spec, Mapping):
        raise ConfigError(
            f"arrival must be a mapping like {{'type': 'poisson', 'rate': 1}}, got {spec!r}"
        )
    kind = spec.get("type", "poisson")
    if kind not in ARRIVAL_TYPES:
        raise ConfigError(f"arrival.type must be one of {', '.join(ARRIVAL_TYPES)}, got {kind!r}")
    cls, allowed = ARRIVAL_TYPES[kind]
    params = {k: v for k, v in spec.items() if k != "type"}
    for key in params:
        if key not in allowed:
            raise ConfigError(
                f"arrival.{key}: not a parameter of {kind} arrivals "
                f"(allowed: {', '.join(sorted(allowed))})"
            )
    if "rate" not in params:
        raise ConfigError(f"arrival.rate is required for {kind} arrivals (requests per second)")
    return cls(**params)

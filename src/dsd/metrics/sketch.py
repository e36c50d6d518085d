"""A mergeable log-bucket quantile sketch: memory grows with the value range, not the count.

Hand-written rather than a dependency because it is 40 lines, deterministic, and the
simulator adds one value per finished request; relative error is bounded by `rel_err`.
"""

from __future__ import annotations

import math


class QuantileSketch:
    def __init__(self, rel_err: float = 0.005) -> None:
        self.rel_err = rel_err
        self._gamma = (1 + rel_err) / (1 - rel_err)
        self._log_gamma = math.log(self._gamma)
        self._buckets: dict[int, int] = {}
        self._zeros = 0
        self.count = 0
        self.total = 0.0
        self.min = math.inf
        self.max = -math.inf

    def add(self, value: float) -> None:
        self.count += 1
        self.total += value
        if value < self.min:
            self.min = value
        if value > self.max:
            self.max = value
        if value <= 0.0:
            self._zeros += 1
            return
        key = math.ceil(math.log(value) / self._log_gamma)
        self._buckets[key] = self._buckets.get(key, 0) + 1

    def merge(self, other: QuantileSketch) -> None:
        for key, n in other._buckets.items():
            self._buckets[key] = self._buckets.get(key, 0) + n
        self._zeros += other._zeros
        self.count += other.count
        self.total += other.total
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else math.nan

    def quantile(self, q: float) -> float:
        """Value at quantile q in [0, 1] (nan when empty), within rel_err of the exact one."""
        if not self.count:
            return math.nan
        rank = q * (self.count - 1)
        seen = self._zeros
        if rank < seen:
            return 0.0
        for key in sorted(self._buckets):
            seen += self._buckets[key]
            if rank < seen:
                estimate = 2 * self._gamma**key / (self._gamma + 1)
                return min(max(estimate, self.min), self.max)
        return self.max

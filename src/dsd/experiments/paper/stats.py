"""Seed statistics and verdicts for the paper claims: a mean with a Student-t 95%
confidence interval over seeds, and the rule that turns it into a verdict."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

# Two-sided 97.5% quantiles of Student's t by degrees of freedom (1..30); beyond, normal.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201,
         2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069,
         2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)

REPRODUCED = "reproduced"
IN_PART = "holds in part"
DOES_NOT_HOLD = "does not hold"
VERDICTS = (REPRODUCED, IN_PART, DOES_NOT_HOLD)


def t975(dof: int) -> float:
    return _T975[dof - 1] if 1 <= dof <= len(_T975) else 1.96


@dataclass(frozen=True)
class Estimate:
    """Mean of per-seed values with a 95% CI; `n` counts the seeds that gave a value."""

    mean: float
    ci95: tuple[float, float]
    n: int

    @property
    def half_width(self) -> float:
        return (self.ci95[1] - self.ci95[0]) / 2


def estimate(values: Sequence[float | None]) -> Estimate | None:
    """Mean and Student-t 95% CI of the non-missing values (None when there are none; a
    single value has an infinitely wide interval)."""
    xs = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not xs:
        return None
    mean = statistics.fmean(xs)
    if len(xs) < 2:
        return Estimate(mean, (-math.inf, math.inf), 1)
    half = t975(len(xs) - 1) * statistics.stdev(xs) / math.sqrt(len(xs))
    return Estimate(mean, (mean - half, mean + half), len(xs))


def verdict(est: Estimate | None, paper: float, paper_range: tuple[float, float],
            null: float, kind: str = "effect") -> str:
    """The verdict of a seed estimate.

    effect: 'reproduced' when our mean lies in the paper's range and the CI excludes
    no-effect (`null`) unless the range itself contains it; 'holds in part' when the CI
    excludes no-effect on the paper's side; else 'does not hold' (the opposite direction,
    or no effect we can tell from none). bound: 'reproduced' in range, else 'does not
    hold'. exists: 'reproduced' in range, 'holds in part' when it exists elsewhere.
    """
    if est is None:
        return DOES_NOT_HOLD
    low, high = paper_range
    in_range = low <= est.mean <= high
    if kind == "bound":
        return REPRODUCED if in_range else DOES_NOT_HOLD
    if kind == "exists":
        return REPRODUCED if in_range else IN_PART
    lo, hi = est.ci95
    direction = math.copysign(1.0, paper - null)
    clear = (direction > 0 and lo > null) or (direction < 0 and hi < null)
    if in_range and (clear or low < null < high):
        return REPRODUCED
    return IN_PART if clear else DOES_NOT_HOLD


def point_verdict(value: float | None, paper: float, paper_range: tuple[float, float],
                  null: float, kind: str = "effect") -> str:
    """Verdict of one sensitivity point (a seed-averaged value, no CI)."""
    if value is None or not math.isfinite(value):
        return DOES_NOT_HOLD
    if paper_range[0] <= value <= paper_range[1]:
        return REPRODUCED
    if kind == "bound":
        return DOES_NOT_HOLD
    if kind == "exists":
        return IN_PART
    return IN_PART if (value - null) * (paper - null) > 0 else DOES_NOT_HOLD

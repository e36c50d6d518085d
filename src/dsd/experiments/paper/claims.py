"""What a paper claim is, and how dsd evaluates it.

A *study* is a set of simulations (one list of points per seed) in one setting; each of
its *claims* reduces the rows of one seed to one number (an effect: a relative change, a
difference in ms, a ratio, a crossover RTT). Over seeds the number becomes a mean with a
95% CI and a verdict against the paper's figure. A study's *axes* are the parameters the
papers leave unsaid; the sensitivity sweep re-runs the study along each axis and records
where each claim holds.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

Labels = dict[str, Any]
Point = tuple[Labels, dict[str, Any]]  # (labels of the row, scenario dict)
Rows = list[dict[str, Any]]

# Units: how an effect is printed. "pct" effects are fractions shown as percentages.
UNITS = {"pct": "%", "ms": "ms", "x": "x", "abs_ms": "ms", "rps": "req/s"}


@dataclass(frozen=True)
class Claim:
    """One number a paper states, and how to compute ours from a study's rows.

    `paper_range` is the paper's own stated range where it gives one, else the paper's
    figure +-25% (documented per claim in `range_note`). `null` is the no-effect value
    (0 for a change, 1 for a ratio). `kind` says how a figure is judged: an `effect` has a
    direction (see `stats.verdict`); a `bound` ("within 4% of the best") holds when our
    figure lies in the range; `exists` (a crossover RTT) holds in part when there is one
    outside the range.
    """

    key: str
    source: str  # where the paper says it
    statement: str  # what the paper says, in words
    paper: float  # the paper's headline figure, in `unit`
    paper_range: tuple[float, float]
    unit: str
    effect: Callable[[Rows], float | None]  # rows of ONE seed -> our figure
    null: float = 0.0
    kind: str = "effect"  # effect | bound (|ours| within the range) | exists (a crossover)
    range_note: str = "the paper's figure +-25%"
    mechanism: str = ""  # what drives the effect in the model (words, no figures)

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise ValueError(f"claim {self.key}: unknown unit {self.unit!r}")
        if self.kind not in ("effect", "bound", "exists"):
            raise ValueError(f"claim {self.key}: unknown kind {self.kind!r}")


def relative_range(value: float, tolerance: float = 0.25) -> tuple[float, float]:
    """The paper's figure +-`tolerance` relative, as (low, high)."""
    a, b = value * (1 - tolerance), value * (1 + tolerance)
    return (min(a, b), max(a, b))


@dataclass(frozen=True)
class Axis:
    """One unspecified parameter: the values to sweep and how each edits a scenario."""

    key: str
    label: str  # axis title in plots and text
    values: tuple[Any, ...]
    apply: Callable[[dict[str, Any], Any], None]  # edits the scenario dict in place
    names: tuple[str, ...] = ()  # printable value names (default: str(value))

    def name(self, value: Any) -> str:
        if self.names:
            return self.names[self.values.index(value)]
        return str(value)

    def edited(self, scenario: dict[str, Any], value: Any) -> dict[str, Any]:
        out = copy.deepcopy(scenario)
        self.apply(out, value)
        return out


@dataclass
class Study:
    """Simulations in one setting that several claims share.

    `base(quick)` is the setting's scenario; `points(scenario, quick)` the jobs one seed
    runs (the framework sets each job's seed); `runner` turns one job's scenario into a
    row (a top-level function, so process and Ray executors can ship it): one simulation
    by default, a whole capacity search for the capacity claims.
    """

    key: str
    title: str
    setting: str  # the configuration, in words (printed with every claim of the study)
    base: Callable[[bool], dict[str, Any]]
    claims: list[Claim]
    axes: Callable[[bool], list[Axis]]
    points: Callable[[dict[str, Any], bool], list[Point]]
    runner: Callable[[Any, int], dict[str, Any]]
    # The jobs of one sensitivity point, when fewer than `points` (default: `points`).
    sensitivity_points: Callable[[dict[str, Any], bool], list[Point]] | None = None
    # Two axis keys whose values are crossed (a heatmap per claim), besides the 1-D sweeps.
    grid: tuple[str, str] | None = None


# ------------------------------------------------------------------ effect helpers


def pick(rows: Sequence[dict[str, Any]], **where: Any) -> dict[str, Any]:
    """The one row matching every label in `where`."""
    found = [r for r in rows if all(r.get(k) == v for k, v in where.items())]
    if len(found) != 1:
        raise KeyError(f"expected one row with {where}, found {len(found)}")
    return found[0]


def change(new: float | None, old: float | None) -> float | None:
    """Relative change new/old - 1 (None when either is missing or old is 0)."""
    if new is None or old is None or not old or math.isnan(new) or math.isnan(old):
        return None
    return new / old - 1.0


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not b:
        return None
    return a / b

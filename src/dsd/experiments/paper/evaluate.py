"""Runs the studies: every seed of every study, and every point of every sensitivity
sweep, as one batch of jobs on the experiment's executor; then reduces rows to claim
estimates, verdicts and sensitivity maps."""

from __future__ import annotations

import itertools
import statistics
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from dsd.experiments.paper.claims import Claim, Rows, Study
from dsd.experiments.paper.stats import Estimate, estimate, point_verdict, verdict

MAIN = ""  # the axis label of the paper-closest runs


@dataclass
class SensitivityPoint:
    axis: str  # axis key, or "a x b" for a grid
    label: str  # axis title
    value: str  # printable value (or "va | vb" for a grid)
    effect: float | None  # mean over the sensitivity seeds
    verdict: str
    coords: tuple[int, ...] = ()  # value index (two for a grid cell)


@dataclass
class ClaimResult:
    claim: Claim
    study: Study
    values: list[float | None]  # one per seed, paper-closest setting
    estimate: Estimate | None
    verdict: str
    sensitivity: list[SensitivityPoint] = field(default_factory=list)


def run_job(job: tuple[Callable[..., dict[str, Any]], dict[str, Any], Any, int]
            ) -> dict[str, Any]:
    """One job: the study's runner on one scenario and seed, labelled. Top-level so
    process executors can pickle it."""
    runner, labels, scenario, seed = job
    return {**labels, **runner(scenario, seed)}


def _safe_effect(claim: Claim, rows: Rows) -> float | None:
    if not rows:
        return None
    try:
        return claim.effect(rows)
    except (KeyError, TypeError, ZeroDivisionError, ValueError):
        return None  # a point the study could not complete (e.g. no request finished)


def build_jobs(studies: Sequence[Study], quick: bool, seeds: Sequence[int],
               sens_seeds: Sequence[int], sensitivity: bool = True) -> list[tuple]:
    jobs: list[tuple] = []

    def add(study: Study, scenario: dict[str, Any], axis: str, coords: tuple[int, ...],
            seed_list: Sequence[int]) -> None:
        points = study.points if axis == MAIN else (study.sensitivity_points or study.points)
        for seed in seed_list:
            for labels, cfg in points(scenario, quick):
                tag = {"_study": study.key, "_axis": axis, "_coords": coords, "_seed": seed}
                jobs.append((study.runner, {**labels, **tag}, cfg, seed))

    for study in studies:
        base = study.base(quick)
        add(study, base, MAIN, (), seeds)
        if not sensitivity:
            continue
        axes = {a.key: a for a in study.axes(quick)}
        for axis in axes.values():
            for i, value in enumerate(axis.values):
                edited = axis.edited(base, value)
                if edited != base:  # the paper-closest value reuses the main runs
                    add(study, edited, axis.key, (i,), sens_seeds)
        if study.grid and all(k in axes for k in study.grid):
            a, b = (axes[k] for k in study.grid)
            for (i, va), (j, vb) in itertools.product(enumerate(a.values),
                                                      enumerate(b.values)):
                cell = b.edited(a.edited(base, va), vb)
                if cell != base and cell != a.edited(base, va) and cell != b.edited(base, vb):
                    add(study, cell, f"{a.key} x {b.key}", (i, j), sens_seeds)
    return jobs


class _Reducer:
    """Rows grouped by (study, axis, coords, seed), reduced claim by claim."""

    def __init__(self, rows: Rows, sens_seeds: Sequence[int]) -> None:
        self.groups: dict[tuple, Rows] = defaultdict(list)
        for row in rows:
            key = (row["_study"], row["_axis"], tuple(row["_coords"]), row["_seed"])
            self.groups[key].append(row)
        self.sens_seeds = sens_seeds

    def seed_values(self, claim: Claim, study: Study, axis: str, coords: tuple[int, ...],
                    seeds: Sequence[int]) -> list[float | None]:
        return [_safe_effect(claim, self.groups[study.key, axis, coords, s]) for s in seeds]

    def point(self, claim: Claim, study: Study, run: tuple[str, tuple[int, ...]],
              axis: str, coords: tuple[int, ...], label: str, name: str) -> SensitivityPoint:
        """The sensitivity point at `coords` of `axis`, computed from the runs keyed
        `run` (the main runs when the edit left the paper-closest scenario unchanged)."""
        vals = [v for v in self.seed_values(claim, study, *run, self.sens_seeds)
                if v is not None]
        mean = statistics.fmean(vals) if vals else None
        return SensitivityPoint(axis, label, name, mean,
                                point_verdict(mean, claim.paper, claim.paper_range, claim.null,
                                              claim.kind), coords)


def reduce_results(studies: Sequence[Study], rows: Rows, quick: bool, seeds: Sequence[int],
                   sens_seeds: Sequence[int]) -> list[ClaimResult]:
    red = _Reducer(rows, sens_seeds)
    out: list[ClaimResult] = []
    for study in studies:
        axes = {a.key: a for a in study.axes(quick)}
        base = study.base(quick)
        main = (MAIN, ())
        for claim in study.claims:
            values = red.seed_values(claim, study, MAIN, (), seeds)
            est = estimate(values)
            result = ClaimResult(claim, study, values, est,
                                 verdict(est, claim.paper, claim.paper_range, claim.null,
                                         claim.kind))
            for axis in axes.values():
                for i, value in enumerate(axis.values):
                    run = main if axis.edited(base, value) == base else (axis.key, (i,))
                    result.sensitivity.append(red.point(claim, study, run, axis.key, (i,),
                                                        axis.label, axis.name(value)))
            if study.grid and all(k in axes for k in study.grid):
                a, b = (axes[k] for k in study.grid)
                key = f"{a.key} x {b.key}"
                for (i, va), (j, vb) in itertools.product(enumerate(a.values),
                                                          enumerate(b.values)):
                    cell = b.edited(a.edited(base, va), vb)
                    # cells on an axis line reuse that axis' 1-D runs (as build_jobs skips)
                    if cell == base:
                        run = main
                    elif cell == a.edited(base, va):
                        run = (a.key, (i,))
                    elif cell == b.edited(base, vb):
                        run = (b.key, (j,))
                    else:
                        run = (key, (i, j))
                    result.sensitivity.append(red.point(
                        claim, study, run, key, (i, j), f"{a.label} x {b.label}",
                        f"{a.name(va)} | {b.name(vb)}"))
            out.append(result)
    return out

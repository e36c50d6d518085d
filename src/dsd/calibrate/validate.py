"""`dsd profile --validate`: measure held-out points between the profile's grid points and
report how well the table predictor (and, for comparison, the roofline) predicts them."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dsd.calibrate.grid import ProfileGrid
from dsd.calibrate.hfspec import resolve_model_spec
from dsd.calibrate.profile import ModelToProfile, load_runner, profile_model, row_name
from dsd.errors import DataError


@dataclass
class ValidationPoint:
    model: str
    op: str
    batch_size: int
    context_len: int
    query_tokens: int
    measured_ms: float
    table_ms: float
    roofline_ms: float

    @property
    def table_err(self) -> float:
        return abs(self.table_ms - self.measured_ms) / self.measured_ms

    @property
    def roofline_err(self) -> float:
        return abs(self.roofline_ms - self.measured_ms) / self.measured_ms


def grid_of(rows: list[dict[str, Any]]) -> ProfileGrid:
    """The grid a profile's rows were measured on (to place held-out points between)."""
    pre = [r for r in rows if r["op"] == "prefill"]
    steps = [r for r in rows if r["op"] != "prefill"]
    if not pre or not steps:
        raise DataError("validation needs prefill and decode/verify rows in the profile")
    return ProfileGrid(
        batch_sizes=tuple(sorted({r["batch_size"] for r in steps})),
        contexts=tuple(sorted({r["context_len"] for r in steps})),
        gammas=tuple(sorted({r["query_tokens"] - 1 for r in steps if r["query_tokens"] > 1}))
        or (1,),
        prompts=tuple(sorted({r["query_tokens"] for r in pre})),
    )


def validate_profile(
    profile_path: str,
    models: list[ModelToProfile],
    device: str = "cpu",
    gpu: str = "cpu",
    warmup: int = 2,
    repeats: int = 5,
    catalogs: tuple[str, ...] = (),
    progress: Callable[[str], None] | None = None,
    backend: str = "auto",
) -> list[ValidationPoint]:
    """Measure held-out points for each model and predict them from the profile."""
    import warnings

    from dsd.catalog import load_catalog
    from dsd.perf import Deployment
    from dsd.perf.roofline import RooflineStep
    from dsd.perf.table import TablePredictor, load_profile

    profile = load_profile(profile_path)
    gpu_spec = load_catalog(catalogs).gpu(gpu)
    out: list[ValidationPoint] = []
    for spec in models:
        name = row_name(spec)
        rows = profile.rows_for(name)
        if not rows:
            raise DataError(f"{profile_path} has no rows for model {name!r} "
                            f"(it has: {', '.join(profile.models())}); pass --name")
        runner, name = load_runner(spec, device, backend=backend)
        points = list(grid_of(rows).held_out())
        measured = profile_model(runner, name, grid_of(rows), warmup, repeats, points,
                                 progress)
        runner.close()
        del runner
        hw = Deployment(gpu_spec, resolve_model_spec(name, spec.path, catalogs))
        hw_named = Deployment(gpu_spec, _renamed(hw.model, name))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table = TablePredictor(profile_path).bind(hw_named)
        roof = RooflineStep(hw)
        for r in measured:
            n, q, c = r["batch_size"], r["query_tokens"], r["context_len"]
            total_q, total_c = n * q, n * c
            pairs = n * q * (c + q) if c else n * q * (q + 1) // 2
            out.append(ValidationPoint(
                name, r["op"], n, c, q, r["latency_ms"],
                table.step_s(n, total_q, total_c, pairs) * 1000.0,
                roof.step_s(n, total_q, total_c, pairs) * 1000.0,
            ))
    return out


def _renamed(model: Any, name: str) -> Any:
    """The spec under the profile's row name, so the table finds its rows."""
    from dataclasses import replace

    return replace(model, name=name, aliases=())


def summarize(points: list[ValidationPoint]) -> dict[str, Any]:
    """MAPE (fractions) of the table and the roofline, overall and per (model, op)."""
    def mape(values: list[float]) -> float:
        return statistics.fmean(values) if values else float("nan")

    groups: dict[str, list[ValidationPoint]] = {}
    for p in points:
        groups.setdefault(f"{p.model}/{p.op}", []).append(p)
    return {
        "points": len(points),
        "mape_table": mape([p.table_err for p in points]),
        "mape_roofline": mape([p.roofline_err for p in points]),
        "by_op": {k: {"points": len(v), "mape_table": mape([p.table_err for p in v]),
                      "mape_roofline": mape([p.roofline_err for p in v])}
                  for k, v in sorted(groups.items())},
    }

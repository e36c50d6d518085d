"""The sweep file: a base scenario and the axes to vary, expanded into `SweepPoint`s.

    base: ../quickstart.yaml         # or `config:` with an inline scenario mapping
    seeds: [0, 1]                    # optional, crossed with the grid (innermost)
    set: {simulation.duration_s: 60} # fixed overrides, applied to every point
    axes:                            # crossed, first axis outermost
      network.rtt_ms: [0, 10, 30]
      policies.window.gamma: {range: [2, 8, 2]}   # start, stop (inclusive), step
    zip:                             # each group: equal-length axes that move together
      - {workload.dataset: [gsm8k, cnndm], acceptance.alpha: [0.8, 0.7]}
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dsd.config import read_yaml
from dsd.errors import ConfigError
from dsd.sweep.point import SweepPoint, format_value

KEYS = ("name", "base", "config", "seeds", "set", "axes", "zip")
RESERVED = ("seed", "point_id", "status", "error")  # results-table columns of their own


@dataclass
class SweepSpec:
    """A parsed sweep file. `axes` holds crossed axes and `zips` zipped groups, each as
    path -> list of values; `fixed` are `path=value` overrides common to all points."""

    name: str
    base: str | dict[str, Any]
    axes: dict[str, list[Any]] = field(default_factory=dict)
    zips: list[dict[str, list[Any]]] = field(default_factory=list)
    seeds: list[int] | None = None
    fixed: list[str] = field(default_factory=list)

    @property
    def param_names(self) -> list[str]:
        return [*self.axes, *(p for group in self.zips for p in group)]

    def points(self) -> list[SweepPoint]:
        """Every point of the grid: axes crossed, zip groups crossed with them, seeds
        innermost."""
        factors: list[list[dict[str, Any]]] = [
            [{path: v} for v in values] for path, values in self.axes.items()
        ]
        for group in self.zips:
            paths = list(group)
            factors.append([dict(zip(paths, vals, strict=True))
                            for vals in zip(*group.values(), strict=True)])
        seeds: list[int | None] = list(self.seeds) if self.seeds is not None else [None]
        points = []
        for combo in itertools.product(*factors):
            params = {k: v for part in combo for k, v in part.items()}
            overrides = [*self.fixed, *(f"{k}={format_value(v)}" for k, v in params.items())]
            for seed in seeds:
                points.append(SweepPoint.make(self.base, overrides, seed, params))
        return points


def load_sweep(path: str | Path) -> SweepSpec:
    """Parse and check a sweep file (not the scenarios: see `validate_points`)."""
    path = Path(path)
    data = read_yaml(path)
    where = str(path)
    unknown = [k for k in data if k not in KEYS]
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (expected: {', '.join(KEYS)})")
    return parse_sweep(data, path.resolve().parent, where, default_name=path.stem)


def parse_sweep(data: dict[str, Any], base_dir: Path, where: str = "sweep",
                default_name: str = "sweep") -> SweepSpec:
    if ("base" in data) == ("config" in data):
        raise ConfigError(f"{where}: give exactly one of 'base' (a scenario file) or "
                          "'config' (an inline scenario)")
    if "base" in data:
        base_path = base_dir / str(data["base"])
        if not base_path.is_file():
            raise ConfigError(f"{where}: base: no such scenario file {str(base_path)!r}")
        base: str | dict[str, Any] = str(base_path.resolve())
    else:
        if not isinstance(data["config"], dict):
            raise ConfigError(f"{where}: config: expected a scenario mapping")
        base = data["config"]
    spec = SweepSpec(name=str(data.get("name", default_name)), base=base)
    spec.seeds = _seeds(data.get("seeds"), where)
    spec.fixed = _fixed(data.get("set"), where)
    axes = data.get("axes") or {}
    if not isinstance(axes, dict):
        raise ConfigError(f"{where}: axes: expected a mapping of dotted.path -> values")
    spec.axes = {str(p): _values(v, f"{where}: axes.{p}") for p, v in axes.items()}
    zips = data.get("zip") or []
    zips = [zips] if isinstance(zips, dict) else zips
    if not isinstance(zips, list):
        raise ConfigError(f"{where}: zip: expected a list of groups (path -> equal-length lists)")
    for i, group in enumerate(zips):
        if not isinstance(group, dict) or not group:
            raise ConfigError(f"{where}: zip[{i}]: expected a mapping of dotted.path -> values")
        values = {str(p): _values(v, f"{where}: zip[{i}].{p}") for p, v in group.items()}
        lengths = {p: len(v) for p, v in values.items()}
        if len(set(lengths.values())) > 1:
            shown = ", ".join(f"{p}: {n}" for p, n in lengths.items())
            raise ConfigError(f"{where}: zip[{i}]: zipped axes need equal lengths ({shown})")
        spec.zips.append(values)
    _check_names(spec, where)
    return spec


def _seeds(raw: Any, where: str) -> list[int] | None:
    if raw is None:
        return None
    values = _values(raw, f"{where}: seeds")
    if not all(isinstance(s, int) and not isinstance(s, bool) for s in values):
        raise ConfigError(f"{where}: seeds: expected integers, got {values!r}")
    if len(set(values)) != len(values):
        raise ConfigError(f"{where}: seeds: repeated seed")
    return values


def _fixed(raw: Any, where: str) -> list[str]:
    if raw is None:
        return []
    if isinstance(raw, dict):
        return [f"{p}={format_value(v)}" for p, v in raw.items()]
    if isinstance(raw, list) and all(isinstance(s, str) and "=" in s for s in raw):
        return list(raw)
    raise ConfigError(f"{where}: set: expected a mapping of dotted.path -> value")


def _values(raw: Any, where: str) -> list[Any]:
    """An axis: a list of values, or `{range: [start, stop, step]}` (stop inclusive)."""
    if isinstance(raw, dict):
        if set(raw) != {"range"}:
            raise ConfigError(f"{where}: expected a list of values or {{range: [start, stop, "
                              "step]}}")
        values = _range(raw["range"], where)
    elif isinstance(raw, list):
        values = raw
    else:
        raise ConfigError(f"{where}: expected a list of values (a single value goes under set:)")
    if not values:
        raise ConfigError(f"{where}: no values")
    return values


def _range(raw: Any, where: str) -> list[int | float]:
    ok = (isinstance(raw, list) and len(raw) in (2, 3)
          and all(isinstance(x, int | float) and not isinstance(x, bool) for x in raw))
    if not ok:
        raise ConfigError(f"{where}: range: expected [start, stop] or [start, stop, step]")
    start, stop, step = (*raw, 1) if len(raw) == 2 else raw
    if step == 0 or (stop - start) * step < 0:
        raise ConfigError(f"{where}: range: step {step} never reaches {stop} from {start}")
    count = math.floor((stop - start) / step + 1e-9) + 1
    if count > 1_000_000:
        raise ConfigError(f"{where}: range: {count} values is too many")
    if all(isinstance(x, int) for x in (start, stop, step)):
        return [start + i * step for i in range(count)]
    return [round(start + i * step, 12) for i in range(count)]  # 0.1+0.2 -> 0.3, not 0.30..04


def _check_names(spec: SweepSpec, where: str) -> None:
    seen: set[str] = {a.split("=", 1)[0].strip() for a in spec.fixed}
    for name in spec.param_names:
        if name in RESERVED:
            hint = "use 'seeds:'" if name == "seed" else "rename it"
            raise ConfigError(f"{where}: axis {name!r} clashes with a results column ({hint})")
        if name in seen:
            raise ConfigError(f"{where}: {name!r} is set more than once (set/axes/zip)")
        seen.add(name)

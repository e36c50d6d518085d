"""A sweep point: one simulation to run (base config + overrides + seed) and its identity.

The id is a hash of the point's parameters and seed only, so it is the same across runs and
reorderings of the grid: that is what lets a resumed sweep skip finished points.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dsd.errors import ConfigError


def format_value(value: Any) -> str:
    """A value as override text (`apply_override` parses YAML, and JSON is valid YAML)."""
    return json.dumps(value)


def point_id_for(params: dict[str, Any], seed: int | None) -> str:
    key = json.dumps({"params": params, "seed": seed}, sort_keys=True, separators=(",", ":"),
                     default=str)
    return hashlib.sha1(key.encode()).hexdigest()[:16]


def params_from_overrides(overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for assignment in overrides:
        if "=" not in assignment:
            raise ConfigError(f"override {assignment!r}: expected dotted.path=value")
        path, raw = assignment.split("=", 1)
        params[path.strip()] = yaml.safe_load(raw) if raw.strip() else ""
    return params


@dataclass(frozen=True)
class SweepPoint:
    """`config` is a scenario YAML path or mapping; `params` are what varies between points
    (the results table gets one column each); `overrides` are applied in order (fixed ones
    first, then the params). Build with `SweepPoint.make` to get the id filled in."""

    config: str | dict[str, Any]
    overrides: tuple[str, ...] = ()
    seed: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    point_id: str = ""

    @classmethod
    def make(cls, config: str | Path | dict[str, Any], overrides: list[str] | tuple[str, ...] = (),
             seed: int | None = None, params: dict[str, Any] | None = None,
             point_id: str | None = None) -> SweepPoint:
        """Without `params`, the overrides are the params (so two points differ by id
        exactly when they differ by overrides or seed)."""
        params = dict(params) if params is not None else params_from_overrides(overrides)
        config = str(Path(config).resolve()) if isinstance(config, str | Path) else config
        return cls(config, tuple(overrides), seed, params, point_id or point_id_for(params, seed))

    def describe(self) -> str:
        shown = ", ".join(f"{k}={format_value(v)}" for k, v in self.params.items())
        seed = f" seed={self.seed}" if self.seed is not None else ""
        return f"point {self.point_id} ({shown or 'base'}{seed})"

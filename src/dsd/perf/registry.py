"""Latency predictors by type name, so configs can say `latency: {type: fitted}`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from dsd.errors import ConfigError
from dsd.perf.base import LatencyPredictor

PREDICTORS: dict[str, type] = {}


def register_predictor(name: str) -> Callable[[type], type]:
    """Class decorator adding a predictor to PREDICTORS under `name`."""

    def decorator(cls: type) -> type:
        if name in PREDICTORS and PREDICTORS[name] is not cls:
            raise ValueError(f"latency predictor {name!r} is already registered")
        PREDICTORS[name] = cls
        return cls

    return decorator


DEFAULT_PREDICTOR = "fitted"


def make_predictor(spec: Mapping[str, Any] | str = DEFAULT_PREDICTOR) -> LatencyPredictor:
    """Build a predictor from a type name or a mapping {type: NAME, **constructor params}.

    Params set to None count as unset, so a config schema's dump (e.g. `path: None` for a
    roofline pool) can be passed straight in.
    """
    raw = {"type": spec} if isinstance(spec, str) else dict(spec)
    params = {k: v for k, v in raw.items() if v is not None}
    name = str(params.pop("type", DEFAULT_PREDICTOR))
    cls = PREDICTORS.get(name)
    if cls is None:
        known = ", ".join(sorted(PREDICTORS))
        raise ConfigError(f"unknown latency predictor {name!r} (known: {known})")
    try:
        return cls(**params)
    except TypeError as exc:
        raise ConfigError(f"latency predictor {name!r}: bad parameters ({exc})") from None

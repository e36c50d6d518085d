"""What every latency predictor shares: bind a deployment once (after checking that the
model and some KV fit on it), and price `predict(op, shape, hw)` through the bound step."""

from __future__ import annotations

from typing import Any

from dsd.errors import ConfigError
from dsd.perf.base import OPS, BatchShape, Deployment, Op
from dsd.perf.memory import MIN_KV_TOKENS, check_fits


class BoundPredictor:
    """Base of the registered predictors: subclasses build a deployment's step model in
    `_make`; `reserve_frac` / `min_kv_tokens` set the fit check made when binding."""

    def __init__(self, reserve_frac: float = 0.1, min_kv_tokens: int = MIN_KV_TOKENS) -> None:
        self.reserve_frac = reserve_frac
        self.min_kv_tokens = min_kv_tokens
        self._bound: dict[Deployment, Any] = {}

    def _make(self, hw: Deployment) -> Any:
        raise NotImplementedError

    def bind(self, hw: Deployment) -> Any:
        step = self._bound.get(hw)
        if step is None:
            check_fits(hw, self.reserve_frac, self.min_kv_tokens)
            step = self._bound[hw] = self._make(hw)
        return step

    def predict(self, op: Op, shape: BatchShape, hw: Deployment) -> float:
        if op not in OPS:
            raise ConfigError(f"unknown op {op!r} (known: {', '.join(OPS)})")
        return self.bind(hw).step_s(*shape.args())

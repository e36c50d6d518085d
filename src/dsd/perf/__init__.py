"""Latency prediction: `predict(op, shape, hardware)` behind one interface, plus a bound
fast path (`bind(hw).step_s(...)`) for the simulator."""

from dsd.perf.base import OPS, BatchShape, Deployment, LatencyPredictor, Op, StepModel
from dsd.perf.memory import MIN_KV_TOKENS, check_fits, kv_capacity_tokens
from dsd.perf.registry import PREDICTORS, make_predictor, register_predictor
from dsd.perf.roofline import RooflinePredictor, RooflineStep
from dsd.perf.table import TablePredictor, TableStep  # noqa: F401  (registers 'table')

__all__ = [
    "MIN_KV_TOKENS",
    "OPS",
    "PREDICTORS",
    "BatchShape",
    "Deployment",
    "LatencyPredictor",
    "Op",
    "RooflinePredictor",
    "RooflineStep",
    "StepModel",
    "check_fits",
    "kv_capacity_tokens",
    "make_predictor",
    "register_predictor",
]

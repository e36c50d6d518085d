"""Latency prediction: `predict(op, shape, hardware)` behind one interface, plus a bound
fast path (`bind(hw).step_s(...)`) for the simulator."""

from dsd.perf.base import OPS, BatchShape, Deployment, LatencyPredictor, Op, StepModel
from dsd.perf.fitted import FittedPredictor  # registers 'fitted', the default
from dsd.perf.memory import MIN_KV_TOKENS, check_fits, kv_capacity_tokens
from dsd.perf.registry import DEFAULT_PREDICTOR, PREDICTORS, make_predictor, register_predictor
from dsd.perf.roofline import RooflinePredictor, RooflineStep
from dsd.perf.step import ComposedStep
from dsd.perf.table import TablePredictor, TableStep  # noqa: F401  (registers 'table')
from dsd.perf.vidur import VidurPredictor  # registers 'vidur'

__all__ = [
    "DEFAULT_PREDICTOR",
    "MIN_KV_TOKENS",
    "OPS",
    "PREDICTORS",
    "BatchShape",
    "ComposedStep",
    "Deployment",
    "FittedPredictor",
    "LatencyPredictor",
    "Op",
    "RooflinePredictor",
    "RooflineStep",
    "StepModel",
    "VidurPredictor",
    "check_fits",
    "kv_capacity_tokens",
    "make_predictor",
    "register_predictor",
]

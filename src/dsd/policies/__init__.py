"""Pure decision logic shared by the simulator and the runtime: no I/O, no event loop, no torch."""

from dsd.policies.batching import BATCHERS, Batcher, FifoBatcher, VerifyJob
from dsd.policies.mode import MODE_SELECTORS, MODES, Mode, ModeSelector, ModeState
from dsd.policies.registry import Registry, UnknownPolicyError
from dsd.policies.routing import ROUTERS, RequestView, Router, TargetView
from dsd.policies.window import (
    WINDOWS,
    RoundResult,
    WindowController,
    WindowFactory,
    WindowState,
)

__all__ = [
    "BATCHERS", "Batcher", "FifoBatcher", "VerifyJob",
    "MODE_SELECTORS", "MODES", "Mode", "ModeSelector", "ModeState",
    "Registry", "UnknownPolicyError",
    "ROUTERS", "RequestView", "Router", "TargetView",
    "WINDOWS", "RoundResult", "WindowController", "WindowFactory", "WindowState",
]

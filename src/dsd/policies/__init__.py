"""Pure decision logic shared by the simulator and the runtime: no I/O, no event loop, no torch."""

from dsd.policies import early_stop as _early_stop  # noqa: F401  (registers windows)
from dsd.policies import slo_batching as _slo_batching  # noqa: F401  (registers "slo")
from dsd.policies.admission import ADMISSION, AdmissionPolicy, AdmissionView
from dsd.policies.batching import BATCHERS, Batcher, FifoBatcher, VerifyJob
from dsd.policies.estimator import VerifyTimeEstimator
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

try:  # the AWC window policy lives with the AWC work; absent until it lands
    from dsd.policies import awc as _awc  # noqa: F401
except ImportError:
    pass

__all__ = [
    "ADMISSION", "AdmissionPolicy", "AdmissionView",
    "VerifyTimeEstimator",
    "BATCHERS", "Batcher", "FifoBatcher", "VerifyJob",
    "MODE_SELECTORS", "MODES", "Mode", "ModeSelector", "ModeState",
    "Registry", "UnknownPolicyError",
    "ROUTERS", "RequestView", "Router", "TargetView",
    "WINDOWS", "RoundResult", "WindowController", "WindowFactory", "WindowState",
]

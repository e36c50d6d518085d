"""A window policy that plays a fixed gamma and logs the AWC features at decision points.

The simulator skips per-round controller calls when a factory sets `fixed_gamma`, so this
recorder sets it to None and returns its gamma itself. Samples go to a process-local sink
keyed by `tag` (policies are built from config dicts, so no object can be passed in). A
reservoir keeps a uniform sample over the whole run: capping "the first K" decisions would
record only the start-up transient.
"""

from __future__ import annotations

import random

from dsd.policies.awc import raw_features
from dsd.policies.window import WINDOWS, RoundResult, WindowController, WindowState

SINKS: dict[str, list[list[float]]] = {}


class _Recorder:
    __slots__ = ("factory",)

    def __init__(self, factory: RecordingWindow) -> None:
        self.factory = factory

    def next_gamma(self, state: WindowState) -> int:
        f = self.factory
        if state.prev_gamma > 0:  # only sessions with at least one verdict have features
            f.seen += 1
            if len(f.sink) < f.max_points:
                f.sink.append(raw_features(state))
            else:  # reservoir sampling (Algorithm R)
                j = f.rng.randrange(f.seen)
                if j < f.max_points:
                    f.sink[j] = raw_features(state)
        return f.gamma

    def observe(self, result: RoundResult) -> None:
        pass


@WINDOWS.register("awc_record")
class RecordingWindow:
    """Static `gamma`, logging a uniform sample of `max_points` decisions to SINKS[tag]."""

    def __init__(self, gamma: int = 4, max_points: int = 150, tag: str = "default") -> None:
        self.fixed_gamma = None
        self.gamma, self.max_points = gamma, max(1, max_points)
        self.seen = 0
        self.rng = random.Random(f"awc-record:{tag}")  # reproducible, independent of the sim
        self.sink = SINKS.setdefault(tag, [])

    def __call__(self) -> WindowController:
        return _Recorder(self)

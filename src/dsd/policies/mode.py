"""Execution mode of a session: distributed (draft at edge) or fused (draft in the cloud).

Cloud-only (no speculation) is a deployment choice, not a per-session decision, so the
selector chooses only between the two speculative modes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from dsd.policies.registry import Registry

Mode = Literal["distributed", "fused", "cloud_only"]
MODES: tuple[Mode, ...] = ("distributed", "fused", "cloud_only")


@dataclass(slots=True)
class ModeState:
    rtt_s: float  # measured round trip edge <-> target
    queue_util: float  # target load, queue depth / capacity
    now_s: float


class ModeSelector(Protocol):
    def choose(self, state: ModeState) -> Mode: ...


MODE_SELECTORS: Registry[ModeSelector] = Registry("mode")


@MODE_SELECTORS.register("fixed")
class FixedMode:
    """Always the configured mode."""

    def __init__(self, mode: Mode = "distributed") -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        self.mode = mode

    def choose(self, state: ModeState) -> Mode:
        return self.mode


@MODE_SELECTORS.register("rtt-load")
class RttLoadModeSelector:
    """Per edge device: distributed while the link is fast enough, fused when it is not.

    Distributed pays one network round trip per round but takes drafting off the cloud
    GPUs, which matters more the busier they are, so the RTT threshold rises with load:

        threshold = rtt_threshold_ms + load_slope_ms * min(queue_util, 2)

    Hysteresis: leave distributed only above threshold + margin, return only below
    threshold - margin, and never switch within `min_dwell_s` of the last switch. Create
    one selector per device (it keeps that device's current mode)."""

    def __init__(self, rtt_threshold_ms: float = 50.0, load_slope_ms: float = 20.0,
                 margin_ms: float = 5.0, min_dwell_s: float = 10.0) -> None:
        if margin_ms < 0 or min_dwell_s < 0:
            raise ValueError("margin_ms and min_dwell_s must be >= 0")
        self.threshold_s = rtt_threshold_ms / 1000.0
        self.slope_s = load_slope_ms / 1000.0
        self.margin_s = margin_ms / 1000.0
        self.min_dwell_s = min_dwell_s
        self.mode: Mode | None = None
        self.since = -float("inf")
        self.switches = 0

    def threshold(self, queue_util: float) -> float:
        return self.threshold_s + self.slope_s * min(max(queue_util, 0.0), 2.0)

    def choose(self, state: ModeState) -> Mode:
        limit = self.threshold(state.queue_util)
        if self.mode is None:
            self.mode = "distributed" if state.rtt_s <= limit else "fused"
            self.since = state.now_s
            return self.mode
        if state.now_s - self.since < self.min_dwell_s:
            return self.mode
        if self.mode == "distributed" and state.rtt_s > limit + self.margin_s:
            want: Mode = "fused"
        elif self.mode == "fused" and state.rtt_s < limit - self.margin_s:
            want = "distributed"
        else:
            return self.mode
        self.mode, self.since = want, state.now_s
        self.switches += 1
        return want

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

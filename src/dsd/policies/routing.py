"""Routing: which cloud target verifies a new request.

Both engines hand a router a list of `TargetView`s built from what the targets report
(queue depth, outstanding work) and what the edge measures (RTT), never their internals.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from dsd.policies.registry import Registry


@dataclass(slots=True)
class TargetView:
    """What a router may know about one candidate target."""

    target_id: int
    queue_depth: int = 0  # jobs waiting at the target
    running: int = 0  # requests the target is currently serving (admitted sessions)
    outstanding_tokens: int = 0  # tokens of work queued (query tokens of waiting jobs)
    capacity: int = 1  # max batch size
    rtt_s: float = 0.0  # measured or configured round trip to this target


@dataclass(slots=True)
class RequestView:
    """What a router may know about the request being placed."""

    request_id: int
    device_id: int
    prompt_tokens: int
    max_output_tokens: int


class Router(Protocol):
    def choose(self, request: RequestView, targets: Sequence[TargetView]) -> int:
        """Return the `target_id` of the chosen target (targets is never empty)."""
        ...


ROUTERS: Registry[Router] = Registry("router")


@ROUTERS.register("random")
class RandomRouter:
    """Uniformly random target: the DSD paper's default."""

    def __init__(self, seed: int = 0) -> None:
        self._rng = random.Random(seed)

    def choose(self, request: RequestView, targets: Sequence[TargetView]) -> int:
        return targets[self._rng.randrange(len(targets))].target_id


@ROUTERS.register("jsq")
class JoinShortestQueue:
    """Fewest queued + running requests; ties broken by lower RTT, then id."""

    def __init__(self, seed: int = 0) -> None:
        del seed

    def choose(self, request: RequestView, targets: Sequence[TargetView]) -> int:
        best = min(targets, key=lambda t: (t.queue_depth + t.running, t.rtt_s, t.target_id))
        return best.target_id

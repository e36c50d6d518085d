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
    remaining_tokens: int = 0  # output tokens still to generate by sessions routed here
    est_step_s: float = 0.0  # predicted time of one verify step at this target (0: unknown)


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


def _load(t: TargetView) -> int:
    return t.queue_depth + t.running


@ROUTERS.register("round-robin")
class RoundRobinRouter:
    """Targets in turn, in the order given; oblivious to load, fair in request count."""

    def __init__(self, seed: int = 0) -> None:
        del seed
        self._next = 0

    def choose(self, request: RequestView, targets: Sequence[TargetView]) -> int:
        choice = targets[self._next % len(targets)].target_id
        self._next += 1
        return choice


@ROUTERS.register("least-work")
class LeastOutstandingWork:
    """Fewest outstanding tokens: query tokens queued plus output tokens its sessions still
    have to generate, so one long request weighs more than several short ones."""

    def __init__(self, seed: int = 0) -> None:
        del seed

    def choose(self, request: RequestView, targets: Sequence[TargetView]) -> int:
        best = min(targets, key=lambda t: (t.outstanding_tokens + t.remaining_tokens,
                                           t.rtt_s, t.target_id))
        return best.target_id


@ROUTERS.register("p2c")
class PowerOfTwoChoices:
    """Sample two distinct targets uniformly, take the one with fewer queued + running
    (ties: lower RTT). Nearly JSQ's balance while probing only two targets."""

    def __init__(self, seed: int = 0) -> None:
        self._rng = random.Random(seed)

    def choose(self, request: RequestView, targets: Sequence[TargetView]) -> int:
        if len(targets) == 1:
            return targets[0].target_id
        a, b = self._rng.sample(range(len(targets)), 2)
        ta, tb = targets[a], targets[b]
        return min((ta, tb), key=lambda t: (_load(t), t.rtt_s, t.target_id)).target_id


@ROUTERS.register("rtt-aware")
class RttAwareRouter:
    """Smallest expected round time including the link:

        rtt_s + est_step_s * (1 + (queue_depth + running) / capacity)

    i.e. one network round trip plus a verify step stretched by the target's load (a
    full batch ahead of us costs one more step). Without `est_step_s` a default step of
    `default_step_ms` is assumed, so the rule degrades to RTT plus load."""

    def __init__(self, seed: int = 0, default_step_ms: float = 30.0) -> None:
        del seed
        self.default_step_s = default_step_ms / 1000.0

    def expected_round_s(self, t: TargetView) -> float:
        step = t.est_step_s or self.default_step_s
        return t.rtt_s + step * (1.0 + _load(t) / max(t.capacity, 1))

    def choose(self, request: RequestView, targets: Sequence[TargetView]) -> int:
        return min(targets, key=lambda t: (self.expected_round_s(t), t.target_id)).target_id

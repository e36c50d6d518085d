"""Window control: how many tokens (gamma) the edge drafts in the next round.

A controller lives for one edge session (one request). Each round the engine calls
`next_gamma(state)` before drafting and `observe(result)` when the verdict returns.
`WindowState` carries the AWC features (queue utilization, acceptance, RTT and TPOT
statistics, previous gamma) in the same units in the simulator and in the runtime.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from dsd.policies.registry import Registry


@dataclass(slots=True)
class WindowState:
    queue_util: float = 0.0  # target queue depth / target batch capacity, as last reported
    acceptance_ema: float = 0.0  # exponential moving average of per-round acceptance rate
    rtt_mean_s: float = 0.0
    rtt_std_s: float = 0.0
    tpot_mean_s: float = 0.0
    tpot_std_s: float = 0.0
    prev_gamma: int = 0
    draft_confidence: float | None = None  # top-1 probability of the last draft token, if known


@dataclass(slots=True)
class RoundResult:
    gamma: int  # tokens drafted this round
    accepted: int  # draft tokens accepted (0..gamma); one correction/bonus token follows
    round_time_s: float  # edge-observed time from drafting start to verdict
    rtt_s: float  # network part of the round, as measured


class WindowController(Protocol):
    def next_gamma(self, state: WindowState) -> int: ...

    def observe(self, result: RoundResult) -> None: ...


class EarlyStopController(WindowController, Protocol):
    """A controller that may cut a round short while drafting (SpecDec++, WISP).

    `next_gamma` is then the round's budget; after drafting the token at 0-based
    `position` with draft confidence `confidence` (top-1 probability) the engine asks
    `stop_early(position, confidence)`: True sends the tokens drafted so far, this one
    included. Engines call it only when the factory's `early_stop` is True, so plain
    controllers cost nothing per token.
    """

    def stop_early(self, position: int, confidence: float) -> bool: ...


class WindowFactory(Protocol):
    """Makes one controller per session. `fixed_gamma` lets engines skip per-round calls."""

    fixed_gamma: int | None
    # early_stop: bool (optional, default False): controllers implement `stop_early`

    def __call__(self) -> WindowController: ...


WINDOWS: Registry[WindowFactory] = Registry("window")


class _Static:
    def __init__(self, gamma: int) -> None:
        self.gamma = gamma

    def next_gamma(self, state: WindowState) -> int:
        return self.gamma

    def observe(self, result: RoundResult) -> None:
        pass


@WINDOWS.register("static")
class StaticWindow:
    """A fixed gamma every round (the papers' static baseline, gamma=4 by default)."""

    def __init__(self, gamma: int = 4) -> None:
        if gamma < 1:
            raise ValueError("gamma must be >= 1")
        self.fixed_gamma = gamma
        self._shared = _Static(gamma)  # stateless, so one instance serves every session

    def __call__(self) -> WindowController:
        return self._shared


class _Dynamic:
    def __init__(self, low: float, high: float, gammas: tuple[int, int, int]) -> None:
        self.low, self.high = low, high
        self.small, self.mid, self.large = gammas
        self.gamma = self.mid

    def next_gamma(self, state: WindowState) -> int:
        return self.gamma

    def observe(self, result: RoundResult) -> None:
        rate = result.accepted / result.gamma if result.gamma else 0.0
        if rate <= self.low:
            self.gamma = self.small
        elif rate >= self.high:
            self.gamma = self.large
        else:
            self.gamma = self.mid


@WINDOWS.register("dynamic")
class DynamicWindow:
    """Acceptance-driven heuristic of the DSD baseline: the last round's acceptance
    <= low -> small gamma, >= high -> large gamma, else the middle one (2 / 4 / 8)."""

    def __init__(
        self, low: float = 0.25, high: float = 0.6, small: int = 2, mid: int = 4, large: int = 8
    ) -> None:
        if not 0.0 <= low <= high <= 1.0:
            raise ValueError("need 0 <= low <= high <= 1")
        self.fixed_gamma = None
        self._args = (low, high, (small, mid, large))

    def __call__(self) -> WindowController:
        return _Dynamic(*self._args)

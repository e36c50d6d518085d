"""The event loop: a heap of (time, sequence, handler, argument) tuples.

Tuple keys compare in C, which makes this ~2.5x faster than a SimPy environment; the
sequence number breaks time ties first-scheduled-first, so runs are deterministic.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from heapq import heappop, heappush
from typing import Any


class EventLoop:
    __slots__ = ("now", "events", "_heap", "_seq", "observer")

    def __init__(self) -> None:
        self.now = 0.0
        self.events = 0
        self._heap: list[tuple[float, int, Callable[[Any], None], Any]] = []
        self._seq = itertools.count().__next__
        # (slice_s, callback): `run` proceeds in slices of simulated time and calls
        # callback(now) between them (a progress bar), so the event loop itself has no hook.
        self.observer: tuple[float, Callable[[float], None]] | None = None

    def at(self, time: float, handler: Callable[[Any], None], arg: Any = None) -> None:
        """Call `handler(arg)` at simulated time `time` (never before `now`)."""
        heappush(self._heap, (time, self._seq(), handler, arg))

    def pending(self) -> int:
        return len(self._heap)

    def run(self, until: float = math.inf) -> None:
        """Process events in time order until the heap is empty or the next is after `until`."""
        if self.observer is None:
            self._run(until)
            return
        step, report = self.observer
        while self._heap:  # same events in the same order as one call: only paused between
            # an idle stretch is crossed in one slice, not thousands of empty ones
            stop = min(until, max(self.now + step, self._heap[0][0]))
            self._run(stop)
            report(self.now)
            if stop >= until:
                break

    def _run(self, until: float) -> None:
        heap = self._heap
        count = 0
        try:
            while heap:
                if heap[0][0] > until:
                    self.now = until
                    break
                time, _, handler, arg = heappop(heap)
                self.now = time
                handler(arg)
                count += 1
        finally:
            self.events += count

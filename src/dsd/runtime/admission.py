"""Bounded admission: at most `limit` holders at a time, then a bounded FIFO wait, then refusal.

Both servers queue work beyond their capacity instead of failing it, as vLLM does beyond
`max_num_seqs`: the verifier for sessions beyond `--max-sessions`, the edge for requests
beyond `--max-running`. A waiter gives up at its deadline; beyond `max_waiting` waiters a
request is refused at once. Both refusals are `Overloaded` and carry a Retry-After estimate
(how long the queue ahead of a newcomer takes to drain at the recent hold time).

The wait itself is an `asyncio.Semaphore`: first come first served, and cancellation-safe
(a waiter cancelled while being handed a slot gives it back), which a hand-written queue
would have to get right again.
"""

from __future__ import annotations

import asyncio
import math
import time
from contextlib import asynccontextmanager

from dsd.errors import DsdError


class Overloaded(DsdError):
    """Refused for capacity (queue full or queue deadline passed): retry after a while."""

    def __init__(self, message: str, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Admission:
    def __init__(self, limit: int, max_waiting: int, what: str = "request") -> None:
        if limit < 1 or max_waiting < 0:
            raise DsdError(f"bad admission bounds: limit {limit}, queue {max_waiting}")
        self.limit = limit
        self.max_waiting = max_waiting
        self.what = what
        self.holding = 0
        self.waiting = 0
        self._sem = asyncio.Semaphore(limit)
        self._hold_ema_s = 1.0  # recent time a slot is held, for Retry-After

    def retry_after_s(self) -> float:
        """Seconds until a newcomer would likely find room: the queue's drain time."""
        rounds = (self.waiting + 1) / self.limit
        return min(60.0, max(1.0, math.ceil(rounds * self._hold_ema_s)))

    async def acquire(self, timeout_s: float) -> float:
        """Take a slot, waiting up to `timeout_s`; returns the seconds waited."""
        if self.holding < self.limit and not self.waiting:
            await self._sem.acquire()  # free slot: never blocks
            self.holding += 1
            return 0.0
        if self.waiting >= self.max_waiting:
            raise Overloaded(f"{self.limit} {self.what}s running and {self.waiting} waiting "
                             f"(queue limit {self.max_waiting})", self.retry_after_s())
        t0 = time.perf_counter()
        self.waiting += 1
        try:
            async with asyncio.timeout(max(0.0, timeout_s)):
                await self._sem.acquire()
        except TimeoutError:
            raise Overloaded(f"no {self.what} slot freed within {timeout_s:.1f}s "
                             f"({self.limit} running)", self.retry_after_s()) from None
        finally:
            self.waiting -= 1
        self.holding += 1
        return time.perf_counter() - t0

    def release(self, held_s: float | None = None) -> None:
        if held_s is not None:
            self._hold_ema_s += 0.1 * (held_s - self._hold_ema_s)
        self.holding -= 1
        self._sem.release()

    @asynccontextmanager
    async def slot(self, timeout_s: float):
        await self.acquire(timeout_s)
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.release(time.perf_counter() - t0)

"""Bounded admission: at most `limit` holders at a time (and, with a token `capacity`, at
most that many tokens held), then a bounded FIFO wait, then refusal.

Both servers queue work beyond their capacity instead of failing it, as vLLM does beyond
`max_num_seqs`: the verifier for sessions beyond `--max-sessions` or beyond its KV token
budget, the edge for requests beyond `--max-running`. A waiter gives up at its deadline;
beyond `max_waiting` waiters a request is refused at once. Both refusals are `Overloaded`
and carry a Retry-After estimate (how long the queue ahead of a newcomer takes to drain at
the recent hold time).

The wait is strict FIFO, as the simulator's target admits sessions: a newcomer never
overtakes a waiter, even if its smaller token need would fit now, and a holder alone may
hold more than the capacity (so no need blocks forever). Asyncio's Semaphore cannot weigh
waiters by tokens, so the queue is a deque of futures; a waiter cancelled or timed out
while being handed its share gives it back.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from contextlib import asynccontextmanager

from dsd.errors import DsdError


class Overloaded(DsdError):
    """Refused for capacity (queue full or queue deadline passed): retry after a while."""

    def __init__(self, message: str, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Admission:
    def __init__(self, limit: int, max_waiting: int, what: str = "request",
                 capacity: int | None = None) -> None:
        if limit < 1 or max_waiting < 0 or (capacity is not None and capacity < 1):
            raise DsdError(f"bad admission bounds: limit {limit}, queue {max_waiting}, "
                           f"capacity {capacity}")
        self.limit = limit
        self.max_waiting = max_waiting
        self.what = what
        self.capacity = capacity  # tokens all holders may hold together (None: no bound)
        self.holding = 0
        self.used = 0  # tokens held
        self._waiters: deque[tuple[int, asyncio.Future]] = deque()
        self._hold_ema_s = 1.0  # recent time a slot is held, for Retry-After

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def retry_after_s(self) -> float:
        """Seconds until a newcomer would likely find room: the queue's drain time."""
        rounds = (self.waiting + 1) / self.limit
        return min(60.0, max(1.0, math.ceil(rounds * self._hold_ema_s)))

    def _fits(self, tokens: int) -> bool:
        if self.holding >= self.limit:
            return False
        return (self.capacity is None or self.holding == 0
                or self.used + tokens <= self.capacity)

    def _take(self, tokens: int) -> None:
        self.holding += 1
        self.used += tokens

    def _grant_waiters(self) -> None:
        while self._waiters:
            tokens, fut = self._waiters[0]
            if fut.done():  # cancelled or timed out: its owner removes it too
                self._waiters.popleft()
                continue
            if not self._fits(tokens):
                return
            self._waiters.popleft()
            self._take(tokens)
            fut.set_result(None)

    async def acquire(self, timeout_s: float, tokens: int = 0) -> float:
        """Take a slot (and `tokens` of the capacity), waiting up to `timeout_s`; returns
        the seconds waited."""
        if not self._waiters and self._fits(tokens):
            self._take(tokens)
            return 0.0
        if self.waiting >= self.max_waiting:
            raise Overloaded(f"{self.holding} {self.what}s running and {self.waiting} waiting "
                             f"(queue limit {self.max_waiting})", self.retry_after_s())
        t0 = time.perf_counter()
        entry = (tokens, asyncio.get_running_loop().create_future())
        self._waiters.append(entry)
        granted = False
        try:
            async with asyncio.timeout(max(0.0, timeout_s)):
                await entry[1]
            granted = True
        except TimeoutError:
            raise Overloaded(f"no {self.what} slot freed within {timeout_s:.1f}s "
                             f"({self.holding} running)", self.retry_after_s()) from None
        finally:
            if not granted:
                fut = entry[1]
                if fut.done() and not fut.cancelled():  # handed a share as we gave up
                    self.release(None, tokens)
                else:
                    fut.cancel()
                    if entry in self._waiters:
                        self._waiters.remove(entry)
                    self._grant_waiters()  # the head may have been what blocked the rest
        return time.perf_counter() - t0

    def release(self, held_s: float | None = None, tokens: int = 0) -> None:
        if held_s is not None:
            self._hold_ema_s += 0.1 * (held_s - self._hold_ema_s)
        self.holding -= 1
        self.used -= tokens
        self._grant_waiters()

    @asynccontextmanager
    async def slot(self, timeout_s: float):
        await self.acquire(timeout_s)
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.release(time.perf_counter() - t0)

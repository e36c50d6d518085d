"""The one thread that calls a model engine.

Engines are not thread-safe (a llama.cpp context least of all), so the verifier core and
the edge's drafter each run every engine call (forwards, KV crops, releases) on one worker
thread of their own; the event loop only hands work over and awaits it. Work submitted
without waiting (a KV release when a session ends) runs before any later step, and
`stop` lets queued releases finish: the engine may outlive its user (tests, a calibration
harness that starts several edges on one loaded model).
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Future, ThreadPoolExecutor

log = logging.getLogger("dsd.runtime")


class EngineThread:
    def __init__(self, name: str) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    async def run(self, fn, *args):
        """Run fn(*args) on the engine thread and await its result."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def submit(self, fn, *args) -> Future | None:
        """Queue fn(*args) after the work already queued; None once stopped."""
        try:
            return self._pool.submit(fn, *args)
        except RuntimeError:  # shut down: the owner is stopping
            return None

    async def stop(self, timeout_s: float = 30.0) -> None:
        """Finish the queued work, then end the thread (without blocking the event loop on
        a step that hangs)."""
        try:
            await asyncio.wait_for(asyncio.to_thread(self._pool.shutdown, True), timeout_s)
        except TimeoutError:
            log.warning("a model step still runs after %.0f s; not waiting for it", timeout_s)

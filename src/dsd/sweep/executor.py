"""Executors: a generic, possibly parallel `map` of a picklable top-level function.

Every executor offers two views of the same work:

- `imap_unordered(fn, items)` yields `(index, result)` as tasks finish (for progress bars
  and incremental writing);
- `map(fn, items)` yields results in input order (what AWC dataset generation and the
  experiments expect), streaming as soon as the next result in order is ready.

An exception raised by `fn` propagates out of the iterator (remaining tasks are cancelled);
callers that want per-item failures catch them inside `fn` (see `dsd.sweep.run_point`).
"""

from __future__ import annotations

import multiprocessing
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any, TypeVar

from dsd.errors import ConfigError

T = TypeVar("T")
R = TypeVar("R")

EXECUTORS = ("local", "ray")


class Executor(ABC):
    """Base of the sweep executors; use as a context manager to release workers."""

    name: str = "executor"
    workers: int = 1

    @abstractmethod
    def imap_unordered(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[tuple[int, R]]:
        """Yield `(index, fn(items[index]))` in completion order."""

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        """Yield `fn(item)` for each item, in input order."""
        pending: dict[int, R] = {}
        nxt = 0
        for index, result in self.imap_unordered(fn, items):
            pending[index] = result
            while nxt in pending:  # hold early finishers until their turn comes
                yield pending.pop(nxt)
                nxt += 1

    def close(self) -> None:  # noqa: B027 - optional hook: not every executor holds workers
        """Release workers (idempotent)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def default_workers() -> int:
    """All cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class LocalExecutor(Executor):
    """A process pool on this machine. With one worker, runs in this process (no pool
    start-up, plain tracebacks). Workers are spawned, not forked: the parent may hold
    threads (progress bar, Ray) that fork would copy in a broken state, and spawn behaves
    the same on every OS. The pool is started on first use and kept until `close()`."""

    name = "local"

    def __init__(self, workers: int | None = None) -> None:
        if workers is not None and workers < 1:
            raise ConfigError(f"--workers: must be >= 1, got {workers}")
        self.workers = workers or default_workers()
        self._pool: ProcessPoolExecutor | None = None

    def _get_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            ctx = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx)
        return self._pool

    def imap_unordered(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[tuple[int, R]]:
        if self.workers == 1:
            for index, item in enumerate(items):
                yield index, fn(item)
            return
        pool = self._get_pool()
        # A bounded window of submitted tasks keeps memory flat for very large sweeps.
        window = self.workers * 4
        source = enumerate(items)
        running: dict[Future[R], int] = {}
        try:
            for index, item in source:
                running[pool.submit(fn, item)] = index
                if len(running) >= window:
                    yield from _drain(running, wait(running, return_when=FIRST_COMPLETED).done)
            while running:
                yield from _drain(running, wait(running, return_when=FIRST_COMPLETED).done)
        finally:
            for future in running:  # consumer stopped early or a task raised
                future.cancel()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _drain(running: dict[Future[Any], int], done: set[Future[Any]]) -> Iterator[tuple[int, Any]]:
    for future in done:
        index = running.pop(future)
        yield index, future.result()


def make_executor(name: str = "local", address: str | None = None,
                  workers: int | None = None) -> Executor:
    """`local` (process pool, default all cores) or `ray` (joins `address`, e.g. `auto`, or
    starts a local Ray with `workers` CPUs)."""
    if name == "local":
        if address:
            raise ConfigError("--address applies to --executor ray only")
        return LocalExecutor(workers)
    if name == "ray":
        from dsd.sweep.ray_executor import RayExecutor

        return RayExecutor(address=address, workers=workers)
    raise ConfigError(f"--executor: unknown executor {name!r} (choose from {', '.join(EXECUTORS)})")

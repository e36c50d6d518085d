"""Executors for experiments and the capacity search: `dsd.sweep`'s when it is installed,
else a small process-pool fallback, else in-process."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from dsd.experiments.registry import Executor, InProcessExecutor


class PoolExecutor:
    """`map` over a process pool (fallback when `dsd.sweep` is not available)."""

    def __init__(self, workers: int) -> None:
        self.workers = workers

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
        items = list(items)
        if len(items) <= 1:
            return [fn(item) for item in items]
        with ProcessPoolExecutor(max_workers=min(self.workers, len(items))) as pool:
            return list(pool.map(fn, items))


def workers_arg(workers: int | None) -> int:
    """`--workers N`, default all cores (as `dsd sweep` and `dsd awc dataset`)."""
    from dsd.errors import DsdError
    from dsd.sweep.executor import default_workers

    if workers is None:
        return default_workers()
    if workers < 1:
        raise DsdError(f"--workers: must be >= 1, got {workers}")
    return workers


def get_executor(workers: int | None = 1, name: str = "local",
                 address: str | None = None) -> Executor:
    """`dsd.sweep.make_executor(name, address, workers)` if available; otherwise a process
    pool for workers > 1, or in-process."""
    try:
        from dsd.sweep import make_executor  # type: ignore[attr-defined]
    except ImportError:
        make_executor = None
    if make_executor is not None and (name != "local" or (workers or 1) > 1):
        return make_executor(name, address, workers)
    return PoolExecutor(workers) if workers and workers > 1 else InProcessExecutor()


def executor_width(executor: Any) -> int:
    """How many points an executor runs at once (1 when it does not say)."""
    for attr in ("workers", "max_workers", "num_workers"):
        value = getattr(executor, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    return 1

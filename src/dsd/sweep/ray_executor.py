"""The Ray executor: the same `map` on an existing Ray cluster or a local Ray instance.

Ray is an optional extra (`pip install 'dsd[ray]'`) and imported only when this executor is
made, so `dsd sweep` with the local executor never pays for it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from dsd.errors import DsdError
from dsd.sweep.executor import Executor, default_workers

T = TypeVar("T")
R = TypeVar("R")


def _call(fn: Callable[[Any], Any], item: Any) -> Any:
    """The one remote task: applies any picklable function, so `map` stays generic."""
    return fn(item)


class RayExecutor(Executor):
    """`address=None` starts a local Ray with `workers` CPUs (default: all cores) and stops
    it on `close()`; `address="auto"` (or `ray://host:port`, `host:port`) joins a running
    cluster, where `workers` caps the tasks in flight (default: the cluster's CPUs). Points
    then need `dsd` installed and any config files at the same paths on every node."""

    name = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None) -> None:
        try:
            import ray
        except ImportError:
            raise DsdError("--executor ray needs Ray: pip install 'dsd[ray]'") from None
        if workers is not None and workers < 1:
            raise DsdError(f"--workers: must be >= 1, got {workers}")
        self._ray = ray
        self._address = address
        self._requested = workers
        self.workers = workers or default_workers()  # refined once Ray is up
        self._owns_ray = False
        self._remote: Any = None

    def _start(self) -> None:
        """Start or join Ray on first use, so a fully resumed sweep never waits for it."""
        ray, address, workers = self._ray, self._address, self._requested
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.ERROR}
            if address:
                kwargs["address"] = address  # a cluster has its own CPU count
            else:
                kwargs["num_cpus"] = workers or default_workers()
            # A local raylet that registers late (Ray waits 30 s, fixed, on a loaded machine)
            # fails the start with a bare Exception: try once more before giving up.
            for attempt in (1, 2):
                try:
                    ray.init(**kwargs)
                    break
                except Exception as exc:  # noqa: BLE001 - Ray raises plain Exception here
                    ray.shutdown()
                    if attempt == 1 and not address and "timed out" in str(exc):
                        continue
                    where = f"Ray cluster at {address!r}" if address else "a local Ray instance"
                    text = str(exc).strip()
                    first = text.splitlines()[0] if text else type(exc).__name__
                    raise DsdError(f"could not start or join {where}: {first}") from None
            self._owns_ray = True
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.workers = max(1, min(workers, cpus) if workers else cpus)
        self._remote = ray.remote(num_cpus=1, max_retries=0)(_call)

    def imap_unordered(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[tuple[int, R]]:
        if self._remote is None:
            self._start()
        ray = self._ray
        fn_ref = ray.put(fn)  # ship the function once, not with every task
        window = self.workers * 2  # enough queued to keep workers busy, bounded memory
        running: dict[Any, int] = {}
        source = enumerate(items)
        try:
            for index, item in source:
                running[self._remote.remote(fn_ref, item)] = index
                if len(running) >= window:
                    yield from self._finish_one(running)
            while running:
                yield from self._finish_one(running)
        finally:
            for ref in running:  # consumer stopped early or a task raised
                ray.cancel(ref)

    def _finish_one(self, running: dict[Any, int]) -> Iterator[tuple[int, Any]]:
        done, _ = self._ray.wait(list(running), num_returns=1)
        for ref in done:
            index = running.pop(ref)
            yield index, _unwrap(self._ray, ref)

    def close(self) -> None:
        if self._owns_ray and self._ray.is_initialized():
            self._ray.shutdown()
        self._owns_ray = False


def _unwrap(ray: Any, ref: Any) -> Any:
    """`ray.get`, re-raising a task's own exception rather than Ray's wrapper."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        cause = exc.cause if isinstance(exc.cause, BaseException) else None
        if cause is not None:
            raise cause from None
        raise

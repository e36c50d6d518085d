"""Map a function over items on the sweep executor when it exists, else a process pool.

The sweep package (`dsd.sweep`, LocalExecutor/RayExecutor) is built in parallel with AWC;
it is imported lazily so AWC works with or without it. Results come back in item order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any


def default_workers() -> int:
    """All cores, as every `--workers` default."""
    from dsd.sweep.executor import default_workers as all_cores

    return all_cores()


def parallel_map(fn: Callable[[Any], Any], items: list[Any], executor: str = "local",
                 workers: int | None = None, address: str | None = None) -> Iterator[Any]:
    """Ordered results from the sweep executor when it exists, else a local process pool."""
    try:
        from dsd.sweep.executor import make_executor
    except ImportError:
        make_executor = None
    if make_executor is not None:
        with make_executor(executor, address=address,
                           workers=workers or default_workers()) as ex:
            yield from ex.map(fn, items)
        return
    workers = workers if workers is not None else default_workers()
    if workers <= 1:
        yield from map(fn, items)
        return
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(fn, items, chunksize=1)



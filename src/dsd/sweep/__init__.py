"""Sweeps: grids of simulations on a local process pool or a Ray cluster.

    from dsd.sweep import SweepPoint, make_executor, run_points

    points = [SweepPoint.make("examples/quickstart.yaml", [f"network.rtt_ms={r}"], seed=0)
              for r in (0, 10, 30)]
    with make_executor("local", workers=2) as ex:
        table = run_points(points, ex, out="runs/my-sweep")   # pyarrow.Table, one row/point

`Executor.map(fn, items)` is generic (any picklable top-level function), ordered, and
streams; `imap_unordered` yields `(index, result)` as tasks finish.
"""

from dsd.sweep.executor import EXECUTORS, Executor, LocalExecutor, default_workers, make_executor
from dsd.sweep.plot import plot_results
from dsd.sweep.point import SweepPoint, point_id_for
from dsd.sweep.runner import finished_rows, run_point, run_points, summarize, validate_points
from dsd.sweep.spec import SweepSpec, load_sweep, parse_sweep
from dsd.sweep.store import ResultStore, read_results, rows_to_table

__all__ = [
    "EXECUTORS", "Executor", "LocalExecutor", "ResultStore", "SweepPoint", "SweepSpec",
    "default_workers", "finished_rows", "load_sweep", "make_executor", "parse_sweep",
    "plot_results", "point_id_for", "read_results", "rows_to_table", "run_point", "run_points",
    "summarize", "validate_points",
]

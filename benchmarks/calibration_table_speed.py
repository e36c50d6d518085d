"""Cost of one table-predictor call, the simulator's per-batch hot path (microseconds).

    python benchmarks/calibration_table_speed.py [PROFILE]

Without PROFILE a synthetic grid like `dsd profile`'s default is used (model qwen2.5-0.5b).
Reports uncached calls (every shape new: multilinear interpolation) and the memoized
path (shapes repeat, as they do in a simulation), next to the roofline for reference.
"""

from __future__ import annotations

import sys
import tempfile
import time
from itertools import product
from pathlib import Path

from dsd.catalog import load_catalog
from dsd.perf import Deployment
from dsd.perf.roofline import RooflineStep
from dsd.perf.table import TablePredictor, TableStep, write_profile


def synthetic_profile(path: Path) -> Path:
    rows = []
    for b, p in product((1, 2, 4), (16, 64, 256, 1024)):
        rows.append({"model": "qwen2.5-0.5b", "op": "prefill", "batch_size": b,
                     "context_len": 0, "query_tokens": p, "latency_ms": 10 + 0.1 * b * p,
                     "p10_ms": 1, "p90_ms": 1, "repeats": 5})
    for b, c, q in product((1, 2, 4), (64, 256, 1024), (1, 2, 3, 5, 7, 9)):
        rows.append({"model": "qwen2.5-0.5b", "op": "decode" if q == 1 else "verify",
                     "batch_size": b, "context_len": c, "query_tokens": q,
                     "latency_ms": 70 + b * q + 0.01 * c, "p10_ms": 1, "p90_ms": 1,
                     "repeats": 5})
    return write_profile(path, rows, {"device": "cpu"})


def per_call_us(step, shapes: list[tuple[int, int, int, int]]) -> float:
    start = time.perf_counter()
    for s in shapes:
        step.step_s(*s)
    return (time.perf_counter() - start) / len(shapes) * 1e6


def main() -> None:
    tmp = tempfile.TemporaryDirectory()
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else synthetic_profile(
        Path(tmp.name) / "p.csv")
    cat = load_catalog()
    hw = Deployment(cat.gpu("cpu"), cat.model("qwen2.5-0.5b"))
    step = TablePredictor(path).bind(hw)
    if not isinstance(step, TableStep):
        sys.exit(f"{path} has no rows for qwen2.5-0.5b")
    shapes = [(b, b * 5, b * (70 + i % 900), 0) for i in range(20000) for b in (1 + i % 4,)]
    uncached = per_call_us(step, shapes)  # first sight of each shape: interpolation
    cached = per_call_us(step, shapes)  # repeats: memoized
    roof = per_call_us(RooflineStep(hw), shapes)
    print(f"table predictor: {uncached:.2f} us/call uncached, {cached:.2f} us/call memoized "
          f"(roofline {roof:.2f} us/call)")


if __name__ == "__main__":
    main()

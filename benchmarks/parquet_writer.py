"""dsd's pure-Python Parquet writer against pyarrow's: write time and file size of a
request table, row groups of 8192 rows as `dsd simulate` writes them.

    python benchmarks/parquet_writer.py [--rows 1000000] [--repeats 3]

The rows are a real `dsd simulate` run's (examples/quickstart.yaml, 600 s) resampled to
`--rows`: each row copies a random real row with a new id and arrival time and its float
columns perturbed, so the values are not exact repeats that would flatter a compressor.
Prints the median write time and the file size of pyarrow (snappy, its default) and of
dsd's writer uncompressed and GZIP.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from dsd.metrics.parquet import ParquetWriter  # noqa: E402
from dsd.metrics.table import REQUEST_FIELDS, arrow_column, request_schema  # noqa: E402
from dsd.sim import simulate  # noqa: E402

FLOATS = [i for i, (_, kind) in enumerate(REQUEST_FIELDS) if kind == "float64"]


def rows(n: int) -> list[tuple]:
    real = simulate(ROOT / "examples" / "quickstart.yaml",
                    overrides=["simulation.duration_s=600"]).requests.to_pylist()
    rng = random.Random(0)
    out, arrival = [], 0.0
    for i in range(n):
        row = list(rng.choice(real).values())
        arrival += rng.expovariate(4.0)
        row[0], row[4] = i, arrival
        for c in FLOATS[1:]:
            if row[c] is not None:
                row[c] *= rng.lognormvariate(0, 0.05)
        out.append(tuple(row))
    return out


def with_pyarrow(groups: list[list[list]], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = request_schema()
    with pq.ParquetWriter(str(path), schema) as writer:
        for cols in groups:
            writer.write_batch(pa.RecordBatch.from_arrays(
                [arrow_column(c, f.type) for c, f in zip(cols, schema, strict=True)],
                schema=schema))


def with_dsd(groups: list[list[list]], path: Path, compression: str) -> None:
    with ParquetWriter(path, REQUEST_FIELDS, compression) as writer:
        for cols in groups:
            writer.write_columns(cols)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    table = rows(args.rows)
    groups = [[list(c) for c in zip(*table[i:i + 8192], strict=True)]
              for i in range(0, len(table), 8192)]
    writers = {"pyarrow (snappy)": with_pyarrow,
               "dsd, uncompressed": lambda g, p: with_dsd(g, p, "none"),
               "dsd, gzip": lambda g, p: with_dsd(g, p, "gzip")}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "requests.parquet"
        times: dict[str, list[float]] = {name: [] for name in writers}
        sizes: dict[str, int] = {}
        for _ in range(args.repeats):  # interleaved: a noisy neighbour hurts all alike
            for name, write in writers.items():
                started = time.perf_counter()
                write(groups, path)
                times[name].append(time.perf_counter() - started)
                sizes[name] = path.stat().st_size
    for name in writers:
        print(f"{name:20s} {statistics.median(times[name]):.3f} s  "
              f"{sizes[name] / 1e6:.1f} MB  ({args.rows} rows, median of "
              f"{args.repeats})")


if __name__ == "__main__":
    main()

"""Write the subset of VIDUR's operator profiles that dsd ships as package data.

    python scripts/slim_vidur_profiles.py ../shared/gpu-profiles/vidur src/dsd/catalog/vidur

Keeps every mlp.csv (compute/<gpu>/<org>/<model>/) and the intra-node rows of every
all_reduce.csv (network/), with only the columns dsd reads (each operator's median, the
model shape, token count and tensor-parallel degree; for all-reduces the median, GPU counts
and size), values to six significant digits, gzip-compressed; copies VIDUR's LICENSE. The
output is what `dsd experiment gpu-fidelity` and `dsd calibrate latency` read by default.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import shutil
from pathlib import Path

MLP_KEEP = ("n_head", "n_kv_head", "n_embd", "n_expanded_embd", "vocab_size", "use_gated_mlp",
            "num_tokens", "num_tensor_parallel_workers")
ALLREDUCE_KEEP = ("time_stats.all_reduce.median", "num_workers", "size", "devices_per_node",
                  "max_devices_per_node")


def slim(src: Path, dst: Path, keep: list[str], intra_node: bool = False) -> int:
    with src.open(newline="") as fh:
        reader = csv.DictReader(fh)
        rows = [r for r in reader
                if not intra_node or r["num_workers"] == r["devices_per_node"]]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(keep)
    for row in rows:
        writer.writerow([_compact(row[c]) for c in keep])
    dst.parent.mkdir(parents=True, exist_ok=True)
    # mtime=0: the same input gives byte-identical files
    with gzip.GzipFile(dst, "wb", compresslevel=9, mtime=0) as gz:
        gz.write(out.getvalue().encode())
    return len(rows)


def _compact(value: str) -> str:
    try:
        number = float(value)
    except ValueError:
        return value
    return f"{number:.6g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path, help="a VIDUR data/profiling folder")
    parser.add_argument("dst", type=Path, help="output folder")
    args = parser.parse_args()
    total = 0
    for mlp in sorted(args.src.glob("compute/*/*/*/mlp.csv")):
        header = mlp.open().readline().strip().split(",")
        medians = [c for c in header if c.startswith("time_stats.") and c.endswith(".median")]
        rel = mlp.relative_to(args.src)
        total += slim(mlp, args.dst / rel.with_suffix(".csv.gz"), [*medians, *MLP_KEEP])
    for ar in sorted(args.src.glob("network/*/all_reduce.csv")):
        rel = ar.relative_to(args.src)
        total += slim(ar, args.dst / rel.with_suffix(".csv.gz"), list(ALLREDUCE_KEEP),
                      intra_node=True)
    shutil.copy(args.src / "LICENSE", args.dst / "LICENSE")
    size = sum(p.stat().st_size for p in args.dst.rglob("*") if p.is_file())
    print(f"wrote {total} rows to {args.dst} ({size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()

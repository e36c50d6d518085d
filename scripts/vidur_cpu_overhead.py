"""Where the operator model's host overhead per step comes from: fit VIDUR's measured vLLM
CPU overheads (schedule + sampler + prepare inputs + process outputs, medians) as a fixed
cost plus a cost per sequence, per tensor-parallel degree.

    git -C VIDUR show 6d98aa8:data/profiling/a100/cpu_overheads.csv > cpu_overheads.csv
    python scripts/vidur_cpu_overhead.py cpu_overheads.csv
"""

from __future__ import annotations

import argparse
import csv

import numpy as np

PARTS = ("schedule_median", "sampler_e2e_median", "prepare_inputs_e2e_median",
         "process_model_outputs_median")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", help="VIDUR cpu_overheads.csv (milliseconds)")
    args = parser.parse_args()
    with open(args.csv, newline="") as fh:
        rows = list(csv.DictReader(fh))
    batch = np.array([float(r["batch_size"]) for r in rows])
    tp = np.array([int(r["tensor_parallel_degree"]) for r in rows])
    total = np.array([sum(float(r[p]) for p in PARTS) for r in rows])
    for degree in sorted(set(tp)):
        sel = tp == degree
        design = np.vstack([np.ones(sel.sum()), batch[sel]]).T
        (fixed, per_seq), *_ = np.linalg.lstsq(design, total[sel], rcond=None)
        mape = np.mean(np.abs(design @ [fixed, per_seq] / total[sel] - 1))
        print(f"tp={degree}: {fixed:.2f} ms + {per_seq * 1000:.0f} us per sequence "
              f"({sel.sum()} rows, batch {batch[sel].min():.0f}-{batch[sel].max():.0f}, "
              f"MAPE {mape:.1%})")


if __name__ == "__main__":
    main()

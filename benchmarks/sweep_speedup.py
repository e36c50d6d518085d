"""Sweep speedup: a 64-point sweep (examples/sweeps/rtt-gamma.yaml) with 2 workers vs 1.

    python benchmarks/sweep_speedup.py [--repeats 3] [--workers 2] [--duration 60] [--ray]

Runs alternate (1 worker, N workers, then N, 1, ...) so a noisy neighbour hurts both alike;
each run makes a fresh executor, so pool (or Ray) start-up is included, as with `dsd sweep`.
One worker runs the points in this process. Prints the median wall times and the median
of the per-repeat speedups (checking both gave identical metrics), and the CPU-seconds
ratio, which says what the pool costs even when other jobs share the cores.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time
from dataclasses import replace
from pathlib import Path

from dsd.sweep import load_sweep, make_executor, run_points

SWEEP = Path(__file__).resolve().parents[1] / "examples" / "sweeps" / "rtt-gamma.yaml"
WALL = {"wall_time_s", "accepted_tokens_per_wall_s", "peak_rss_mb"}


def timed(points: list, executor: str, workers: int) -> tuple[float, float, list[dict]]:
    """Wall seconds, CPU seconds of this process and its pool workers (not Ray's), rows."""
    before = _cpu()
    started = time.perf_counter()
    with make_executor(executor, workers=workers) as ex:
        table = run_points(points, ex, progress=False)
    wall = time.perf_counter() - started  # the pool is joined: its workers' CPU is counted
    rows = [{k: v for k, v in r.items() if k not in WALL} for r in table.to_pylist()]
    return wall, _cpu() - before, rows


def _cpu() -> float:
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return sum(u.ru_utime + u.ru_stime for u in usage)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--duration", type=float, default=None,
                        help="simulated seconds per point (default: the sweep's 60)")
    parser.add_argument("--ray", action="store_true", help="also time the Ray executor")
    args = parser.parse_args()
    points = load_sweep(SWEEP).points()
    if args.duration:  # heavier points: executor start-up becomes a smaller share
        points = [replace(p, overrides=(*p.overrides, f"simulation.duration_s={args.duration}"))
                  for p in points]
    kinds = [("local", 1), ("local", args.workers)] + ([("ray", args.workers)] if args.ray else [])
    walls: dict[tuple[str, int], list[float]] = {k: [] for k in kinds}
    cpus: dict[tuple[str, int], list[float]] = {k: [] for k in kinds}
    reference = None
    for rep in range(args.repeats):
        for kind in kinds if rep % 2 == 0 else kinds[::-1]:
            wall, cpu, rows = timed(points, *kind)
            walls[kind].append(wall)
            cpus[kind].append(cpu)
            reference = reference or rows
            assert rows == reference, f"{kind} gave different results"
            print(f"  repeat {rep + 1}: {kind[0]} x{kind[1]}: {wall:.2f} s wall, "
                  f"{cpu:.2f} CPU-s", flush=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine: {os.cpu_count()} cores, 1-min load average at the end {load:.1f}")
    base = walls[("local", 1)]
    for kind in kinds[1:]:
        speedups = [b / w for b, w in zip(base, walls[kind], strict=True)]
        print(f"{len(points)}-point sweep: 1 worker {statistics.median(base):.2f} s, "
              f"{kind[0]} {kind[1]} workers {statistics.median(walls[kind]):.2f} s -> "
              f"median speedup {statistics.median(speedups):.2f}x over {args.repeats} repeats "
              "(identical results)")
        if kind[0] == "local":  # contention-proof: the CPU the pool adds (spawn, imports, IPC)
            ratio = statistics.median(cpus[kind]) / statistics.median(cpus[("local", 1)])
            print(f"  CPU-seconds with {kind[1]} workers / with 1: {ratio:.2f} "
                  f"(ideal speedup on idle cores ~ {kind[1] / ratio:.2f}x plus start-up)")


if __name__ == "__main__":
    main()

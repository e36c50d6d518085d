"""Simulator speed: simulated accepted tokens per wall-second and peak RSS on paper-large.

    python benchmarks/sim_speed.py [--sim-seconds 600] [--repeats 3] [--baseline DIR]
                                   [--set dotted.path=value ...]

Each repeat runs in a fresh process (so peak RSS is per run) pinned to one core when the
platform allows; prints the median. Goals: >= 300k accepted tokens/s with the default
latency model, < 300 MB RSS for 10 simulated minutes.

`--baseline DIR` (another dsd checkout, e.g. a worktree of main) runs this tree (A) and
DIR (B) alternately, A B A B ..., each from its own source tree, and prints both medians
and the median of the per-pair ratios A/B: on a machine whose speed drifts, only
interleaved pairs compare.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

CHILD = """
import json, os, resource, sys
if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
from dsd.sim import simulate
r = simulate("examples/paper-large.yaml", keep_requests=False,
             overrides=["simulation.duration_s=%s", "simulation.warmup_s=0",
                        "simulation.drain=false", *%r])
s = r.summary
use = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"tok_s": s["accepted_tokens_per_wall_s"], "wall": s["wall_time_s"],
                  "events": s["events_processed"], "accepted": s["accepted_tokens"],
                  "cpu_s": use.ru_utime + use.ru_stime, "rss_mb": use.ru_maxrss / 1024}))
"""


def run_once(root: str, sim_seconds: float, sets: list[str]) -> dict:
    env = {**os.environ, "PYTHONPATH": os.path.join(root, "src")}
    out = subprocess.run([sys.executable, "-c", CHILD % (sim_seconds, sets)], cwd=root,
                         capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sim-seconds", type=float, default=600.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline", default=None, metavar="DIR",
                        help="another dsd checkout to compare against, interleaved")
    parser.add_argument("--set", action="append", default=[], metavar="PATH=VALUE",
                        help="scenario overrides for both trees")
    args = parser.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    runs, base = [], []
    for _ in range(args.repeats):
        runs.append(run_once(root, args.sim_seconds, args.set))
        if args.baseline:
            base.append(run_once(os.path.abspath(args.baseline), args.sim_seconds, args.set))
    tok_s = statistics.median(r["tok_s"] for r in runs)
    rss = max(r["rss_mb"] for r in runs)
    print(f"paper-large, {args.sim_seconds:.0f} simulated s, {args.repeats} runs: "
          f"median {tok_s:,.0f} accepted tokens/wall-s "
          f"(events/s {statistics.median(r['events'] / r['wall'] for r in runs):,.0f}), "
          f"peak RSS {rss:.0f} MB")
    if base:
        # CPU seconds of the whole child (imports included) are less sensitive than wall
        # time to other jobs on a shared machine.
        per_cpu = statistics.median(a["accepted"] / a["cpu_s"] / (b["accepted"] / b["cpu_s"])
                                    for a, b in zip(runs, base, strict=True))
        print(f"accepted tokens per CPU-second of the process, this tree / baseline, median "
              f"of {len(base)} pairs: {per_cpu:.3f}")
        ratio = statistics.median(a["tok_s"] / b["tok_s"] for a, b in zip(runs, base, strict=True))
        print(f"baseline {args.baseline}: median {statistics.median(b['tok_s'] for b in base):,.0f}"
              f" accepted tokens/wall-s; this tree / baseline, median of {len(base)} "
              f"interleaved pairs: {ratio:.3f}")
        print("pairs (this, baseline): " + ", ".join(
            f"({a['tok_s']:,.0f}, {b['tok_s']:,.0f})" for a, b in zip(runs, base, strict=True)))


if __name__ == "__main__":
    main()

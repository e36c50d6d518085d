"""Simulator speed: simulated accepted tokens per wall-second and peak RSS on paper-large.

    python benchmarks/sim_speed.py [--sim-seconds 600] [--repeats 3]

Each repeat runs in a fresh process (so peak RSS is per run) pinned to one core when the
platform allows; prints the median. Goals: >= 150k accepted tokens/s, < 300 MB RSS for 10
simulated minutes.
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
                        "simulation.drain=false"])
s = r.summary
print(json.dumps({"tok_s": s["accepted_tokens_per_wall_s"], "wall": s["wall_time_s"],
                  "events": s["events_processed"], "accepted": s["accepted_tokens"],
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sim-seconds", type=float, default=600.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    runs = []
    for _ in range(args.repeats):
        out = subprocess.run([sys.executable, "-c", CHILD % args.sim_seconds], cwd=root,
                             capture_output=True, text=True, check=True)
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    tok_s = statistics.median(r["tok_s"] for r in runs)
    rss = max(r["rss_mb"] for r in runs)
    print(f"paper-large, {args.sim_seconds:.0f} simulated s, {args.repeats} runs: "
          f"median {tok_s:,.0f} accepted tokens/wall-s "
          f"(events/s {statistics.median(r['events'] / r['wall'] for r in runs):,.0f}), "
          f"peak RSS {rss:.0f} MB")


if __name__ == "__main__":
    main()

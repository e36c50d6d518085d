"""AWC inference speed: microseconds per window decision (features + WC-DNN + stabilizer)
with the packaged weights, for the plain-Python and NumPy backends. Goal: < 20 us.

    python benchmarks/awc_inference.py [--weights FILE]
"""

from __future__ import annotations

import argparse

from dsd.awc.bench import run_bench


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=None)
    parser.add_argument("-n", type=int, default=5000)
    args = parser.parse_args()
    results = run_bench(args.weights, args.n)
    for backend, r in results.items():
        print(f"{backend:6s} {r['median_us']:.2f} us/decision (network alone "
              f"{r['network_only_us']:.2f} us)")
    best = min(r["median_us"] for r in results.values())
    print(f"awc decision: {best:.2f} us (goal < 20 us: {'met' if best < 20 else 'NOT met'})")


if __name__ == "__main__":
    main()

"""`dsd awc bench`: microseconds per AWC decision (features + WC-DNN + stabilizer).

Times `AwcController.next_gamma` on a fixed set of realistic WindowStates, for each
inference backend, and reports the median of several repeats (the machine is shared, so
single timings drift).
"""

from __future__ import annotations

import random
import statistics
import time
from pathlib import Path

from dsd.policies.awc import BACKENDS, AwcWindow, raw_features
from dsd.policies.window import WindowState


def sample_states(n: int = 1000, seed: int = 0) -> list[WindowState]:
    rng = random.Random(seed)
    return [WindowState(rng.uniform(0, 2), rng.uniform(0.3, 1.0), rng.uniform(0.001, 0.1),
                        rng.uniform(0, 0.01), rng.uniform(0.02, 0.12), rng.uniform(0, 0.03),
                        rng.choice((1, 2, 3, 4, 5, 6, 8))) for _ in range(n)]


def time_decisions(backend: str, weights: str | Path | None = None, n: int = 2000,
                   repeats: int = 7) -> dict[str, float]:
    """Median and best microseconds per decision, over `repeats` passes of `n` decisions."""
    controller = AwcWindow(weights=weights, backend=backend)()
    states = sample_states(n)
    controller.next_gamma(states[0])  # warm caches
    per_call = []
    for _ in range(repeats):
        start = time.perf_counter()
        for s in states:
            controller.next_gamma(s)
        per_call.append((time.perf_counter() - start) / n * 1e6)
    net = controller.net  # the network alone, for the breakdown
    xs = [raw_features(s) for s in states]
    start = time.perf_counter()
    for x in xs:
        net.logits(x)
    net_us = (time.perf_counter() - start) / n * 1e6
    return {"median_us": statistics.median(per_call), "best_us": min(per_call),
            "network_only_us": net_us}


def run_bench(weights: str | Path | None = None, n: int = 2000,
              repeats: int = 7) -> dict[str, dict[str, float]]:
    return {b: time_decisions(b, weights, n, repeats) for b in BACKENDS}

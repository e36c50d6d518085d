"""Scenarios for AWC: the training grid and the held-out evaluation cases, as config dicts.

A scenario fixes everything but the window policy: dataset, hardware mix, number of edge
drafts per target server (load), RTT and jitter, think time of the closed-loop users, seed.
All scenarios are closed loop (each edge device is one user who thinks, then asks again),
like the DSD paper's large cluster, so throughput responds to latency and vice versa.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass
from typing import Any

DATASETS = ("gsm8k", "cnndm", "humaneval")

# Hardware mixes: (draft pools as (share, gpu, model)), (target pools as (count, gpu, tp,
# model)). Target counts are per "unit"; drafts = drafts_per_server x total servers.
DraftPools = tuple[tuple[float, str, str], ...]
TargetPools = tuple[tuple[int, str, int, str], ...]
HARDWARE: dict[str, tuple[DraftPools, TargetPools]] = {
    # The DSD paper's pairs, scaled: A40/V100 edges, A100/A6000/H100 servers.
    "paper-mix": (((0.5, "A40", "llama-2-7b"), (0.5, "V100", "qwen-7b")),
                  ((2, "A100", 4, "llama-2-70b"), (1, "A6000", 4, "llama-2-70b"),
                   (1, "H100", 4, "qwen-72b"))),
    "a40-a100": (((1.0, "A40", "llama-2-7b"),), ((2, "A100", 4, "llama-2-70b"),)),
    "v100-h100": (((1.0, "V100", "qwen-7b"),), ((2, "H100", 4, "qwen-72b"),)),
    # A small, fast draft: speculation is cheap, so larger windows pay off.
    "4090-h100": (((1.0, "RTX4090", "llama-3.2-1b"),), ((2, "H100", 4, "llama-3-70b"),)),
    "l4-a100": (((1.0, "L4", "qwen2.5-1.5b"),), ((2, "A100", 4, "qwen2.5-72b"),)),
    # The paper's edge GPUs with small drafts, and slow embedded edges with 7B drafts: the
    # draft-speed range the claims' sensitivity sweeps cover.
    "small-drafts": (((0.5, "A40", "qwen2.5-1.5b"), (0.5, "V100", "qwen2.5-0.5b")),
                     ((2, "A100", 4, "qwen2.5-72b"), (1, "H100", 4, "qwen2.5-72b"))),
    "orin-a100": (((1.0, "Jetson-AGX-Orin", "llama-2-7b"),), ((2, "A100", 4, "llama-2-70b"),)),
}


@dataclass(frozen=True)
class Scenario:
    sid: str
    dataset: str
    hardware: str
    drafts_per_server: float
    rtt_ms: tuple[float, float]
    jitter_ms: float
    think_s: float
    seed: int
    duration_s: float = 120.0
    warmup_s: float = 20.0
    tpot_slo_ms: float = 80.0
    ttft_slo_ms: float = 1000.0
    max_batch: int = 32  # verify jobs per batch
    alpha: float | None = None  # per-token acceptance (None: the dataset's default)
    acceptance_spread: float = 0.1  # easy and hard prompts within one dataset
    # "closed": each device is a user who thinks, then asks again; "bursty": open-loop
    # gamma arrivals (cv 3) at the closed-loop users' nominal rate, 1 / (think + 5 s)
    arrival: str = "closed"

    @property
    def servers(self) -> int:
        return sum(t[0] for t in HARDWARE[self.hardware][1])

    @property
    def drafts(self) -> int:
        pools = HARDWARE[self.hardware][0]
        total = max(len(pools), round(self.drafts_per_server * self.servers))
        return sum(max(1, round(share * total)) for share, _, _ in pools)

    def config(self, window: dict[str, Any]) -> dict[str, Any]:
        """The scenario YAML (as a dict) with the given window policy."""
        drafts_spec, targets_spec = HARDWARE[self.hardware]
        total = max(len(drafts_spec), round(self.drafts_per_server * self.servers))
        drafts = [{"count": max(1, round(share * total)), "gpu": gpu, "model": model}
                  for share, gpu, model in drafts_spec]
        targets = [{"count": n, "gpu": gpu, "tp": tp, "model": model}
                   for n, gpu, tp, model in targets_spec]
        return {
            "name": self.sid, "seed": self.seed, "mode": "distributed",
            "cluster": {"drafts": drafts, "targets": targets},
            "network": {"rtt_ms": list(self.rtt_ms), "jitter_ms": self.jitter_ms},
            "workload": {"dataset": self.dataset, "arrival": self.arrival_spec()},
            "acceptance": {"spread": self.acceptance_spread,
                           **({"alpha": self.alpha} if self.alpha is not None else {})},
            "policies": {"router": "jsq", "batcher": {"name": "fifo",
                                                      "max_batch": self.max_batch},
                         "window": window},
            "slo": {"ttft_ms": self.ttft_slo_ms, "tpot_ms": self.tpot_slo_ms},
            "simulation": {"duration_s": self.duration_s, "warmup_s": self.warmup_s},
        }

    def arrival_spec(self) -> dict[str, Any]:
        if self.arrival == "closed":
            return {"type": "closed_loop", "concurrency": 1, "think_time_s": self.think_s}
        if self.arrival == "bursty":
            return {"type": "gamma", "rate_per_device": 1.0 / (self.think_s + 5.0), "cv": 3.0}
        raise ValueError(f"unknown arrival {self.arrival!r} (closed, bursty)")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Scenario:
        return cls(**{**d, "rtt_ms": tuple(d["rtt_ms"])})


def training_scenarios(n: int, seed: int = 0, duration_s: float = 120.0) -> list[Scenario]:
    """`n` scenarios drawn at random over every dataset and hardware mix: log-uniform RTT
    1-150 ms with a per-link spread of 0-100% around it, log-uniform load and think time,
    verify batch caps 16-256, and acceptance from the dataset default or 0.55-0.95 with a
    session spread of 0-0.25 (the space `dsd experiment paper` sweeps). Seeds start at
    10_000 so they never coincide with evaluation seeds."""
    rng = random.Random(f"awc-train:{seed}")
    out = []
    for i in range(n):
        dataset = DATASETS[i % len(DATASETS)]
        hardware = rng.choice(sorted(HARDWARE))
        rtt = math.exp(rng.uniform(math.log(1.0), math.log(150.0)))
        spread = rng.uniform(0.0, 1.0)
        dps = math.exp(rng.uniform(math.log(5.0), math.log(80.0)))
        think = math.exp(rng.uniform(math.log(0.5), math.log(40.0)))
        alpha = None if rng.random() < 0.5 else round(rng.uniform(0.55, 0.95), 3)
        out.append(Scenario(
            sid=f"train-{seed}-{i:04d}", dataset=dataset, hardware=hardware,
            drafts_per_server=round(dps, 2),
            rtt_ms=(round(rtt * (1 - spread / 2), 2), round(rtt * (1 + spread / 2), 2)),
            jitter_ms=round(0.1 * rtt, 2), think_s=round(think, 2),
            seed=10_000 + seed * 1000 + i, duration_s=duration_s,
            max_batch=rng.choice((16, 32, 64, 256)), alpha=alpha,
            acceptance_spread=round(rng.uniform(0.0, 0.25), 3)))
    return out


# The 12 evaluation cases: the paper's 3 datasets x 4 edge-draft counts (200/400/600/1000 on
# the paper's 20-server cluster), run on a 1/5-scale copy of that cluster (4 servers, so
# 40/80/120/200 drafts) with the paper's network (RTT 10-30 ms) and 18 s think time.
EVAL_DRAFT_COUNTS = (200, 400, 600, 1000)
EVAL_SCALE = 5


def evaluation_scenarios(seed: int = 1, duration_s: float = 300.0,
                         warmup_s: float = 30.0) -> list[Scenario]:
    out = []
    for dataset in DATASETS:
        for paper_drafts in EVAL_DRAFT_COUNTS:
            out.append(Scenario(
                sid=f"{dataset}-{paper_drafts}", dataset=dataset, hardware="paper-mix",
                drafts_per_server=paper_drafts / EVAL_SCALE / 4, rtt_ms=(10.0, 30.0),
                jitter_ms=2.0, think_s=18.0, seed=seed, duration_s=duration_s,
                warmup_s=warmup_s))
    return out


def adaptation_scenarios(seed: int = 1, duration_s: float = 300.0,
                         warmup_s: float = 30.0) -> list[Scenario]:
    """Operating points where the best window changes within one run, on the paper-mix
    cluster (GSM8K, 30 drafts per server, 6 s think: a loaded cloud): links from 1 to 150
    ms, bursty open-loop arrivals, sessions whose acceptance differs widely, and all
    three together. Seeds as the evaluation cases (never in training)."""
    common = dict(dataset="gsm8k", hardware="paper-mix", drafts_per_server=30.0,
                  think_s=6.0, seed=seed, duration_s=duration_s, warmup_s=warmup_s)
    return [
        Scenario(sid="het-rtt", rtt_ms=(1.0, 150.0), jitter_ms=5.0, **common),
        Scenario(sid="bursty", rtt_ms=(10.0, 30.0), jitter_ms=2.0, arrival="bursty",
                 **common),
        Scenario(sid="mixed-acceptance", rtt_ms=(10.0, 30.0), jitter_ms=2.0,
                 acceptance_spread=0.3, **common),
        Scenario(sid="all-three", rtt_ms=(1.0, 150.0), jitter_ms=5.0, arrival="bursty",
                 acceptance_spread=0.3, **common),
    ]

"""The settings the claims are evaluated in, and the parameters the papers leave unsaid.

`dsd_large` is the plausible configuration closest to the DSD paper's large-cluster
setting (examples/paper-closest.yaml holds the same scenario): 20 cloud servers of four
GPUs (A100, A6000 and H100), 600 edge drafts (300 A40 + 300 V100), link RTTs 10-30 ms.
What the paper does not say (load, arrival process, batch caps, draft speed, acceptance)
is fixed here and swept by the axes below.
"""

from __future__ import annotations

import copy
from typing import Any

from dsd.experiments.paper.claims import Axis

# Unstated by the paper, chosen here (and swept as axes):
THINK_TIME_S = 18.0  # closed-loop users; ~25 req/s of Default throughput at 600 drafts
MAX_BATCH = 32  # jobs per verify step; decode steps take vLLM's 256 sequences (engine)


def dsd_large(quick: bool, dataset: str = "gsm8k") -> dict[str, Any]:
    """The DSD large cluster (a tenth of it, and a minute of simulated time, when quick)."""
    scale = 0.1 if quick else 1.0
    drafts = [("edge-a40", 300, "A40", "llama-2-7b"), ("edge-v100", 300, "V100", "qwen-7b")]
    targets = [("cloud-a100", 8, "A100", "llama-2-70b"), ("cloud-a6000", 6, "A6000",
                                                          "llama-2-70b"),
               ("cloud-h100", 6, "H100", "qwen-72b")]
    return {
        "name": "paper-closest", "seed": 0, "mode": "distributed",
        "cluster": {
            "drafts": [{"name": n, "count": max(1, round(c * scale)), "gpu": g, "model": m}
                       for n, c, g, m in drafts],
            "targets": [{"name": n, "count": max(1, round(c * scale)), "gpu": g, "tp": 4,
                         "model": m} for n, c, g, m in targets],
        },
        "network": {"rtt_ms": [10, 30], "jitter_ms": 2, "bandwidth_mbps": 100},
        "workload": {"dataset": dataset, "arrival": {"type": "closed_loop", "concurrency": 1,
                                                     "think_time_s": THINK_TIME_S}},
        "policies": {"router": "random", "batcher": {"name": "fifo", "max_batch": MAX_BATCH},
                     "window": {"name": "static", "gamma": 4}},
        "slo": {"ttft_ms": 1000, "tpot_ms": 80},
        "simulation": ({"duration_s": 60, "warmup_s": 10, "drain": False} if quick else
                       {"duration_s": 240, "warmup_s": 30, "drain": False}),
    }


def with_policies(scenario: dict[str, Any], **policies: Any) -> dict[str, Any]:
    out = copy.deepcopy(scenario)
    for family, spec in policies.items():
        if family == "batcher" and isinstance(spec, str):
            spec = {**out["policies"]["batcher"], "name": spec}
        out["policies"][family] = spec
    return out


# ------------------------------------------------------------------ axis edits


def set_think_time(cfg: dict[str, Any], think_s: float) -> None:
    cfg["workload"]["arrival"] = {"type": "closed_loop", "concurrency": 1,
                                  "think_time_s": float(think_s)}


def set_arrival(cfg: dict[str, Any], kind: str) -> None:
    """Closed-loop users, or open-loop arrivals at about the closed-loop users' offered
    rate (one request per think time + a nominal 5 s of service), Poisson or bursty."""
    arrival = cfg["workload"]["arrival"]
    think = arrival.get("think_time_s", THINK_TIME_S)
    rate = 1.0 / (think + 5.0)
    if kind == "closed":
        return
    if kind == "poisson":
        cfg["workload"]["arrival"] = {"type": "poisson", "rate_per_device": rate}
    elif kind == "bursty":
        cfg["workload"]["arrival"] = {"type": "gamma", "rate_per_device": rate, "cv": 3.0}
    else:
        raise ValueError(f"unknown arrival kind {kind!r}")


def set_caps(cfg: dict[str, Any], caps: tuple[int, int]) -> None:
    """(jobs per verify step, sequences per decode step): the batcher's cap, and the
    engine's max_num_seqs that caps cloud-only decoding."""
    verify, decode = caps
    cfg["policies"]["batcher"]["max_batch"] = int(verify)
    cfg.setdefault("engine", {})["max_num_seqs"] = int(decode)


CAPS = ((32, 256), (16, 16), (32, 32), (64, 64), (256, 256))
CAP_NAMES = ("32 / 256 (vLLM)", "16 / 16", "32 / 32", "64 / 64", "256 / 256")


def set_rtt(cfg: dict[str, Any], rtt: tuple[float, float]) -> None:
    low, high = rtt
    cfg["network"]["rtt_ms"] = [low, high] if high != low else low
    cfg["network"]["jitter_ms"] = round(0.1 * (low + high) / 2, 2)


def set_alpha(cfg: dict[str, Any], alpha: float | None) -> None:
    if alpha is not None:
        cfg["acceptance"] = {**cfg.get("acceptance", {}), "alpha": float(alpha)}


# Edge draft hardware: (gpu, draft model) per edge pool, and the targets' model family.
DRAFTS: dict[str, tuple[tuple[tuple[str, str], ...], dict[str, str]]] = {
    "7B on A40/V100": ((("A40", "llama-2-7b"), ("V100", "qwen-7b")), {}),
    "7B on RTX 4090": ((("RTX4090", "llama-2-7b"), ("RTX4090", "qwen-7b")), {}),
    "7B on Jetson Orin": ((("Jetson-AGX-Orin", "llama-2-7b"),
                           ("Jetson-AGX-Orin", "qwen-7b")), {}),
    "0.5-1.5B on A40/V100": ((("A40", "qwen2.5-1.5b"), ("V100", "qwen2.5-0.5b")),
                             {"llama-2-70b": "qwen2.5-72b", "qwen-72b": "qwen2.5-72b"}),
}


def set_drafts(cfg: dict[str, Any], name: str) -> None:
    """Swap the edge GPUs and draft models (and the targets' family when the drafts need
    another tokenizer)."""
    pools, target_map = DRAFTS[name]
    for pool, (gpu, model) in zip(cfg["cluster"]["drafts"], pools * 2, strict=False):
        pool["gpu"], pool["model"] = gpu, model
    for pool in cfg["cluster"]["targets"]:
        pool["model"] = target_map.get(pool["model"], pool["model"])
        pool.pop("draft_model", None)


def dsd_axes(quick: bool) -> list[Axis]:
    """The unspecified parameters of the DSD setting, paper-closest value first."""
    if quick:
        return [Axis("think_time_s", "think time (s), closed loop", (18.0, 4.0),
                     set_think_time)]
    return [
        Axis("think_time_s", "think time (s), closed loop", (36.0, 18.0, 9.0, 4.0, 1.0),
             set_think_time),
        Axis("arrival", "arrival process", ("closed", "poisson", "bursty"), set_arrival,
             ("closed loop", "Poisson", "gamma cv 3")),
        Axis("caps", "batch caps: verify jobs / decode seqs", CAPS, set_caps, CAP_NAMES),
        Axis("rtt_ms", "RTT (ms)", ((5.0, 5.0), (10.0, 30.0), (50.0, 50.0), (5.0, 100.0)),
             set_rtt, ("5", "10-30", "50", "5-100")),
        Axis("alpha", "acceptance per token", (None, 0.6, 0.7, 0.9), set_alpha,
             ("per dataset", "0.6", "0.7", "0.9")),
        Axis("drafts", "edge drafts", tuple(DRAFTS), set_drafts),
    ]

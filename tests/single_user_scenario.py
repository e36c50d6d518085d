"""A scenario for checking a latency model step by step: one edge device, one server,
one closed-loop user, RTT 10 ms, no acceptance, γ 2, three requests of 64/32 tokens (every
round yields one token, so step costs show up one for one in TPOT)."""

from __future__ import annotations


def single_user_scenario(latency: dict, model: str, name: str = "table") -> dict:
    """Both pools run `model` with the given `latency` spec."""
    pool = {"count": 1, "gpu": "cpu", "model": model, "latency": latency}
    return {
        "name": name, "seed": 1,
        "cluster": {"drafts": [dict(pool)], "targets": [dict(pool)]},
        "network": {"rtt_ms": 10, "bandwidth_mbps": 1e9},
        "workload": {"dataset": "synthetic", "prompt": {"fixed": 64},
                     "output": {"fixed": 32},
                     "arrival": {"type": "closed_loop", "concurrency": 1}},
        "acceptance": {"alpha": 0.0},
        "policies": {"window": {"name": "static", "gamma": 2}},
        "simulation": {"duration_s": 5, "max_requests": 3},
    }

"""The simulator side of sim-vs-real: the scenario that mirrors one measured runtime
configuration, and the metrics both sides are compared on.

Metrics per configuration, from per-request rows (the shared request-table columns):
median TTFT, median TPOT, and throughput = output tokens / (last finish - first arrival).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from dsd.calibrate.realrun import RealConfig
from dsd.errors import DsdError


def scenario(cfg: RealConfig, draft: str, target: str, profile: str,
             acceptance: Mapping[str, Any], network_overhead_ms: float,
             catalogs: Iterable[str] = (), max_batch: int = 8, seed: int = 0,
             setup_ms: float = 0.0,
             replay: list[list[list[int]]] | None = None,
             round_host_ms: float = 0.0) -> dict[str, Any]:
    """A simulator config with the same models, window, load, link, edge host work and
    batcher; `replay` gives each session the measured per-round acceptance of the request it
    stands for."""
    latency = {"type": "table", "path": str(profile)}
    return {
        "name": f"sim-vs-real-{cfg.label}",
        "seed": seed,
        "mode": "distributed",
        "catalog": [str(c) for c in catalogs],
        "cluster": {
            "drafts": [{"count": 1, "gpu": "cpu", "model": draft, "latency": latency,
                        "round_host_ms": round_host_ms}],
            "targets": [{"count": 1, "gpu": "cpu", "model": target, "latency": latency,
                         "draft_model": draft}],
        },
        # The edge measures the gRPC + event-loop cost of a round trip on top of the
        # emulated delay; it is part of the link the simulator must model.
        "network": {"rtt_ms": cfg.rtt_ms + network_overhead_ms, "jitter_ms": 0.0,
                    "bandwidth_mbps": 100000.0, "setup_ms": setup_ms},
        "workload": {"dataset": "synthetic", "prompt": {"fixed": cfg.prompt_tokens},
                     "output": {"fixed": cfg.output_tokens},
                     "arrival": {"type": "closed_loop", "concurrency": cfg.concurrency,
                                 "think_time_s": 0.0}},
        "acceptance": {"table": [dict(acceptance)],
                       **({"replay": replay} if replay is not None else {})},
        "policies": {"router": "jsq",
                     "batcher": {"name": "fifo", "max_batch": max_batch, "max_wait_ms": 0.0},
                     "window": {"name": "static", "gamma": cfg.gamma}},
        "simulation": {"duration_s": 1e6, "max_requests": cfg.requests, "drain": True},
    }


def link_costs(record: Mapping[str, Any]) -> tuple[float, float]:
    """(link time of a round, session set-up) in ms for one measured request. The link is
    a round trip minus the verifier's own time; the set-up is what the first token cost
    beyond one such round trip and the verifier's prefill: stream opening plus the edge's
    own work before sending and after receiving."""
    if "round_link_ms" not in record or "open_server_ms" not in record:
        raise DsdError(f"request {record.get('request_id', '?')}: no link timings "
                       "(round_link_ms, open_server_ms); measure again with this dsd")
    link = record["round_link_ms"]
    return link, max(0.0, record["ttft_ms"] - record["open_server_ms"] - link)


def edge_host_ms(records: Iterable[Mapping[str, Any]],
                  draft_step_ms: Callable[[int], float]) -> float:
    """The edge's host work per round beyond drafting (ms), median over requests: a round's
    wall time (first to last token, over the rounds) minus its link, the verifier's time and
    the profiled drafting (`draft_step_ms(context)` per drafted token, at the mid-output
    context). It is the event loop, message and thread hand-off work that shares the edge's
    core with the drafting."""
    values = []
    for r in records:
        rounds = r.get("rounds") or 0
        if rounds < 1 or "round_link_ms" not in r:
            continue
        round_ms = (r["e2e_ms"] - r["ttft_ms"]) / rounds
        context = r["prompt_tokens"] + r["output_tokens"] // 2
        drafting = r["drafted_tokens"] / rounds * draft_step_ms(context)
        values.append(round_ms - r["round_link_ms"] - r["round_server_ms"] - drafting)
    if not values:
        raise DsdError("no measured rounds to derive the edge's host work from")
    return max(0.0, statistics.median(values))


def metrics(rows: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """Median TTFT / TPOT (ms) and output-token throughput (tokens/s) of request rows with
    arrival_s, ttft_ms, tpot_ms, e2e_ms, output_tokens."""
    rows = list(rows)
    if not rows:
        return {"ttft_ms": float("nan"), "tpot_ms": float("nan"), "throughput": float("nan")}
    start = min(r["arrival_s"] for r in rows)
    end = max(r["arrival_s"] + r["e2e_ms"] / 1000.0 for r in rows)
    tokens = sum(r["output_tokens"] for r in rows)
    return {
        "ttft_ms": statistics.median(r["ttft_ms"] for r in rows),
        "tpot_ms": statistics.median(r["tpot_ms"] for r in rows),
        "throughput": tokens / (end - start) if end > start else float("nan"),
    }


def simulate_config(config: dict[str, Any], seeds: int = 3) -> dict[str, float]:
    """Simulate with several seeds (acceptance is sampled) and average the metrics."""
    from dsd.sim import simulate

    per_seed = []
    for s in range(seeds):
        result = simulate(config, seed=config.get("seed", 0) + s)
        per_seed.append(metrics(result.requests.to_pylist()))
    return {k: statistics.fmean(m[k] for m in per_seed) for k in per_seed[0]}


def ape(sim: float, real: float) -> float:
    """Absolute percentage error of the simulator against the measurement (a fraction)."""
    return abs(sim - real) / real if real else float("nan")

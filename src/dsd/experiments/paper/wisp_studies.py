"""The WISP paper's claims (arXiv 2601.11652): capacity and goodput of WISP against
centralized serving and SLED, in WISP's evaluation setting, with its unstated parameters
swept."""

from __future__ import annotations

import copy
from typing import Any

from dsd.experiments.paper.claims import (
    Axis,
    Claim,
    Point,
    Rows,
    Study,
    pick,
    ratio,
    relative_range,
)
from dsd.experiments.paper.runners import capacity_row
from dsd.experiments.paper.setting import set_alpha, set_rtt
from dsd.experiments.wisp_capacity import SYSTEMS, scenario


def wisp_base(quick: bool) -> dict[str, Any]:
    """WISP's setting (examples/wisp.yaml): RTX 4090 edge PCs with Qwen3-0.6B drafts, one
    A100 80GB verifying with Qwen3-32B, Poisson 0.02 req/s per device, SLO TTFT 1 s and
    TPOT 60 ms. The system's policies are applied per job."""
    cfg = scenario("WISP", 60.0 if quick else 240.0)
    for key in ("mode", "policies"):
        cfg.pop(key)
    return cfg


def wisp_points(base: dict[str, Any], quick: bool) -> list[Point]:
    base = copy.deepcopy(base)
    cap_scale = base.pop("_batch_scale", 1.0)  # set by the batch-cap axis
    points = []
    for system, spec in SYSTEMS.items():
        cfg = copy.deepcopy(base)
        cfg.update(copy.deepcopy(spec))
        batcher = cfg["policies"]["batcher"]
        if "max_batch" in batcher:  # the verify batch cap (speculative systems)
            batcher["max_batch"] = max(1, round(batcher["max_batch"] * cap_scale))
        if "max_num_seqs" in cfg.get("engine", {}):  # centralized serving's decode cap
            cfg["engine"]["max_num_seqs"] = max(1, round(cfg["engine"]["max_num_seqs"]
                                                         * cap_scale))
        cfg["name"] = f"wisp-claims-{system}"
        job = {"scenario": cfg, "tol": 0.1 if quick else 0.03,
               "max_evals": 8 if quick else 20}
        points.append(({"system": system}, job))
    return points


def _capacity_ratio(other: str):
    def effect(rows: Rows) -> float | None:
        return ratio(pick(rows, system="WISP")["capacity"], pick(rows, system=other)["capacity"])
    return effect


def _goodput_ratio(other: str):
    def effect(rows: Rows) -> float | None:
        return ratio(pick(rows, system="WISP")["peak_goodput_tps"],
                     pick(rows, system=other)["peak_goodput_tps"])
    return effect


def set_edge(cfg: dict[str, Any], name: str) -> None:
    gpu, model = EDGES[name]
    for pool in cfg["cluster"]["drafts"]:
        pool["gpu"], pool["model"] = gpu, model


EDGES = {"Qwen3-0.6B on RTX 4090": ("RTX4090", "qwen3-0.6b"),
         "Qwen3-0.6B on Jetson Orin": ("Jetson-AGX-Orin", "qwen3-0.6b"),
         "Qwen3-1.7B on RTX 4090": ("RTX4090", "qwen3-1.7b")}


def set_batch_caps(cfg: dict[str, Any], scale: float) -> None:
    """Scale every system's batch cap (the papers give WISP's and the baselines' caps only
    loosely); `wisp_points` applies it to each system's own cap."""
    cfg["_batch_scale"] = scale


def wisp_axes(quick: bool) -> list[Axis]:
    if quick:
        return [Axis("rtt_ms", "RTT (ms)", ((10.0, 40.0), (60.0, 60.0)), set_rtt,
                     ("10-40", "60"))]
    return [
        Axis("edge", "edge device and draft", tuple(EDGES), set_edge),
        Axis("rtt_ms", "RTT (ms)", ((5.0, 5.0), (10.0, 40.0), (60.0, 60.0), (5.0, 150.0)),
             set_rtt, ("5", "10-40", "60", "5-150")),
        Axis("arrival", "arrival process", ("poisson", "bursty"),
             lambda cfg, kind: _open_loop(cfg, kind), ("Poisson", "gamma cv 3")),
        Axis("alpha", "acceptance per token", (None, 0.6, 0.7, 0.9), set_alpha,
             ("per dataset", "0.6", "0.7", "0.9")),
        Axis("batch_caps", "batch caps (x each system's)", (0.5, 1.0, 4.0), set_batch_caps),
    ]


def _open_loop(cfg: dict[str, Any], kind: str) -> None:
    rate = cfg["workload"]["arrival"]["rate_per_device"]
    if kind == "bursty":
        cfg["workload"]["arrival"] = {"type": "gamma", "rate_per_device": rate, "cv": 3.0}


WISP = Study(
    key="wisp", title="WISP vs centralized serving and SLED (WISP §6)",
    setting="WISP's setting: RTX 4090 edges with Qwen3-0.6B, one A100 80GB with Qwen3-32B, "
            "Poisson 0.02 req/s per device, SLO TTFT 1 s / TPOT 60 ms, capacity at 90% "
            "attainment",
    base=wisp_base, points=wisp_points, runner=capacity_row, axes=wisp_axes,
    claims=[
        Claim("wisp_capacity_vs_centralized", "WISP abstract",
              "capacity up to 2.1x that of centralized serving", 2.1, relative_range(2.1),
              "x", _capacity_ratio("centralized"), null=1.0,
              mechanism="centralized capacity is set by KV memory and decode batches; "
                        "WISP's by verify batches, which speculation makes token-efficient"),
        Claim("wisp_capacity_vs_sled", "WISP abstract", "capacity up to 4.1x that of SLED",
              4.1, relative_range(4.1), "x", _capacity_ratio("SLED"), null=1.0,
              mechanism="SLED's fixed window and deadline-blind batches waste drafting and "
                        "let slow batches miss TPOT deadlines"),
        Claim("wisp_goodput_vs_centralized", "WISP abstract",
              "goodput up to 1.94x that of centralized serving (peak over loads)", 1.94,
              relative_range(1.94), "x", _goodput_ratio("centralized"), null=1.0,
              mechanism="goodput peaks where each system still meets its SLOs, so it "
                        "follows capacity"),
        Claim("wisp_goodput_vs_sled", "WISP abstract",
              "goodput up to 3.7x that of SLED (peak over loads)", 3.7, relative_range(3.7),
              "x", _goodput_ratio("SLED"), null=1.0,
              mechanism="goodput peaks where each system still meets its SLOs, so it "
                        "follows capacity"),
    ],
)

WISP_STUDIES = [WISP]

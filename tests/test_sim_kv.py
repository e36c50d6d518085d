"""KV memory reserved step by step: the KV in use never exceeds the server's capacity;
sessions that do not fit are preempted (recompute or swap) and still finish."""

import pytest
import yaml

from dsd.catalog import load_catalog
from dsd.perf import Deployment, kv_capacity_tokens
from dsd.sim import simulate

# An A100 with just enough memory for Llama-2-70B at tp 4 plus ~600 tokens of KV.
CLONE = {"tflops": 312, "memory_gb": 38.377, "mem_bw_gbps": 2039, "interconnect_gbps": 230,
         "compute_eff": 0.6, "mem_eff": 0.75, "step_overhead_ms": 1.5,
         "allreduce_latency_us": 10}


@pytest.fixture(scope="module")
def clone_catalog(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("kv") / "catalog.yaml"
    path.write_text(yaml.safe_dump({"gpus": {"a100-clone": CLONE}}))
    return str(path)


def capacity(catalog: str) -> int:
    cat = load_catalog([catalog])
    return kv_capacity_tokens(Deployment(cat.gpu("a100-clone"), cat.model("llama-2-70b"), 4),
                              0.1)


def tight(catalog: str, mode: str = "distributed", **extra) -> dict:
    """8 drafts, prompt 128, output 256 against ~600 tokens of KV."""
    cfg = {"name": "kv", "mode": mode, "catalog": [catalog],
           "cluster": {"drafts": [{"count": 8, "gpu": "A40", "model": "llama-2-7b"}],
                       "targets": [{"count": 1, "gpu": "a100-clone", "tp": 4,
                                    "model": "llama-2-70b", "draft_model": "llama-2-7b"}]},
           "workload": {"dataset": "synthetic", "prompt": {"fixed": 128},
                        "output": {"fixed": 256},
                        "arrival": {"type": "closed_loop", "concurrency": 1,
                                    "think_time_s": 0.5}},
           "simulation": {"duration_s": 30}}
    cfg.update(extra)
    return simulate(cfg, keep_requests=False).summary


def test_clone_capacity_is_the_reported_repro(clone_catalog) -> None:
    assert capacity(clone_catalog) == 601


@pytest.mark.parametrize("mode", ["distributed", "fused", "cloud_only"])
def test_kv_in_use_never_exceeds_capacity_and_preempted_sessions_finish(
        clone_catalog, mode: str) -> None:
    s = tight(clone_catalog, mode)
    assert s["peak_kv_used"] <= capacity(clone_catalog)
    assert s["peak_kv_occupancy"] <= 1.0
    assert s["preemptions"] > 0
    assert s["recomputed_tokens"] > 0 and s["swapped_tokens"] == 0
    assert s["requests_unfinished"] == 0 and s["requests_completed"] > 0
    assert s["output_tokens"] == 256 * s["requests_completed"]


def test_swap_preemption_moves_kv_instead_of_recomputing(clone_catalog) -> None:
    swap = tight(clone_catalog, engine={"preemption": "swap"})
    assert swap["peak_kv_used"] <= capacity(clone_catalog)
    assert swap["preemptions"] > 0 and swap["swapped_tokens"] > 0
    assert swap["recomputed_tokens"] == 0
    assert swap["requests_unfinished"] == 0
    assert swap["output_tokens"] == 256 * swap["requests_completed"]


def test_kv_budget_caps_memory_below_what_the_gpu_leaves() -> None:
    s = simulate("examples/quickstart.yaml", keep_requests=False, overrides=[
        "simulation.duration_s=40", "engine.kv_budget_tokens=700"]).summary
    assert s["peak_kv_used"] <= 700
    assert s["preemptions"] > 0
    assert s["requests_unfinished"] == 0


def test_a_request_longer_than_the_kv_cache_is_rejected(clone_catalog) -> None:
    s = tight(clone_catalog, workload={
        "dataset": "synthetic", "prompt": {"fixed": 400}, "output": {"fixed": 256},
        "arrival": {"type": "closed_loop", "concurrency": 1, "think_time_s": 0.5}})
    assert s["requests_completed"] == 0
    assert s["requests_rejected"] > 0
    assert s["slo_attainment"] == 0.0
    assert s["peak_kv_used"] == 0


def test_one_session_peaks_at_its_prompt_plus_output() -> None:
    # One request at a time: each verify reserves gamma + 1 and the verdict frees the
    # rejected drafts, so KV peaks at the last verify, prompt + output - 1 tokens.
    s = simulate("examples/single-pair.yaml", keep_requests=False,
                 overrides=["simulation.duration_s=60"]).summary
    assert s["peak_kv_used"] == 128 + 256 - 1
    assert s["preemptions"] == 0


def test_swapping_costs_time_on_the_host_link(clone_catalog) -> None:
    fast = tight(clone_catalog, engine={"preemption": "swap"})
    slow = tight(clone_catalog, engine={"preemption": "swap", "swap_gbps": 0.05})
    # ~300 tokens x 320 KiB over 4 x 0.05 GB/s: ~0.5 s per swap, out and back in.
    assert slow["e2e_ms_mean"] > fast["e2e_ms_mean"] + 500

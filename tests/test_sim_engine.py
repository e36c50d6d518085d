"""The serving engine's limits: sequences per decode step, per verify step (the batcher's
max_batch), query tokens per step with chunked prefill."""

import pytest

from dsd.catalog import load_catalog
from dsd.errors import ConfigError
from dsd.perf import Deployment, make_predictor
from dsd.sim import simulate
from dsd.sim.run import simulate as run_simulate


def crowded(mode: str, *overrides: str) -> dict:
    """The rtt-sweep's cloud: 120 closed-loop users (2 s think) on one 4xA100 server."""
    cfg = {"name": "crowded", "mode": mode,
           "cluster": {"drafts": [{"count": 120, "gpu": "A40", "model": "llama-2-7b"}],
                       "targets": [{"count": 1, "gpu": "A100", "tp": 4,
                                    "model": "llama-2-70b", "draft_model": "llama-2-7b"}]},
           "workload": {"dataset": "gsm8k", "arrival": {"type": "closed_loop",
                                                        "think_time_s": 2.0}},
           "policies": {"batcher": {"name": "fifo", "max_batch": 32}},
           "simulation": {"duration_s": 40, "warmup_s": 10, "drain": False}}
    return simulate(cfg, overrides=list(overrides), keep_requests=False).summary


def test_cloud_only_decoding_is_not_capped_by_the_verify_batch() -> None:
    s = crowded("cloud_only")
    assert s["mean_batch_size"] > 32  # vLLM's 256 sequences per step, not max_batch
    capped = crowded("cloud_only", "engine.max_num_seqs=16")
    assert capped["mean_batch_size"] <= 16
    assert capped["throughput_rps"] < s["throughput_rps"]


def test_verify_steps_keep_the_batchers_cap() -> None:
    s = crowded("distributed", "policies.batcher.max_batch=8")
    assert 4 < s["mean_batch_size"] <= 8
    s = crowded("distributed", "engine.max_num_seqs=4")
    assert s["mean_batch_size"] <= 4


def prefill_ttft(*overrides: str) -> float:
    return simulate("examples/single-pair.yaml", keep_requests=False, overrides=[
        "mode=cloud_only", "workload.prompt.fixed=1000", "workload.output.fixed=8",
        "simulation.duration_s=30", *overrides]).summary["ttft_ms_p50"]


def test_chunked_prefill_runs_a_long_prompt_in_budget_sized_steps() -> None:
    cat = load_catalog()
    target = make_predictor().bind(Deployment(cat.gpu("A100"), cat.model("llama-2-70b"), 4))

    def chunk_s(q: int, c: int) -> float:
        return target.step_s(1, q, c, q * c + q * (q + 1) // 2)

    # single-pair's link: 20 ms RTT at 1000 Mbps, 64-byte headers, 4 bytes per token.
    net_s = 0.020 + ((64 + 1000 * 4) + (64 + 4)) * 8 / 1e9
    chunks = sum(chunk_s(q, c) for q, c in ((256, 0), (256, 256), (256, 512), (232, 768)))
    assert prefill_ttft("engine.max_num_batched_tokens=256") == pytest.approx(
        1000 * (net_s + chunks), rel=1e-4)
    # Without chunking a prompt over the budget runs whole, alone.
    whole = prefill_ttft("engine.max_num_batched_tokens=256", "engine.chunked_prefill=false")
    assert whole == pytest.approx(1000 * (net_s + chunk_s(1000, 0)), rel=1e-4)
    assert prefill_ttft() == pytest.approx(whole, rel=1e-6)  # 2048 tokens: one step


def test_token_budget_must_hold_one_verify() -> None:
    with pytest.raises(ConfigError, match="engine.max_num_batched_tokens"):
        run_simulate("examples/quickstart.yaml", overrides=["engine.max_num_batched_tokens=8"])

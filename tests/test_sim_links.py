"""One link model for every message: prompts, verdicts, and the tokens a server streams to
the user in fused and cloud-only modes all pay RTT/2 + bytes/bandwidth + jitter + loss, and
tokens still reach the user in order."""

import pytest

from dsd.sim import simulate

# 64-byte header + 4 bytes per token id (examples/single-pair.yaml's network defaults).
PROMPT_BYTES = 64 + 128 * 4
TOKEN_BYTES = 64 + 4


def run(mode: str, *overrides: str) -> dict:
    return simulate("examples/single-pair.yaml", keep_requests=False, overrides=[
        f"mode={mode}", "workload.output.fixed=16", "simulation.duration_s=300",
        *overrides]).summary


@pytest.mark.parametrize("mode", ["fused", "cloud_only"])
def test_bandwidth_delays_the_streamed_first_token(mode: str) -> None:
    fast = run(mode, "network.bandwidth_mbps=1000")
    slow = run(mode, "network.bandwidth_mbps=0.05")
    # The prompt goes up and the first token comes down, each at 0.05 Mbps.
    transfer_ms = (PROMPT_BYTES + TOKEN_BYTES) * 8 / 0.05e6 * 1e3
    fast_ms = (PROMPT_BYTES + TOKEN_BYTES) * 8 / 1000e6 * 1e3
    assert slow["ttft_ms_p50"] - fast["ttft_ms_p50"] == pytest.approx(
        transfer_ms - fast_ms, abs=0.5)


@pytest.mark.parametrize("mode", ["fused", "cloud_only"])
def test_loss_hits_every_streamed_message(mode: str) -> None:
    clean = run(mode)
    lossy = run(mode, "network.loss=0.2", "network.retransmit_ms=200")
    # Two messages before the first token (prompt up, token down), each retransmitted
    # 0.2 / 0.8 = 0.25 times on average: +100 ms (only the prompt paid it before: +50 ms).
    extra = lossy["ttft_ms_mean"] - clean["ttft_ms_mean"]
    assert 75 < extra < 125
    assert lossy["tpot_ms_p99"] > clean["tpot_ms_p99"] + 20


def test_streamed_tokens_arrive_in_order_under_jitter() -> None:
    r = simulate("examples/single-pair.yaml", overrides=[
        "mode=cloud_only", "workload.output.fixed=2", "network.jitter_ms=40",
        "simulation.duration_s=120"])
    ttft = r.requests.column("ttft_ms").to_pylist()
    e2e = r.requests.column("e2e_ms").to_pylist()
    assert len(ttft) > 100
    # A later token never overtakes an earlier one, however the jitter falls.
    assert all(b >= a for a, b in zip(ttft, e2e, strict=True))
    assert r.summary["tpot_ms_p50"] >= 0

"""The simulator against closed forms: no contention, constant acceptance, static gamma."""

import pytest

from dsd.catalog import load_catalog
from dsd.config import load_config
from dsd.perf import Deployment, make_predictor
from dsd.sim import simulate


def single_pair(alpha: float, gamma: int, **extra: str) -> dict:
    overrides = [f"acceptance.alpha={alpha}", f"policies.window.gamma={gamma}",
                 *[f"{k}={v}" for k, v in extra.items()]]
    return simulate("examples/single-pair.yaml", overrides=overrides).summary


@pytest.mark.parametrize(("alpha", "gamma"), [(0.8, 4), (0.6, 2), (0.9, 8)])
def test_tokens_per_round_match_closed_form(alpha: float, gamma: int) -> None:
    # A long output makes the shorter final round negligible.
    s = single_pair(alpha, gamma, **{"workload.output.fixed": 4000, "simulation.duration_s": 600})
    expected = (1 - alpha ** (gamma + 1)) / (1 - alpha)
    assert s["mean_acceptance_length"] == pytest.approx(expected, rel=0.02)
    assert s["acceptance_rate"] == pytest.approx(
        alpha * (1 - alpha**gamma) / (1 - alpha) / gamma, rel=0.02)


def test_tpot_is_round_time_over_tokens_per_round() -> None:
    alpha, gamma, out = 0.8, 4, 4000
    s = single_pair(alpha, gamma, **{"workload.output.fixed": out, "simulation.duration_s": 600})
    cfg = load_config("examples/single-pair.yaml")
    cat = load_catalog()
    latency = make_predictor()  # the scenario's pools use the default model
    draft = latency.bind(Deployment(cat.gpu("A40"), cat.model("llama-2-7b")))
    target = latency.bind(Deployment(cat.gpu("A100"), cat.model("llama-2-70b"), 4))
    # Mean context over the request: prompt (128) + half the output.
    ctx = 128 + out // 2
    net = cfg.network
    one_way_up = net.rtt_ms / 2000 + (net.header_bytes + gamma * net.bytes_per_token) * 8 / (
        net.bandwidth_mbps * 1e6)
    one_way_down = net.rtt_ms / 2000 + (net.header_bytes + 4 * net.bytes_per_token) * 8 / (
        net.bandwidth_mbps * 1e6)
    round_s = (gamma * draft.step_s(1, 1, ctx, ctx + 1) + one_way_up
               + target.step_s(1, gamma + 1, ctx, (gamma + 1) * (ctx + gamma + 1)) + one_way_down)
    expected_tpot_ms = 1000 * round_s / ((1 - alpha ** (gamma + 1)) / (1 - alpha))
    assert s["tpot_ms_p50"] == pytest.approx(expected_tpot_ms, rel=0.03)


@pytest.mark.parametrize("mode", ["distributed", "cloud_only"])
def test_session_setup_adds_to_ttft_alone(mode: str) -> None:
    def run(setup_ms: float) -> dict:
        return simulate("examples/single-pair.yaml", overrides=[
            f"mode={mode}", f"network.setup_ms={setup_ms}", "workload.output.fixed=64",
            "simulation.duration_s=120"]).summary

    base, setup = run(0.0), run(40.0)
    assert setup["ttft_ms_p50"] == pytest.approx(base["ttft_ms_p50"] + 40.0, abs=0.5)
    assert setup["tpot_ms_p50"] == pytest.approx(base["tpot_ms_p50"], rel=1e-6)


def test_edge_round_host_work_adds_to_every_round() -> None:
    """One user, alpha 0: every round yields one token, so the edge's host work per round
    adds to TPOT one for one and leaves TTFT alone."""
    def run(host_ms: float) -> dict:
        return simulate("examples/single-pair.yaml", overrides=[
            "acceptance.alpha=0", f"cluster.drafts.0.round_host_ms={host_ms}",
            "workload.output.fixed=64", "simulation.duration_s=120"]).summary

    base, host = run(0.0), run(7.0)
    assert host["tpot_ms_p50"] == pytest.approx(base["tpot_ms_p50"] + 7.0, abs=0.05)
    assert host["ttft_ms_p50"] == pytest.approx(base["ttft_ms_p50"], rel=1e-6)


def test_cloud_only_tpot_is_one_decode_step() -> None:
    s = simulate("examples/single-pair.yaml", overrides=[
        "mode=cloud_only", "workload.output.fixed=512", "simulation.duration_s=120"]).summary
    cat = load_catalog()
    target = make_predictor().bind(Deployment(cat.gpu("A100"), cat.model("llama-2-70b"), 4))
    ctx = 128 + 256
    assert s["tpot_ms_p50"] == pytest.approx(1000 * target.step_s(1, 1, ctx, ctx + 1), rel=0.01)
    assert s["drafted_tokens"] == 0


def test_littles_law_holds_for_in_flight_requests() -> None:
    s = simulate("examples/quickstart.yaml", overrides=[
        "simulation.warmup_s=0", "simulation.duration_s=300"], keep_requests=False).summary
    # L = lambda * W over the whole run (drained, so every arrival completed).
    lam = s["requests_completed"] / s["sim_time_s"]
    assert s["requests_unfinished"] == 0
    assert s["mean_in_flight"] == pytest.approx(lam * s["e2e_ms_mean"] / 1000, rel=0.03)


def test_acceptance_one_accepts_every_token() -> None:
    s = single_pair(1.0, 4, **{"workload.output.fixed": 101})
    assert s["acceptance_rate"] == pytest.approx(1.0)
    # 1 prefill token + 20 rounds of 5 tokens.
    assert s["mean_acceptance_length"] == pytest.approx(5.0)

"""Simulator support for the policy library: per-request modes, early stopping with the
draft-confidence model, verification interference, the SLO batcher's hooks."""

import pytest

from dsd.sim import simulate

QUICK = ["simulation.duration_s=40", "simulation.warmup_s=5"]


def test_static_runs_have_zero_interference_alone_and_positive_when_batched() -> None:
    solo = simulate("examples/single-pair.yaml", overrides=["simulation.duration_s=60"]).summary
    assert solo["verify_interference_ms_mean"] == pytest.approx(0.0)
    busy = simulate("examples/quickstart.yaml", overrides=QUICK).summary
    assert busy["verify_interference_ms_mean"] > 0
    assert busy["mean_drafted_gamma"] == pytest.approx(4.0, abs=0.2)  # last rounds shorter


@pytest.mark.parametrize("window", ["wisp", "specdecpp"])
def test_early_stopping_cuts_waste_and_keeps_acceptance_lossless(window: str) -> None:
    base = ["acceptance.alpha=0.7", "workload.output.fixed=2000", "simulation.duration_s=300"]
    static = simulate("examples/single-pair.yaml",
                      overrides=[*base, "policies.window={name: static, gamma: 8}"]).summary
    early = simulate("examples/single-pair.yaml",
                     overrides=[*base, f"policies.window={{name: {window}, gamma_max: 8}}"]
                     ).summary
    assert early["mean_drafted_gamma"] < static["mean_drafted_gamma"] - 1
    assert early["wasted_draft_s"] < 0.5 * static["wasted_draft_s"]
    assert early["tpot_ms_p50"] < static["tpot_ms_p50"]
    # Position-wise acceptance is the model's alpha whatever the window length.
    for rate in early["acceptance_by_position"][:4]:
        assert rate == pytest.approx(0.7, abs=0.03)


def test_auto_mode_picks_per_device_by_rtt() -> None:
    near = simulate("examples/auto-mode.yaml",
                    overrides=[*QUICK, "network.rtt_ms=[5, 20]"]).summary
    far = simulate("examples/auto-mode.yaml",
                   overrides=[*QUICK, "network.rtt_ms=[90, 150]"]).summary
    mixed = simulate("examples/auto-mode.yaml", overrides=QUICK)
    assert near["fused_request_frac"] == 0.0
    assert far["fused_request_frac"] == 1.0
    modes = set(mixed.requests.column("mode").to_pylist())
    assert modes == {"distributed", "fused"}


def test_slo_batcher_and_lab_run_and_keep_the_workload() -> None:
    runs = {b: simulate("examples/quickstart.yaml",
                        overrides=[*QUICK, f"policies.batcher.name={b}"])
            for b in ("fifo", "lab", "slo")}
    n = runs["fifo"].summary["requests_completed"]
    for r in runs.values():
        assert r.summary["requests_completed"] == n
        assert r.summary["requests_unfinished"] == 0


def test_new_routers_run_in_the_simulator() -> None:
    for router in ("round-robin", "least-work", "p2c", "rtt-aware"):
        s = simulate("examples/paper-large.yaml", overrides=[
            "simulation.duration_s=20", "simulation.warmup_s=0", f"policies.router={router}",
            "cluster.drafts.0.count=30", "cluster.drafts.1.count=30"]).summary
        assert s["requests_completed"] > 0, router


def test_baseline_configs_load_and_run() -> None:
    for name in ("wisp", "sled", "centralized", "dsd"):
        s = simulate(f"examples/{name}.yaml", overrides=[
            "simulation.duration_s=20", "simulation.warmup_s=0"]).summary
        assert s["requests_completed"] > 0, name


def test_waiting_behind_a_prefill_counts_as_interference() -> None:
    # One verify per step (max_batch 1): verifies never share a step with anything, so
    # what interference they get is the time they wait in the queue behind prefills.
    base = ["policies.batcher.max_batch=1", "workload.arrival.concurrency=3",
            "workload.prompt.fixed=2000", "workload.output.fixed=64",
            "simulation.duration_s=60"]
    s = simulate("examples/single-pair.yaml", overrides=base).summary
    assert s["verify_interference_ms_mean"] > 1.0
    alone = simulate("examples/single-pair.yaml", overrides=[
        *base, "workload.arrival.concurrency=1"]).summary
    assert alone["verify_interference_ms_mean"] == pytest.approx(0.0)


def test_lab_mixed_runs_prefills_with_verifies() -> None:
    runs = {p: simulate("examples/quickstart.yaml", overrides=[
        *QUICK, "workload.dataset=cnndm",
        f"policies.batcher={{name: lab, max_batch: 32, prefill: {p}}}"]).summary
        for p in ("separate", "mixed")}
    assert runs["mixed"]["requests_completed"] == runs["separate"]["requests_completed"]
    # Mixed steps are fewer and fuller: each prefill rides in a verify step.
    assert runs["mixed"]["mean_batch_size"] > runs["separate"]["mean_batch_size"]

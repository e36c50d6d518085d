"""AWC pipeline end to end on a tiny dataset: scenarios -> oracle labels -> training ->
weights the `awc` window policy loads and runs in the simulator. Seconds, not minutes."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from dsd.awc.dataset import generate, label_scenario
from dsd.awc.objective import closed_loop_throughput, objective
from dsd.awc.scenarios import Scenario, evaluation_scenarios, training_scenarios
from dsd.policies.awc import FEATURE_NAMES

GAMMAS = (1, 4)


def tiny(sid: str, dataset: str, seed: int) -> Scenario:
    return Scenario(sid=sid, dataset=dataset, hardware="a40-a100", drafts_per_server=3,
                    rtt_ms=(10.0, 20.0), jitter_ms=1.0, think_s=1.0, seed=seed,
                    duration_s=12.0, warmup_s=2.0)


def test_objective_is_response_time_law() -> None:
    summary = {"e2e_ms_mean": 2000.0, "slo_attainment": 0.5}
    assert closed_loop_throughput(summary, users=10, think_s=3.0) == pytest.approx(2.0)
    assert objective(summary, users=10, think_s=3.0) == pytest.approx(1.0)
    assert objective({"e2e_ms_mean": None}, 10, 3.0) == 0.0


def test_training_and_evaluation_scenarios_are_disjoint() -> None:
    train = training_scenarios(40)
    evals = evaluation_scenarios()
    assert len(evals) == 12 and {s.dataset for s in evals} == {"gsm8k", "cnndm", "humaneval"}
    assert not {s.seed for s in train} & {s.seed for s in evals}
    keys = {(s.dataset, s.hardware, s.drafts_per_server, s.rtt_ms, s.think_s) for s in evals}
    assert not keys & {(s.dataset, s.hardware, s.drafts_per_server, s.rtt_ms, s.think_s)
                       for s in train}
    assert Scenario.from_dict(train[0].to_dict()) == train[0]


def test_label_scenario_records_features_under_every_gamma() -> None:
    cols = label_scenario((tiny("t0", "gsm8k", 5).to_dict(), GAMMAS, 30))
    assert set(cols["run_gamma"]) == set(GAMMAS)
    assert len(set(cols["oracle_gamma"])) == 1 and cols["oracle_gamma"][0] in GAMMAS
    best = max(GAMMAS, key=lambda g: cols[f"obj_g{g}"][0])
    assert cols["oracle_gamma"][0] == best
    assert all(p > 0 for p in cols["prev_gamma"])  # only sessions with a verdict


def test_dataset_train_and_use(tmp_path) -> None:
    torch = pytest.importorskip("torch")
    del torch
    from dsd.awc.train import TrainConfig, train
    from dsd.policies import WINDOWS
    from dsd.sim import simulate

    scenarios = [tiny(f"s{i}", ds, i) for i, ds in enumerate(["gsm8k", "cnndm", "humaneval"] * 2)]
    out = generate(scenarios, tmp_path / "d.parquet", gammas=GAMMAS, points_per_run=25,
                   workers=1, progress=False)
    table = pq.read_table(out)
    assert set(FEATURE_NAMES) <= set(table.column_names) and table.num_rows > 0
    part = tmp_path / "d.parquet.parts" / "s0.parquet"
    stamp = part.stat().st_mtime_ns
    generate(scenarios, out, gammas=GAMMAS, workers=1, progress=False)  # resumes: no rerun
    assert part.stat().st_mtime_ns == stamp

    cfg = TrainConfig(hidden=4, epochs=3, patience=2, val_frac=0.2, test_frac=0.2)
    report = train(out, tmp_path / "w.npz", cfg, log=lambda *_: None)
    assert report.gammas == GAMMAS and "train" in report.metrics
    assert 0.0 <= report.metrics["train"]["mean_regret"] <= 1.0
    assert (tmp_path / "w.json").exists()

    factory = WINDOWS.create("awc", weights=str(tmp_path / "w.npz"))
    config = tiny("use", "gsm8k", 9).config({"name": "awc", "weights": str(tmp_path / "w.npz")})
    assert factory().next_gamma.__self__.net.gammas == GAMMAS
    summary = simulate(config, keep_requests=False).summary
    assert summary["requests_completed"] > 0

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
    # A part from an older feature definition (no version stamp) is re-simulated, not reused.
    stale = tmp_path / "d.parquet.parts" / "s1.parquet"
    pq.write_table(pq.read_table(stale).replace_schema_metadata(None), stale)
    generate(scenarios, out, gammas=GAMMAS, points_per_run=25, workers=1, progress=False)
    assert (pq.read_schema(stale).metadata or {}).get(b"dsd_awc_features_version") == b"2"
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


def test_training_floors_the_std_of_a_constant_feature(tmp_path) -> None:
    """A feature constant in training (rtt_std = 0, as with jitter-free links) gets the floor
    std, so a plausible unseen value (5 ms of jitter) still gives finite logits and a valid
    gamma."""
    pytest.importorskip("torch")
    import numpy as np
    import pyarrow as pa

    from dsd.awc.train import TrainConfig, train
    from dsd.policies import WindowState
    from dsd.policies.awc import FEATURE_STD_FLOOR, AwcWindow, raw_features

    rng = np.random.default_rng(0)
    n_sc, per = 12, 40
    cols: dict[str, list] = {k: [] for k in ("sid", "dataset", "hardware", *FEATURE_NAMES,
                                              "obj_g1", "obj_g4")}
    for k in range(n_sc):
        good = k % 2  # half the scenarios prefer gamma=4
        for _ in range(per):
            cols["sid"].append(f"s{k}")
            cols["dataset"].append("gsm8k")
            cols["hardware"].append("a40-a100")
            acc = rng.uniform(0.6, 0.9) if good else rng.uniform(0.1, 0.4)
            st = WindowState(rng.uniform(0, 0.5), acc, 0.02, 0.0, rng.uniform(0.03, 0.06),
                             rng.uniform(0, 0.01), int(rng.choice(GAMMAS)))
            for name, v in zip(FEATURE_NAMES, raw_features(st), strict=True):
                cols[name].append(v)
            cols["obj_g1"].append(1.0 if not good else 0.9)
            cols["obj_g4"].append(1.0 if good else 0.9)
    pq.write_table(pa.table(cols), tmp_path / "d.parquet")
    train(tmp_path / "d.parquet", tmp_path / "w.npz",
          TrainConfig(hidden=4, epochs=2, patience=2), log=lambda *_: None)
    std = np.load(tmp_path / "w.npz")["std"]
    i = FEATURE_NAMES.index("log_rtt_std_ms")
    assert std[i] == pytest.approx(FEATURE_STD_FLOOR[i])
    assert (std >= np.asarray(FEATURE_STD_FLOOR) - 1e-12).all()

    window = AwcWindow(weights=str(tmp_path / "w.npz"))
    jitter = WindowState(0.2, 0.7, 0.02, 0.005, 0.05, 0.005, 4)  # 5 ms of RTT jitter
    logits = np.asarray(window.net.logits(raw_features(jitter)))
    assert np.isfinite(logits).all() and np.abs(logits).max() < 1e4
    assert window().next_gamma(jitter) in GAMMAS


def test_training_without_held_out_scenarios_says_so(tmp_path) -> None:
    """Two scenarios of one (dataset, hardware) group cannot be split: training warns and
    labels the early-stopping figure as the training regret, not "val regret"."""
    pytest.importorskip("torch")
    import pyarrow as pa

    from dsd.awc.train import TrainConfig, train

    rows = 20
    cols = {"sid": ["a"] * rows + ["b"] * rows, "dataset": ["gsm8k"] * 2 * rows,
            "hardware": ["a40-a100"] * 2 * rows,
            **{name: [0.1 * (i % 7) for i in range(2 * rows)] for name in FEATURE_NAMES},
            "obj_g1": [1.0, 0.9] * rows, "obj_g4": [0.9, 1.0] * rows}
    pq.write_table(pa.table(cols), tmp_path / "d.parquet")
    lines: list[str] = []
    report = train(tmp_path / "d.parquet", tmp_path / "w.npz",
                   TrainConfig(hidden=4, epochs=2, patience=2), log=lines.append)
    assert report.scenarios == {"train": 2, "val": 0, "test": 0}
    assert any(line.startswith("warning: no validation or test scenarios") for line in lines)
    assert not any("val regret" in line for line in lines)
    assert any("train regret" in line for line in lines)
    assert set(report.metrics) == {"train"}

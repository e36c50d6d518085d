"""`dsd profile` and `--validate` on tiny random models; the sim-vs-real smoke run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

pytestmark = pytest.mark.runtime

GRID = ["--batch-sizes", "1,2", "--contexts", "16,64", "--gammas", "2,4", "--prompts", "8,32",
        "--repeats", "3", "--warmup", "1"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    from dsd.runtime.tiny import write_tiny_pair

    root = tmp_path_factory.mktemp("tiny")
    write_tiny_pair(root, seed=0)
    return root


@pytest.fixture(scope="module")
def profile(tiny, tmp_path_factory) -> Path:
    from dsd.cli.main import main

    out = tmp_path_factory.mktemp("prof") / "tiny.csv"
    assert main(["profile", "--model", str(tiny / "target"), "--name", "tiny-target",
                 *GRID, "--out", str(out), "--quiet"]) == 0
    return out


def test_profile_writes_a_valid_table(profile):
    from dsd.perf.table import read_profile

    prof = read_profile(profile)
    meta = prof.metadata
    for key in ("format", "device", "dtype", "torch", "transformers", "date", "cpu",
                "threads", "model.tiny-target", "statistic"):
        assert meta.get(key), key
    assert meta["device"] == "cpu" and meta["dtype"] == "float32"
    ops = {r["op"] for r in prof.rows}
    assert ops == {"prefill", "decode", "verify"}
    assert len(prof.rows) == 2 * 2 + 2 * 2 * 3
    for r in prof.rows:
        assert r["model"] == "tiny-target" and r["repeats"] == 3
        assert 0 < r["p10_ms"] <= r["latency_ms"] <= r["p90_ms"]


def test_profile_feeds_the_table_predictor(profile, tiny):
    from dsd.calibrate.hfspec import model_spec
    from dsd.catalog import load_catalog
    from dsd.perf import Deployment, make_predictor

    hw = Deployment(load_catalog().gpu("cpu"), model_spec(tiny / "target", "tiny-target"))
    step = make_predictor({"type": "table", "path": str(profile)}).bind(hw)
    assert 0 < step.step_s(2, 6, 80, 0) < 1.0


def test_validate_reports_an_error_figure(profile, tiny, tmp_path, capsys):
    from dsd.cli.main import main

    report = tmp_path / "v.json"
    assert main(["profile", "--validate", str(profile), "--model", str(tiny / "target"),
                 "--name", "tiny-target", "--repeats", "3", "--warmup", "1",
                 "--report", str(report)]) == 0
    printed = capsys.readouterr().out
    assert "table MAPE" in printed and "all" in printed
    data = json.loads(report.read_text())
    assert data["points"] > 0
    assert 0 <= data["mape_table"] < 10 and data["mape_roofline"] >= 0
    assert all(r["measured_ms"] > 0 for r in data["rows"])


def test_profile_errors_are_one_line(tiny, tmp_path, capsys):
    from dsd.cli.main import main

    assert main(["profile", "--model", str(tmp_path / "none"), "--out",
                 str(tmp_path / "p.csv")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["profile", "--model", str(tiny / "target"), "--batch-sizes", "x",
                 "--out", str(tmp_path / "p.csv")]) == 2
    assert "--batch-sizes" in capsys.readouterr().err


@pytest.mark.slow
def test_sim_vs_real_quick(tmp_path, monkeypatch):
    import dsd.experiments.sim_vs_real  # noqa: F401  (registers the experiment)
    from dsd.experiments.registry import run_experiment

    monkeypatch.setenv("DSD_SIM_VS_REAL_MODELS", "tiny")
    run_experiment("sim-vs-real", quick=True, out=tmp_path, echo=False)
    summary = json.loads((tmp_path / "summary.json").read_text())
    for key in ("mape_ttft", "mape_tpot", "mape_throughput"):
        assert 0 <= summary[key] < 5  # a fraction; the accuracy figure lives in the docs
    assert (tmp_path / "results.csv").read_text().count("\n") == 1 + 8
    assert (tmp_path / "profile.csv").is_file() and (tmp_path / "acceptance.yaml").is_file()
    assert (tmp_path / "parity.png").is_file()

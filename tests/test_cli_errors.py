"""Mistakes a new user makes get one line that names what is wrong, never Python internals."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dsd.cli.main import main
from dsd.config import load_config
from dsd.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "examples" / "quickstart.yaml")
SHORT = ["--set", "simulation.duration_s=20", "--set", "simulation.warmup_s=2"]


def _error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    return err


def test_a_folder_instead_of_a_scenario(capsys):
    assert main(["simulate", str(ROOT / "examples")]) == 2
    assert "is a folder; give a scenario YAML file" in _error(capsys)


def test_unknown_modes_name_the_valid_ones(capsys, tmp_path):
    assert main(["simulate", QUICK, "--modes", "distributed,fuzed", "--out",
                 str(tmp_path / "r")]) == 2
    err = _error(capsys)
    assert "--modes: 'fuzed' is not one of 'distributed', 'fused', 'cloud_only', 'auto'" in err
    assert not (tmp_path / "r").exists()  # checked before the first mode ran
    with pytest.raises(ConfigError, match=r"^mode: 'x' is not one of 'distributed'"):
        load_config(QUICK, ["mode=x"])


def test_switching_policy_by_name_keeps_only_parameters_it_takes():
    cfg = load_config(QUICK, ["policies.window.name=awc"])  # quickstart says static, gamma 4
    assert cfg.policies.window.name == "awc" and cfg.policies.window.params == {}
    cfg = load_config(QUICK, ["policies.batcher.name=lab"])  # max_batch means the same there
    assert cfg.policies.batcher.params["max_batch"] == 32
    cfg = load_config(QUICK, ["policies.window.name=dynamic", "policies.window.large=6"])
    assert cfg.policies.window.params == {"large": 6}


def test_a_parameter_the_policy_does_not_take_is_named(tmp_path):
    data = yaml.safe_load(Path(QUICK).read_text())
    data["policies"]["window"] = {"name": "awc", "gamma": 4}
    with pytest.raises(ConfigError, match=r"^policies\.window: window 'awc' takes no "
                                          r"parameter 'gamma' \(it takes: weights, "):
        load_config(data)


def test_empty_traces_are_refused(capsys, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(ConfigError, match="has no requests"):
        load_config(QUICK, ["workload.arrival={type: trace, path: " + str(empty) + "}"])
    out = tmp_path / "t.jsonl"
    assert main(["trace", "gsm8k", "--limit", "0", "--out", str(out)]) == 2
    assert "no prompts to trace (--limit 0); nothing written" in _error(capsys)
    assert not out.exists()


def test_a_run_that_completes_nothing_warns(capsys, tmp_path):
    assert main(["simulate", QUICK, *SHORT, "--set", "workload.arrival.rate_per_device=1e-6",
                 "--quiet", "--out", str(tmp_path / "r")]) == 0
    err = _error(capsys)
    assert err.startswith("dsd simulate: warning: distributed: no request completed")


def test_the_table_fallback_warning_prints_once_in_one_line(capsys, tmp_path):
    profile = ROOT / "profiles" / "qwen2.5-coder-0.5b-cpu.csv"
    scenario = tmp_path / "table.yaml"
    scenario.write_text(yaml.safe_dump({
        "name": "table",
        "cluster": {"drafts": [{"count": 2, "gpu": "cpu", "model": "qwen2.5-coder-0.5b"}],
                    "targets": [{"count": 1, "gpu": "cpu", "model": "qwen2.5-coder-0.5b",
                                 "latency": {"type": "table", "path": str(profile)}}]},
        # CNN/DM prompts (~660 tokens) are past the profile's 256-token prefill grid.
        "workload": {"dataset": "cnndm", "arrival": {"type": "poisson", "rate": 0.05}},
        "simulation": {"duration_s": 60, "warmup_s": 2}}))
    assert main(["simulate", str(scenario), "--quiet", "--out", str(tmp_path / "r")]) == 0
    err = _error(capsys)
    assert err.startswith("dsd simulate: warning: latency table ") and "outside" in err

"""Scenario configs: every example validates; bad configs fail with one line naming the field."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dsd.cli.main import main
from dsd.config import apply_override, dump_config, load_config
from dsd.errors import ConfigError

EXAMPLES = sorted(Path("examples").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_validates(path: Path) -> None:
    config = load_config(path)
    assert config.cluster.drafts and config.cluster.targets
    # The run folder's config.yaml reads back as the same scenario, policies included.
    again = load_config(yaml.safe_load(dump_config(config)))
    assert again == config and load_config(config) == config
    assert again.policies.window.params == config.policies.window.params


def test_required_examples_exist() -> None:
    names = {p.name for p in EXAMPLES}
    assert {"quickstart.yaml", "single-pair.yaml", "paper-large.yaml", "fused.yaml",
            "cloud-only.yaml"} <= names


@pytest.mark.parametrize(("override", "message"), [
    ("cluster.drafts.0.gpux=A40", "cluster.drafts[0].gpux: unknown key"),
    ("network.rtt_ms=-5", "network.rtt_ms: rtt_ms must be >= 0"),
    ("network.rtt_ms=[30, 10]", "network.rtt_ms: rtt_ms range [30.0, 10.0] is reversed"),
    ("cluster.drafts.0.gpu=A41", "cluster.drafts[0].gpu: unknown GPU 'A41'"),
    ("cluster.targets.0.count=many", "cluster.targets[0].count: expected int, got 'many'"),
    ("cluster.targets.0.count=0", "cluster.targets[0].count: expected int >= 1, got 0"),
    ("cluster.drafts=[]", "cluster.drafts: expected array of length >= 1, got []"),
    ("network.loss=1", "network.loss: expected float < 1.0, got 1"),
    ("workload.arrival.type=trace", "workload.arrival: arrival type 'trace' needs 'path'"),
    ("workload.arrival.type=pareto", "workload.arrival.type: 'pareto' is not one of 'poisson', "
                                     "'gamma', 'constant', 'closed_loop', 'trace'"),
    ("acceptance.confidence.rejected_beta=[0, 1]",
     "acceptance.confidence.rejected_beta: Beta parameters must be > 0"),
    ("policies.window={gamma: 3}", "policies.window: a policy mapping needs a 'name'"),
    ("cluster.targets.0={count: 1}", "cluster.targets[0].gpu: required key is missing"),
    ("cluster.targets.0.model=qwen-72b", "cluster.drafts[0].model: no target pool serves"),
    ("policies.router=fastest", "policies.router: unknown router policy 'fastest'"),
    ("cluster.targets.0.tp=1", "cluster.targets[0]: "),
    ("workload.dataset=imagenet", "workload: "),
    ("simulation.warmup_s=500", "simulation: warmup_s must be shorter than duration_s"),
])
def test_invalid_config_names_the_field(override: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config("examples/quickstart.yaml", [override])
        from dsd.sim import simulate  # fit errors surface when the cluster is built

        simulate("examples/quickstart.yaml", overrides=[override])
    assert str(info.value).startswith(message), str(info.value)
    assert "\n" not in str(info.value)


def test_cli_reports_one_line_and_no_traceback() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "dsd.cli.main", "simulate", "examples/quickstart.yaml",
         "--set", "cluster.drafts.0.gpu=A41", "--quiet"],
        capture_output=True, text=True, check=False)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "cluster.drafts[0].gpu: unknown GPU 'A41'" in lines[0]


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    assert main(["simulate", str(tmp_path / "nope.yaml")]) == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("cluster: [unclosed\n")
    with pytest.raises(ConfigError, match="line"):
        load_config(bad)


def test_overrides_parse_yaml_values_and_list_indices() -> None:
    data = {"a": {"b": [{"c": 1}]}}
    apply_override(data, "a.b.0.c=2.5")
    apply_override(data, "a.x=[1, 2]")
    assert data == {"a": {"b": [{"c": 2.5}], "x": [1, 2]}}
    with pytest.raises(ConfigError, match="not a valid list index"):
        apply_override(data, "a.b.3.c=1")
    with pytest.raises(ConfigError, match="expected dotted.path=value"):
        apply_override(data, "a.b")


def test_cli_simulate_writes_run_folder_and_compares_modes(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    code = main(["simulate", "examples/quickstart.yaml", "--set", "simulation.duration_s=20",
                 "--set", "simulation.warmup_s=0", "--out", str(out),
                 "--modes", "distributed,fused,cloud_only"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "throughput" in printed and "cloud_only" in printed
    for mode in ("distributed", "fused", "cloud_only"):
        assert (out / mode / "summary.json").exists()
    assert len((out / "comparison.csv").read_text().strip().splitlines()) == 4

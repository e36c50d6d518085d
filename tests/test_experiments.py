"""The experiment registry and CLI; the quick experiments themselves run in CI via
`dsd experiment NAME --quick` (marked slow here)."""

import json

import pytest

from dsd.cli.main import main
from dsd.experiments.registry import (
    EXPERIMENTS,
    ExperimentResult,
    load_builtin,
    register_experiment,
    run_experiment,
)

NAMES = ("policy-stack", "rtt-sweep", "draft-scale", "wisp-capacity", "routing", "lab",
         "awc-adaptation")


def test_builtin_experiments_are_registered() -> None:
    load_builtin()
    assert set(NAMES) <= set(EXPERIMENTS)


def test_registry_writes_the_output_contract(tmp_path) -> None:
    @register_experiment("unit-test-exp", "a test")
    def _exp(ctx):
        rows = ctx.map(lambda x: {"x": x, "y": x * x}, [1, 2, 3])
        return ExperimentResult(rows, {"answer": 42.0, "nested": {"a": 1}})

    try:
        run_experiment("unit-test-exp", quick=True, out=tmp_path, echo=False)
        summary = json.loads((tmp_path / "summary.json").read_text())
        assert summary["answer"] == 42.0 and summary["quick"] is True
        assert (tmp_path / "results.csv").read_text().splitlines()[0] == "x,y"
        with pytest.raises(ValueError, match="already registered"):
            register_experiment("unit-test-exp")(_exp)
    finally:
        EXPERIMENTS.pop("unit-test-exp", None)


def test_unknown_experiment_is_one_line(capsys) -> None:
    assert main(["experiment", "nope"]) == 2
    assert "unknown experiment 'nope'" in capsys.readouterr().err


# The quick versions are the CI smoke tests of the experiments (~15 s together).
# Plot titles describe the run that made them (the quick runs shrink cluster and duration).
QUICK_TITLES = {"routing": "(60 drafts, 4 servers, 60 s runs)",
                "policy-stack": "on a tenth of paper-large (60 drafts, 3 servers, 60 s runs)",
                "rtt-sweep": "120 users, 60 s runs", "draft-scale": "60 s runs",
                "wisp-capacity": "60 s runs, 1 seed)",
                "lab": "(60 drafts, 3 servers, 60 s runs, JSQ, gamma 4, 1 seed)",
                "awc-adaptation": "(1 seed x 40 s)"}


@pytest.mark.parametrize("name", NAMES)
def test_quick_experiment_runs(name: str, tmp_path, monkeypatch) -> None:
    from dsd.experiments import common

    titles: list[str] = []
    save = common._save
    monkeypatch.setattr(common, "_save", lambda fig, path, title: (titles.append(title),
                                                                   save(fig, path, title))[1])
    res = run_experiment(name, quick=True, out=tmp_path, echo=False)
    assert res.rows and (tmp_path / "results.csv").exists()
    assert all((tmp_path / p).exists() for p in json.loads(
        (tmp_path / "summary.json").read_text())["plots"])
    text = " ".join(titles).replace("\n", " ")
    assert QUICK_TITLES[name] in text and "600 drafts" not in text, titles

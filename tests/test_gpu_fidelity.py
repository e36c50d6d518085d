"""`dsd experiment gpu-fidelity --quick`: the output contract and the goals on the shipped
profiles (the full run's figures are in docs/latency.md)."""

from __future__ import annotations

import csv
import json

from dsd.cli.main import main
from dsd.experiments.registry import run_experiment
from vidur_fixtures import linear_folder


def test_quick_run_scores_every_method_and_meets_the_goals(tmp_path) -> None:
    res = run_experiment("gpu-fidelity", quick=True, out=tmp_path, echo=False)
    summary = json.loads((tmp_path / "summary.json").read_text())
    for key in ("mape_roofline", "mape_fitted", "mape_lomo", "mape_interp"):
        assert 0 < summary[key] < 1
    assert set(summary["per_gpu"]) == {"A100", "H100", "A40"}
    assert {"A100 tp=8", "H100 tp=1", "A40 tp=4"} <= set(summary["per_gpu_tp"])
    assert "H100 verify regime <=128" in summary["per_gpu_tokens"]
    assert all(summary["goals_met"].values()), summary["goals_met"]
    # the operator model beats the reference roofline on every GPU
    for gpu, mape in summary["per_gpu"].items():
        assert mape["fitted"] < mape["roofline"] / 2, gpu
    assert all((tmp_path / p).exists() for p in summary["plots"])
    with (tmp_path / "points.csv").open() as fh:
        points = list(csv.DictReader(fh))
    assert {p["gpu"] for p in points} == {"A100", "H100", "A40"}
    assert any(p["interp_ms"] for p in points) and any(p["lomo_ms"] for p in points)
    assert res.rows[-1]["gpu"] == "all"


def test_profiles_option_reads_another_folder(tmp_path, capsys) -> None:
    root = linear_folder(tmp_path / "vidur", tps=(1, 2))
    out = tmp_path / "out"
    assert main(["experiment", "gpu-fidelity", "--quick", "--profiles", str(root),
                 "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["per_gpu"]) == {"A100"} and summary["profiles"] == str(root)
    # the synthetic operators are linear in tokens: interpolation is exact
    assert summary["mape_interp"] < 1e-9

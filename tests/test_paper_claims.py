"""`dsd experiment paper`: seed statistics, verdict rules, claim effects and the job plan."""

import json
import math

import pytest

from dsd.experiments.paper import STUDIES
from dsd.experiments.paper.claims import Axis, Claim, Study, change
from dsd.experiments.paper.dsd_studies import _crossover, _jsq_gain, _min_gain
from dsd.experiments.paper.evaluate import MAIN, build_jobs, reduce_results
from dsd.experiments.paper.stats import (
    DOES_NOT_HOLD,
    IN_PART,
    REPRODUCED,
    Estimate,
    estimate,
    verdict,
)
from dsd.experiments.registry import run_experiment


def test_estimate_is_the_student_t_interval() -> None:
    est = estimate([1.0, 2.0, 3.0, None])
    assert est is not None and est.n == 3 and est.mean == 2.0
    assert est.half_width == pytest.approx(4.303 * 1.0 / math.sqrt(3), rel=1e-4)
    single = estimate([5.0])
    assert single is not None and math.isinf(single.half_width)
    assert estimate([None, None]) is None


@pytest.mark.parametrize(("mean", "ci", "expected"), [
    (0.10, (0.08, 0.12), REPRODUCED),  # in range, clear of zero
    (0.02, (0.01, 0.03), IN_PART),  # right direction, too small
    (0.02, (-0.01, 0.05), DOES_NOT_HOLD),  # cannot tell from no effect
    (-0.05, (-0.07, -0.03), DOES_NOT_HOLD),  # opposite direction
    (0.10, (-0.02, 0.22), DOES_NOT_HOLD),  # in range, but the CI includes no effect
])
def test_effect_verdicts(mean: float, ci: tuple[float, float], expected: str) -> None:
    assert verdict(Estimate(mean, ci, 3), 0.12, (0.09, 0.15), 0.0) == expected


def test_negative_effects_and_other_kinds() -> None:
    tpot = Estimate(-0.05, (-0.06, -0.04), 3)
    assert verdict(tpot, -0.18, (-0.22, -0.13), 0.0) == IN_PART
    bound = Estimate(0.05, (0.0, 0.1), 3)
    assert verdict(bound, 0.02, (-0.04, 0.04), 0.0, "bound") == DOES_NOT_HOLD
    assert verdict(Estimate(0.01, (0.0, 0.02), 3), 0.02, (-0.04, 0.04), 0.0,
                   "bound") == REPRODUCED
    cross = Estimate(130.0, (120.0, 140.0), 3)
    assert verdict(cross, 55.0, (50.0, 60.0), math.nan, "exists") == IN_PART
    assert verdict(None, 55.0, (50.0, 60.0), math.nan, "exists") == DOES_NOT_HOLD


def test_crossover_effect_reads_the_first_drop_below_cloud_only() -> None:
    rows = [{"mode": m, "rtt_ms": r, "throughput": t}
            for m, pts in (("distributed", [(0, 10.0), (50, 8.0), (100, 6.0)]),
                           ("cloud_only", [(0, 7.0), (50, 7.0), (100, 7.0)]))
            for r, t in pts]
    assert _crossover(rows) == pytest.approx(75.0)
    never = [dict(r, throughput=1.0) if r["mode"] == "distributed" else r for r in rows]
    assert _crossover(never) is None


def test_awc_and_routing_effects() -> None:
    rows = [{"case": c, "window": w, "throughput": t}
            for c, vals in (("a", {"awc": 1.05, "static4": 1.0}),
                            ("b", {"awc": 1.02, "static4": 1.0}))
            for w, t in vals.items()]
    assert _min_gain(rows) == pytest.approx(0.02)
    routing = [{"router": r, "tpot_ms_mean": t}
               for r, t in (("random", 50.0), ("round-robin", 48.0), ("jsq", 40.0))]
    assert _jsq_gain(routing) == pytest.approx(48.0 / 40.0 - 1)
    assert change(None, 1.0) is None and change(1.0, 0.0) is None


def _toy_study() -> Study:
    def runner(scenario: dict, seed: int) -> dict:
        return {"y": scenario["x"] + 0.01 * seed}

    def points(scenario: dict, quick: bool) -> list:
        return [({"arm": "a"}, scenario), ({"arm": "b"}, {"x": scenario["x"] * 2})]

    def effect(rows: list) -> float:
        by = {r["arm"]: r["y"] for r in rows}
        return by["b"] - by["a"]

    claim = Claim("toy", "test", "b beats a", 1.0, (0.5, 1.5), "ms", effect)
    axis = Axis("x", "x", (1.0, 3.0), lambda cfg, v: cfg.update(x=v))
    return Study("toy", "toy", "toy", lambda quick: {"x": 1.0}, [claim],
                 lambda quick: [axis], points, runner)


def test_jobs_reuse_the_main_runs_for_the_paper_closest_value() -> None:
    from dsd.experiments.paper.evaluate import run_job

    study = _toy_study()
    jobs = build_jobs([study], True, seeds=(0, 1, 2), sens_seeds=(0,))
    # 3 seeds x 2 arms, plus only x=3 for the sensitivity (x=1 is the base)
    assert len(jobs) == 6 + 2
    assert {j[1]["_axis"] for j in jobs} == {MAIN, "x"}
    rows = [run_job(j) for j in jobs]
    [res] = reduce_results([study], rows, True, (0, 1, 2), (0,))
    assert res.estimate is not None and res.estimate.mean == pytest.approx(1.0)
    assert res.verdict == REPRODUCED
    assert [(p.value, p.effect) for p in res.sensitivity] == [("1.0", 1.0), ("3.0", 3.0)]
    assert [p.verdict for p in res.sensitivity] == [REPRODUCED, IN_PART]


def test_every_study_builds_valid_scenarios() -> None:
    from dsd.config import load_config

    jobs = build_jobs(STUDIES, quick=True, seeds=(0,), sens_seeds=(0,))
    for _runner, _labels, payload, _seed in jobs:
        load_config(payload["scenario"] if "scenario" in payload else payload)


def test_quick_paper_experiment_writes_every_claim(tmp_path) -> None:
    run_experiment("paper", quick=True, out=tmp_path, echo=False)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert len(summary["claims"]) >= 12
    for key in summary["claims"]:
        entry = summary[key]
        assert {"paper", "ours_mean", "ours_ci95", "verdict"} <= set(entry)
        assert entry["verdict"] in (REPRODUCED, IN_PART, DOES_NOT_HOLD)
        assert entry["seeds"] >= 3
    report = (tmp_path / "report.md").read_text()
    assert all(f"`{key}`" in report for key in summary["claims"])


def test_paper_closest_example_is_the_experiments_setting() -> None:
    from pathlib import Path

    import yaml

    from dsd.experiments.paper.setting import dsd_large

    assert yaml.safe_load(Path("examples/paper-closest.yaml").read_text()) == dsd_large(False)


def test_publish_copies_the_report_verbatim(tmp_path) -> None:
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("publish", "scripts/publish_paper_report.py")
    publish = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(publish)
    run = tmp_path / "run"
    run.mkdir()
    (run / "report.md").write_text("# Paper claims: reproduced or bounded\n\n| a |\n\n"
                                   "![k](sens-k.png)\n")
    (run / "sens-k.png").write_bytes(b"png")
    doc = tmp_path / "docs" / "paper.md"
    doc.parent.mkdir()
    doc.write_text(f"intro\n{publish.BEGIN}\nold\n{publish.END}\noutro\n")
    publish.publish(run, doc, tmp_path / "docs" / "figures" / "paper")
    text = doc.read_text()
    assert "old" not in text and "| a |" in text and text.startswith("intro")
    assert "](figures/paper/sens-k.png)" in text and text.rstrip().endswith("outro")
    assert Path(tmp_path / "docs/figures/paper/sens-k.png").exists()

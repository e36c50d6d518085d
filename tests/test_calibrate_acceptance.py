"""Acceptance fitting from runtime logs, fitted files, and the profiling grid."""

from __future__ import annotations

import json
import random

import pytest

from dsd.acceptance import TokenAcceptance, resolve_acceptance
from dsd.acceptance.fitted import fitted_table, load_fitted, write_fitted
from dsd.calibrate.acceptance import fit_acceptance, iter_records
from dsd.calibrate.grid import ProfileGrid, parse_ints
from dsd.errors import ConfigError, DataError

TRUE = (0.9, 0.8, 0.7, 0.6, 0.5)


def synthetic_records(gammas=(4,), requests=400, rounds=40, seed=0, per_round=True):
    """Requests whose rounds sample acceptance from TokenAcceptance(TRUE)."""
    rng = random.Random(seed)
    acc = TokenAcceptance(TRUE)
    out = []
    for _ in range(requests):
        log = []
        for _ in range(rounds):
            g = rng.choice(gammas)
            log.append([g, acc.accepted(g, rng.random())])
        if per_round:
            out.append({"rounds_log": log})
        else:
            g = log[0][0]
            per_pos = [sum(1 for _, a in log if a > i) for i in range(g)]
            out.append({"gamma_history": [g for g, _ in log], "accepted_per_pos": per_pos})
    return out


def test_fit_recovers_per_position_alphas():
    fit = fit_acceptance(synthetic_records(gammas=(2, 4, 6)), "d", "t", "gsm8k")
    assert fit["draft"] == "d" and fit["target"] == "t" and fit["dataset"] == "gsm8k"
    assert len(fit["alphas"]) == 6
    for got, want in zip(fit["alphas"], TRUE + (TRUE[-1],), strict=True):
        assert got == pytest.approx(want, abs=0.03)
    assert fit["rounds"] == 400 * 40
    assert fit["spread"] < 0.05  # one population: no per-session spread


def test_fit_from_aggregate_edge_stats_with_constant_gamma():
    exact = fit_acceptance(synthetic_records(per_round=True))
    agg = fit_acceptance(synthetic_records(per_round=False))
    assert agg["alphas"] == exact["alphas"]
    assert agg["reached"] == exact["reached"]


def test_variable_gamma_without_rounds_is_skipped():
    recs = [{"gamma_history": [4, 4, 2], "accepted_per_pos": [3, 2, 1, 0]},
            {"gamma_history": [4, 4], "accepted_per_pos": [2, 1, 0, 0]}]
    fit = fit_acceptance(recs)
    assert fit["skipped_requests"] == 1
    assert fit["reached"] == [2, 2, 1, 0][: len(fit["alphas"])]


def test_spread_is_detected():
    rng = random.Random(3)
    recs = []
    for _ in range(300):
        alpha = rng.choice((0.5, 0.9))  # two kinds of prompts
        acc = TokenAcceptance((alpha,))
        recs.append({"rounds_log": [[4, acc.accepted(4, rng.random())] for _ in range(50)]})
    fit = fit_acceptance(recs)
    assert fit["spread"] > 0.1


def test_no_rounds_is_a_clear_error():
    with pytest.raises(DataError, match="no speculation rounds"):
        fit_acceptance([{"msg": "hello"}])


def test_fitted_file_round_trip_feeds_the_simulator(tmp_path):
    fit = fit_acceptance(synthetic_records(), "qwen2.5-0.5b", "qwen2.5-1.5b", "gsm8k")
    path = write_fitted(tmp_path / "acc.yaml", fit)
    entry = load_fitted(path)
    assert entry["alphas"] == fit["alphas"]
    assert set(entry) == {"draft", "target", "dataset", "alphas", "spread"}
    model = resolve_acceptance({"table": fitted_table(path)}, "qwen2.5-0.5b",
                               "qwen2.5-1.5b", "gsm8k")
    assert model.alphas == tuple(fit["alphas"])
    other = resolve_acceptance({"table": fitted_table([path])}, "qwen2.5-0.5b",
                               "qwen2.5-1.5b", "cnndm")
    assert other.alphas != tuple(fit["alphas"])  # other dataset: the default


def test_bad_fitted_files(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_fitted(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("alphas: [1.5]\n")
    with pytest.raises(DataError, match="alphas"):
        load_fitted(bad)


def test_records_from_run_folders(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    lines = [json.dumps({"msg": "request done", **r}) for r in synthetic_records(requests=5)]
    (run / "edge.log").write_text("not json\n" + "\n".join(lines) + "\n")
    (run / "requests.json").write_text(json.dumps(synthetic_records(requests=3)))
    assert len(list(iter_records([run]))) == 8
    with pytest.raises(DataError, match="does not exist"):
        list(iter_records([tmp_path / "missing"]))


def test_cli_calibrate_acceptance(tmp_path, capsys):
    from dsd.cli.main import main

    log = tmp_path / "requests.jsonl"
    log.write_text("\n".join(json.dumps(r) for r in synthetic_records(requests=50)))
    out = tmp_path / "acc.yaml"
    assert main(["calibrate", "acceptance", str(log), "--out", str(out), "--draft", "d",
                 "--target", "t", "--dataset", "gsm8k"]) == 0
    assert "rounds from 50 requests" in capsys.readouterr().out
    assert load_fitted(out)["draft"] == "d"
    assert main(["calibrate", "acceptance", str(tmp_path / "nope"), "--out", str(out)]) == 2


def test_grid_points_and_held_out():
    grid = ProfileGrid((1, 2, 4), (64, 256), (2, 4), (16, 64))
    points = list(grid.points())
    assert ("prefill", 4, 0, 64) in points
    assert ("decode", 2, 256, 1) in points and ("verify", 1, 64, 5) in points
    assert len(points) == 3 * 2 + 3 * 2 * 3
    held = list(grid.held_out())
    assert ("verify", 3, 160, 4) in held and ("prefill", 3, 0, 40) in held
    assert not set(held) & set(points)


def test_parse_ints():
    assert parse_ints("1, 2,4", "--x") == (1, 2, 4)
    with pytest.raises(ConfigError, match="--x"):
        parse_ints("1,a", "--x")


def test_runtime_per_round_history_is_used_even_with_variable_gamma() -> None:
    from dsd.calibrate.acceptance import AcceptanceCounts

    counts = AcceptanceCounts()
    counts.add_record({"gamma_history": [4, 2, 4], "accepted_history": [4, 1, 0],
                       "accepted_per_pos": [2, 1, 1, 1]})
    assert counts.skipped == 0
    assert counts.rounds == 3
    assert counts.reached[:2] == [3, 2] and counts.accepted[:2] == [2, 1]

"""Replayed acceptance: sessions accept what measured requests accepted, round by round."""

import json
import random

import pytest

from dsd.acceptance import AcceptanceModel
from dsd.acceptance.replay import ReplayAcceptance, load_round_logs
from dsd.errors import ConfigError
from dsd.sim import simulate


def test_sessions_replay_their_logs_in_order_then_fall_back():
    model = ReplayAcceptance([[[4, 1], [4, 4]], [[2, 0]]], AcceptanceModel((1.0,)))
    rng = random.Random(0)
    first, second, third = (model.session(rng) for _ in range(3))
    assert [first.accepted(4, 0.5), first.accepted(4, 0.5)] == [1, 4]
    assert first.accepted(4, 0.5) == 4  # past its log: the fitted model (alpha 1)
    assert second.accepted(2, 0.5) == 0
    assert third.accepted(3, 0.5) == 3  # no log left: the fitted model


def test_other_windows_keep_the_logged_rejection():
    model = ReplayAcceptance([[[4, 2], [2, 2], [2, 2]]], AcceptanceModel((0.0,)))
    s = model.session(random.Random(0))
    assert s.accepted(1, 0.5) == 1  # rejected at 3 in the log: 1 of 1 accepted
    assert s.accepted(2, 0.5) == 2  # all 2 logged accepted
    assert s.accepted(5, 0.5) == 2  # beyond the log's 2: the fitted model (alpha 0) adds 0
    assert s.expected_tokens(4) == 1.0  # estimates come from the fitted model


def test_simulation_replays_measured_rounds(tmp_path):
    logs = [[[3, 3]] * 4, [[3, 0]] * 16]  # 16 tokens in 4 rounds; 16 tokens in 16 rounds
    path = tmp_path / "requests.jsonl"
    path.write_text("".join(json.dumps({"rounds_log": log}) + "\n" for log in logs))
    res = simulate("examples/single-pair.yaml", overrides=[
        f"acceptance.replay={path}", "policies.window.gamma=3", "workload.output.fixed=17",
        "workload.arrival.think_time_s=0", "simulation.max_requests=2",
        "simulation.drain=true"])
    rows = sorted(res.requests.to_pylist(), key=lambda r: r["arrival_s"])
    assert [(r["rounds"], r["accepted_tokens"]) for r in rows] == [(4, 12), (16, 0)]


def test_bad_logs_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"request 0: round \[2, 3\]"):
        load_round_logs([[[2, 3]]])
    bad = tmp_path / "r.jsonl"
    bad.write_text('{"rounds_log": [[2, 1]]}\n{"ttft_ms": 3}\n')
    with pytest.raises(ConfigError, match=r"r.jsonl:2: not a request record"):
        load_round_logs(str(bad))
    with pytest.raises(ConfigError, match="cannot read"):
        load_round_logs(str(tmp_path / "missing.jsonl"))

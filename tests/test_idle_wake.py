"""The idle wake-up cost: a step that starts after its executor idled pays more than the
back-to-back step, as the profiler measures it, and the simulator charges it."""

from __future__ import annotations

import warnings
from itertools import product
from pathlib import Path

import pytest

from dsd.catalog import load_catalog
from dsd.errors import DataError
from dsd.perf import Deployment
from dsd.perf.idle_wake import IDLE_MIN_S, IdleWake
from dsd.perf.table import TablePredictor, write_profile
from single_user_scenario import single_user_scenario

MODEL = "qwen2.5-0.5b"
# extra ms over back to back: 0.5 ms after the profiler's 2 ms gap, 2.5 ms from 10 ms on
CURVE = "0:0,2:0.5,10:2.5"


def test_interpolates_between_measured_gaps_and_is_flat_beyond():
    wake = IdleWake.parse(CURVE, "test")
    assert wake.extra_s(0.0) == 0.0
    assert wake.extra_s(0.001) == pytest.approx(0.25e-3)
    assert wake.extra_s(0.006) == pytest.approx(1.5e-3)
    assert wake.extra_s(0.010) == wake.extra_s(5.0) == pytest.approx(2.5e-3)


def test_adjusts_relative_to_the_gap_the_profile_was_timed_after():
    wake = IdleWake.parse(CURVE, "test")
    small = 0.3e-3  # a job under IDLE_MIN_S was profiled after IDLE_MIN_S of idling
    assert wake.adjust_s(IDLE_MIN_S, small) == pytest.approx(0.0)
    assert wake.adjust_s(0.030, small) == pytest.approx(2.0e-3)
    # back to back it is faster than profiled, but never by more than half the job
    # (a 4 ms job was profiled after 4 ms idle: 1.0 ms extra, which back to back saves)
    assert wake.adjust_s(0.0, 4e-3) == pytest.approx(-1.0e-3)
    assert wake.adjust_s(0.0, small) == pytest.approx(-0.5 * small)
    # a long job was profiled after a gap as long as itself (up to 50 ms)
    assert wake.adjust_s(0.030, 0.2) == pytest.approx(0.0)


def test_metadata_round_trip_and_bad_text():
    wake = IdleWake.parse(CURVE, "test")
    again = IdleWake.parse(wake.format(), "test")
    assert again.gaps == wake.gaps and again.extras == pytest.approx(wake.extras)
    with pytest.raises(DataError, match=r"p\.csv idle_wake\.m: .* is not 'gap_ms:extra_ms"):
        IdleWake.parse("0:0,fast", "p.csv idle_wake.m")


def _rows(scale: float = 0.1) -> list[dict]:
    """A complete small grid of sub-millisecond steps, as a tiny model's."""
    rows = []
    for p in (16, 64, 256):
        rows.append(_row("prefill", 1, 0, p, scale * (1.0 + 0.02 * p)))
    for b, q, c in product((1, 2), (1, 3), (64, 256)):
        rows.append(_row("decode" if q == 1 else "verify", b, c, q,
                         scale * (2.0 + 0.5 * b + 0.3 * q + 0.001 * c)))
    return rows


def _row(op, b, c, q, ms):
    return {"model": MODEL, "op": op, "batch_size": b, "context_len": c, "query_tokens": q,
            "latency_ms": ms, "p10_ms": ms, "p90_ms": ms, "repeats": 3}


def _profile(tmp_path: Path, wake: str | None) -> Path:
    meta = {"device": "cpu", "dtype": "float32"}
    if wake:
        meta[f"idle_wake.{MODEL}"] = wake
    return write_profile(tmp_path / ("wake.csv" if wake else "plain.csv"), _rows(), meta)


def test_table_predictor_reads_the_curve_of_its_model(tmp_path):
    hw = Deployment(load_catalog().gpu("cpu"), load_catalog().model(MODEL))
    step = TablePredictor(_profile(tmp_path, CURVE)).bind(hw)
    assert isinstance(step.wake, IdleWake)
    assert step.wake.extra_s(0.010) == pytest.approx(2.5e-3)
    assert TablePredictor(_profile(tmp_path, None)).bind(hw).wake is None


def test_simulator_charges_the_wake_up_to_steps_after_an_idle_gap(tmp_path):
    """One closed-loop user, RTT 10 ms, alpha 0: every round is one edge draft and one
    verify step, each starting over 10 ms after its executor's previous job, so each pays
    2.5 - 0.5 = 2 ms more than the profile: TPOT grows by 4 ms a round."""
    from dsd.sim import simulate

    def run(profile: Path) -> float:
        cfg = single_user_scenario({"type": "table", "path": str(profile)}, MODEL, "wake")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return simulate(cfg)["tpot_ms_p50"]

    plain, woken = run(_profile(tmp_path, None)), run(_profile(tmp_path, CURVE))
    # the last round of a request drafts nothing (one token left): slightly under 4 ms
    assert 3.8 <= woken - plain <= 4.0 + 1e-9

"""The table latency predictor: interpolation, fallback, file format, simulator use."""

from __future__ import annotations

import math
import warnings
from itertools import product
from pathlib import Path

import pytest

from dsd.catalog import load_catalog
from dsd.errors import DataError
from dsd.perf import Deployment, make_predictor
from dsd.perf.roofline import RooflineStep
from dsd.perf.table import (
    TablePredictor,
    TableWarning,
    read_profile,
    write_profile,
)
from single_user_scenario import single_user_scenario

MODEL = "qwen2.5-0.5b"
BATCHES = (1, 2, 4)
QUERIES = (1, 3, 5)
CONTEXTS = (64, 256, 1024)
PROMPTS = (16, 64, 256)


def step_ms(b: float, q: float, c: float) -> float:
    """A known multilinear function: interpolation must reproduce it exactly."""
    return 2.0 + 0.5 * b + 0.3 * q + 0.001 * c + 0.01 * b * q + 0.0002 * b * c * q


def prefill_ms(b: float, p: float) -> float:
    return 1.0 + 0.2 * b * p + 0.4 * b


def synthetic_rows(model: str = MODEL) -> list[dict]:
    rows = []
    for b, p in product(BATCHES, PROMPTS):
        rows.append(_row(model, "prefill", b, 0, p, prefill_ms(b, p)))
    for b, q, c in product(BATCHES, QUERIES, CONTEXTS):
        rows.append(_row(model, "decode" if q == 1 else "verify", b, c, q, step_ms(b, q, c)))
    return rows


def _row(model, op, b, c, q, ms):
    return {"model": model, "op": op, "batch_size": b, "context_len": c, "query_tokens": q,
            "latency_ms": ms, "p10_ms": ms * 0.9, "p90_ms": ms * 1.1, "repeats": 5}


@pytest.fixture
def profile(tmp_path: Path) -> Path:
    return write_profile(tmp_path / "p.csv", synthetic_rows(),
                         {"device": "cpu", "dtype": "float32", "torch": "test"})


@pytest.fixture
def hw() -> Deployment:
    cat = load_catalog()
    return Deployment(cat.gpu("cpu"), cat.model(MODEL))


def call(step, b: int, q_per: float, c_per: float) -> float:
    """Step cost in ms for b sequences of q_per query and c_per context tokens each."""
    q, c = round(b * q_per), round(b * c_per)
    return step.step_s(b, q, c, q * (c_per + q_per)) * 1000.0


def test_exact_at_grid_points(profile, hw):
    step = TablePredictor(profile).bind(hw)
    for b, q, c in product(BATCHES, QUERIES, CONTEXTS):
        assert call(step, b, q, c) == pytest.approx(step_ms(b, q, c), rel=1e-4)
    for b, p in product(BATCHES, PROMPTS):
        assert call(step, b, p, 0) == pytest.approx(prefill_ms(b, p), rel=1e-4)


def test_linear_between_grid_points(profile, hw):
    step = TablePredictor(profile).bind(hw)
    # The function is multilinear, so interpolation between any grid points is exact.
    for b, q, c in [(3, 2, 100), (2, 4, 640), (3, 3, 128), (4, 5, 777)]:
        assert call(step, b, q, c) == pytest.approx(step_ms(b, q, c), rel=1e-6)
    assert call(step, 3, 40, 0) == pytest.approx(prefill_ms(3, 40), rel=1e-6)
    # Half way between two points along one axis is the mean of the two.
    mid = call(step, 1, 1, 160)
    assert mid == pytest.approx((step_ms(1, 1, 64) + step_ms(1, 1, 256)) / 2, rel=1e-9)


def test_clamps_below_the_grid(profile, hw):
    step = TablePredictor(profile).bind(hw)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # clamping below is silent
        assert call(step, 1, 1, 10) == pytest.approx(step_ms(1, 1, 64))
        assert call(step, 1, 4, 0) == pytest.approx(prefill_ms(1, 16))


def test_outside_falls_back_to_scaled_roofline_and_warns_once(profile, hw):
    step = TablePredictor(profile).bind(hw)
    with pytest.warns(TableWarning, match="outside the measured grid"):
        far = call(step, 1, 1, 4096)
    edge = step_ms(1, 1, 1024)
    roof = RooflineStep(hw)
    ratio = roof.step_s(1, 1, 4096, 4097) / roof.step_s(1, 1, 1024, 1025)
    assert far == pytest.approx(edge * ratio, rel=1e-6)
    assert far > edge
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        call(step, 8, 1, 64)  # second fallback: counted, not warned again
    assert step.fallbacks == 2


def test_fallback_is_continuous_at_the_edge(profile, hw):
    step = TablePredictor(profile).bind(hw)
    with pytest.warns(TableWarning):
        just_out = call(step, 1, 1, 1025)
    assert just_out == pytest.approx(step_ms(1, 1, 1024), rel=1e-3)


def test_mixed_prefill_and_verify_batch(profile, hw):
    step = TablePredictor(profile).bind(hw)
    # 2 sequences, 100 query tokens, context 300: more query per sequence than any verify
    # point, so the verify-shaped part comes from the grid and the rest is one prefill.
    got = step.step_s(2, 100, 300, 0) * 1000.0
    expected = step_ms(2, 5, 150) + prefill_ms(1, 90)
    assert got == pytest.approx(expected, rel=1e-6)


def test_predict_matches_bind(profile, hw):
    from dsd.perf import BatchShape

    pred = make_predictor({"type": "table", "path": str(profile)})
    shape = BatchShape.of([(3, 100), (3, 200)])
    assert pred.predict("verify", shape, hw) == pred.bind(hw).step_s(*shape.args())


def test_memoized_and_fast(profile, hw):
    import time

    step = TablePredictor(profile).bind(hw)
    start = time.perf_counter()
    for i in range(2000):
        step.step_s(1 + i % 4, 5 * (1 + i % 4), (1 + i % 4) * (100 + i % 500), 0)
    per_call_us = (time.perf_counter() - start) / 2000 * 1e6
    assert per_call_us < 200  # generous: CI machines are slow; the benchmark reports it


def test_model_missing_from_profile_uses_roofline(profile):
    cat = load_catalog()
    other = Deployment(cat.gpu("cpu"), cat.model("qwen2.5-1.5b"))
    with pytest.warns(TableWarning, match="no rows for model"):
        step = TablePredictor(profile).bind(other)
    assert isinstance(step, RooflineStep)


def test_device_mismatch_warns(profile):
    cat = load_catalog()
    gpu_hw = Deployment(cat.gpu("A100"), cat.model(MODEL))
    with pytest.warns(TableWarning, match="measured on 'cpu'"):
        TablePredictor(profile).bind(gpu_hw)


def test_csv_and_parquet_round_trip(tmp_path):
    rows = synthetic_rows()
    meta = {"device": "cpu", "cpu": "Some CPU @ 2.0GHz", "date": "2026-01-01"}
    for name in ("p.csv", "p.parquet"):
        prof = read_profile(write_profile(tmp_path / name, rows, meta))
        assert prof.metadata["device"] == "cpu"
        assert prof.metadata["cpu"] == "Some CPU @ 2.0GHz"
        assert prof.metadata["format"] == "dsd-profile/1"
        assert len(prof.rows) == len(rows)
        assert prof.rows[0]["latency_ms"] == pytest.approx(rows[0]["latency_ms"], rel=1e-4)


def test_incomplete_grid_is_a_clear_error(tmp_path, hw):
    rows = [r for r in synthetic_rows() if not (r["batch_size"] == 2 and r["query_tokens"] == 3
                                                 and r["context_len"] == 256)]
    path = write_profile(tmp_path / "p.csv", rows, {"device": "cpu"})
    with pytest.raises(DataError, match="not a full grid"):
        TablePredictor(path).bind(hw)


def test_bad_files(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_profile(tmp_path / "missing.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("model,op,batch_size\nx,decode,1\n")
    with pytest.raises(DataError, match="missing column"):
        read_profile(bad)
    bad.write_text("model,op,batch_size,context_len,query_tokens,latency_ms,p10_ms,p90_ms,"
                   "repeats\nx,jump,1,1,1,1,1,1,1\n")
    with pytest.raises(DataError, match=r"bad.csv:2: unknown op"):
        read_profile(bad)


def test_simulation_with_table_latency(profile, tmp_path):
    from dsd.sim import simulate

    res = simulate(single_user_scenario({"type": "table", "path": str(profile)}, MODEL))
    roof = simulate(single_user_scenario({"type": "roofline"}, MODEL))
    assert res["requests_completed"] == 3
    # alpha 0: every round = 2 draft steps + a verify of 3 tokens + the 10 ms round trip,
    # and yields one token, so TPOT follows from the table's decode and verify costs (the
    # last round, with one token left, drafts nothing: hence the 3% margin below).
    ttft = res.requests.column("ttft_ms").to_pylist()[0]
    assert ttft == pytest.approx(10 + prefill_ms(1, 64), rel=1e-3)
    tpot = res.requests.column("tpot_ms").to_pylist()[0]
    low = 10 + 2 * step_ms(1, 1, 64) + step_ms(1, 3, 64)
    high = 10 + 2 * step_ms(1, 1, 100) + step_ms(1, 3, 100)
    assert 0.97 * low <= tpot <= high
    assert not math.isclose(res["tpot_ms_p50"], roof["tpot_ms_p50"], rel_tol=0.01)


def test_prefills_sharing_a_step_release_first_tokens_with_the_step(profile):
    """Three users arrive at once: the first prefill runs alone, the next two share a step
    with the first user's decode, and both first tokens leave when that step ends: one
    forward for the whole step, as a GPU engine's mixed step and the runtime verifier's
    ragged batch run it."""
    from dsd.sim import simulate

    res = simulate({
        "name": "prefills", "mode": "cloud_only",
        "cluster": {"drafts": [{"count": 1, "gpu": "cpu", "model": MODEL}],
                    "targets": [{"count": 1, "gpu": "cpu", "model": MODEL,
                                 "latency": {"type": "table", "path": str(profile)}}]},
        "network": {"rtt_ms": 0, "bandwidth_mbps": 1e9},
        "workload": {"dataset": "synthetic", "prompt": {"fixed": 64}, "output": {"fixed": 2},
                     "arrival": {"type": "closed_loop", "concurrency": 3}},
        "acceptance": {"alpha": 0.5},
        "simulation": {"duration_s": 5, "max_requests": 3},
    })
    one = prefill_ms(1, 64)
    ttfts = sorted(res.requests.column("ttft_ms").to_pylist())
    assert ttfts[0] == pytest.approx(one, rel=1e-3)
    assert ttfts[1] == pytest.approx(ttfts[2], rel=1e-9)
    # The shared step costs the two prefills batched, plus at most a decode step.
    shared = ttfts[1] - one
    assert prefill_ms(2, 64) <= shared <= prefill_ms(2, 64) + step_ms(1, 1, 128)


def test_committed_profiles_load():
    root = Path(__file__).resolve().parents[1] / "profiles"
    files = sorted(root.glob("*.csv"))
    if not files:
        pytest.skip("no committed profiles")
    cat = load_catalog()
    for path in files:
        prof = read_profile(path)
        assert prof.metadata["format"] == "dsd-profile/1" and prof.metadata["device"] == "cpu"
        for name in prof.models():
            try:
                model = cat.model(name)
            except Exception:  # tiny test models are not in the catalog
                continue
            step = TablePredictor(path).bind(Deployment(cat.gpu("cpu"), model))
            assert 0 < step.step_s(1, 3, 100, 300) < 10


def test_a_ragged_batch_is_priced_padded_to_its_longest_sequence(profile, hw):
    # The runtime left-pads every cache to the longest, so a measured table prices a
    # ragged decode/verify batch at the longest context, above its mean-context twin.
    from dsd.perf import BatchShape

    step = make_predictor({"type": "table", "path": str(profile)}).bind(hw)
    ragged = BatchShape.of([(3, 1021), (3, 61)])
    padded = step.step_s(2, 6, 2 * 1021, 0)
    assert step.step_s(*ragged.args()) == pytest.approx(padded)
    assert step.step_s(*ragged.args()) > step.step_s(*ragged.args()[:4])
    assert padded * 1000 == pytest.approx(step_ms(2, 3, 1021))
    # uniform batches and prefills are unchanged
    even = BatchShape.of([(3, 541), (3, 541)])
    assert step.step_s(*even.args()) == step.step_s(*even.args()[:4])
    prefills = BatchShape.of([(64, 0), (16, 0)])
    assert step.step_s(*prefills.args()) == step.step_s(*prefills.args()[:4])

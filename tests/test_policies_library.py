"""Decision rules of the policy library: routers, LAB, the SLO batcher and its estimator,
early-stopping windows, and the mode selector."""

import math

import pytest

from dsd.catalog import load_catalog
from dsd.perf import Deployment, RooflinePredictor
from dsd.policies import (
    BATCHERS,
    MODE_SELECTORS,
    ROUTERS,
    WINDOWS,
    ModeState,
    RequestView,
    TargetView,
    VerifyTimeEstimator,
)

REQ = RequestView(0, 0, 50, 100)


class Job:
    def __init__(self, rid: int, q: int = 5, ctx: int = 100, t: float = 0.0,
                 deadline: float = math.inf, expected: float = 1.0) -> None:
        self.request_id, self.query_tokens, self.context_len = rid, q, ctx
        self.arrival_s, self.deadline_s, self.expected_tokens = t, deadline, expected


def test_round_robin_cycles_in_order() -> None:
    rr = ROUTERS.create("round-robin")
    views = [TargetView(i) for i in range(3)]
    assert [rr.choose(REQ, views) for _ in range(7)] == [0, 1, 2, 0, 1, 2, 0]


def test_least_work_counts_queued_and_remaining_tokens() -> None:
    lw = ROUTERS.create("least-work")
    views = [TargetView(0, outstanding_tokens=10, remaining_tokens=500),
             TargetView(1, outstanding_tokens=100, remaining_tokens=200),
             TargetView(2, queue_depth=0, running=0, outstanding_tokens=300, remaining_tokens=50)]
    assert lw.choose(REQ, views) == 1  # 300 < 350 < 510
    views[1].remaining_tokens = 400
    assert lw.choose(REQ, views) == 2


def test_p2c_picks_the_less_loaded_of_two_samples() -> None:
    p2c = ROUTERS.create("p2c", seed=3)
    views = [TargetView(0, queue_depth=9), TargetView(1, queue_depth=0)]
    assert all(p2c.choose(REQ, views) == 1 for _ in range(20))  # two targets: both sampled
    views = [TargetView(i, running=i) for i in range(8)]
    picks = [p2c.choose(REQ, views) for _ in range(2000)]
    assert 7 not in picks  # the most loaded target always loses its comparison
    assert picks.count(0) > picks.count(6)


def test_rtt_aware_trades_link_against_load_and_speed() -> None:
    rt = ROUTERS.create("rtt-aware")
    near_busy = TargetView(0, queue_depth=30, running=34, capacity=32, rtt_s=0.01, est_step_s=0.03)
    far_idle = TargetView(1, queue_depth=0, running=0, capacity=32, rtt_s=0.05, est_step_s=0.03)
    # 0.01 + 0.03 * 3 = 0.10 vs 0.05 + 0.03 = 0.08
    assert rt.choose(REQ, [near_busy, far_idle]) == 1
    far_idle.rtt_s = 0.09
    assert rt.choose(REQ, [near_busy, far_idle]) == 0
    fast = TargetView(2, rtt_s=0.02, est_step_s=0.01)
    slow = TargetView(3, rtt_s=0.02, est_step_s=0.04)
    assert rt.choose(REQ, [slow, fast]) == 2


def test_lab_keeps_prefills_apart_and_groups_similar_lengths() -> None:
    lab = BATCHERS.create("lab", max_batch=3)
    queue = [Job(0, q=5, ctx=1000), Job(1, q=600, ctx=0), Job(2, q=5, ctx=4000),
             Job(3, q=5, ctx=1200), Job(4, q=5, ctx=900), Job(5, q=5, ctx=300)]
    # Anchor 0 (oldest); the prefill (q=600) is incompatible; closest lengths first.
    assert [j.request_id for j in lab.select(queue, 0.0)] == [0, 4, 3]
    lab = BATCHERS.create("lab", max_batch=8, length_ratio=2.0)
    assert [j.request_id for j in lab.select(queue, 0.0)] == [0, 4, 3]  # 4000 and 300 too far
    prefills = [Job(1, q=600, ctx=0), Job(6, q=400, ctx=0), Job(0, q=5, ctx=1000)]
    assert [j.request_id for j in lab.select(prefills, 0.0)] == [1, 6]


def test_lab_mixed_lets_prefills_ride_after_the_similar_verifies() -> None:
    queue = [Job(0, q=5, ctx=1000), Job(1, q=600, ctx=0), Job(2, q=5, ctx=4000),
             Job(3, q=5, ctx=1200), Job(4, q=5, ctx=900), Job(5, q=5, ctx=300)]
    lab = BATCHERS.create("lab", max_batch=8, length_ratio=2.0, prefill="mixed")
    # Similar verifies closest first, then everything else oldest first.
    assert [j.request_id for j in lab.select(queue, 0.0)] == [0, 4, 3, 1, 2, 5]
    assert [j.request_id for j in BATCHERS.create("lab", max_batch=4, prefill="mixed")
            .select(queue, 0.0)] == [0, 4, 3, 5]
    with pytest.raises(ValueError, match="prefill"):
        BATCHERS.create("lab", prefill="sometimes")


def test_estimator_fits_the_roofline_within_a_few_percent() -> None:
    cat = load_catalog()
    step = RooflinePredictor().bind(Deployment(cat.gpu("A100"), cat.model("llama-2-70b"), 4))
    est = VerifyTimeEstimator.fit_step(step, max_batch=32, seed=1)
    import random

    rng = random.Random(5)
    shapes, times = [], []
    for _ in range(100):
        jobs = [(rng.randint(1, 17), rng.randint(16, 4096)) for _ in range(rng.randint(1, 32))]
        shape = (len(jobs), sum(q for q, _ in jobs), sum(c for _, c in jobs),
                 sum(q * (c + q) for q, c in jobs))
        shapes.append(shape)
        times.append(step.step_s(*shape))
    assert est.mape(shapes, times) < 0.05
    small = [i for i, s in enumerate(shapes) if s[0] <= 4]
    assert est.mape([shapes[i] for i in small], [times[i] for i in small]) < 0.05
    assert est.predict([(5, 1000)]) == est.predict_shape(1, 5, 1000, 5 * 1005)


def test_slo_batcher_serves_urgent_first_and_protects_deadlines() -> None:
    est = VerifyTimeEstimator((0.020, 0.001, 0.0, 0.0))  # 20 ms + 1 ms per job
    slo = BATCHERS.create("slo", max_batch=3, urgent_ms=10, estimator=est)
    now = 1.0
    queue = [Job(0, deadline=now + 1.0, expected=2.0), Job(1, deadline=now + 0.025),
             Job(2, deadline=now + 1.0, expected=4.0), Job(3, deadline=now + 1.0, expected=3.0)]
    # Job 1 is urgent (EDF first); the rest by expected tokens per predicted second.
    assert [j.request_id for j in slo.select(queue, now)] == [1, 2, 3]
    # A job whose cost would break an admitted deadline is left for the next batch.
    heavy = VerifyTimeEstimator((0.020, 0.004, 0.0, 0.0))
    slo = BATCHERS.create("slo", max_batch=8, urgent_ms=10, estimator=heavy)
    queue = [Job(0, deadline=now + 0.029), Job(1, deadline=now + 1.0), Job(2, deadline=now + 1.0)]
    assert [j.request_id for j in slo.select(queue, now)] == [0, 1]  # 28 ms; a third: 32 ms
    # A job already too late to make it does not block the others.
    queue = [Job(0, deadline=now - 1.0), Job(1, deadline=now + 1.0)]
    assert [j.request_id for j in slo.select(queue, now)] == [0, 1]


def test_slo_batcher_needs_an_estimator() -> None:
    slo = BATCHERS.create("slo")
    with pytest.raises(RuntimeError, match="bind"):
        slo.select([Job(0)], 0.0)


def test_wisp_controller_stops_at_the_first_low_confidence_token() -> None:
    ctl = WINDOWS.create("wisp", gamma_max=8)()
    assert WINDOWS.create("wisp").early_stop
    assert not ctl.stop_early(0, 0.9)
    assert ctl.stop_early(1, 0.2)
    assert ctl.next_gamma(None) == 8  # type: ignore[arg-type]


def test_specdecpp_stops_when_rejection_probability_accumulates() -> None:
    ctl = WINDOWS.create("specdecpp", threshold=0.5)()
    ctl.next_gamma(None)  # type: ignore[arg-type]
    assert not ctl.stop_early(0, 0.9)  # P(reject so far) 0.10
    assert not ctl.stop_early(1, 0.9)  # 0.19
    assert not ctl.stop_early(2, 0.8)  # 0.35
    assert ctl.stop_early(3, 0.7)  # 0.55 > 0.5
    assert not ctl.stop_early(0, 0.95)  # a new window starts afresh


def test_mode_selector_hysteresis_and_dwell() -> None:
    sel = MODE_SELECTORS.create("rtt-load", rtt_threshold_ms=50, load_slope_ms=20,
                                margin_ms=5, min_dwell_s=10)
    assert sel.choose(ModeState(0.030, 0.0, 0.0)) == "distributed"
    assert sel.choose(ModeState(0.053, 0.0, 20.0)) == "distributed"  # inside the margin
    assert sel.choose(ModeState(0.080, 0.0, 5.0)) == "distributed"  # dwell not over
    assert sel.choose(ModeState(0.080, 0.0, 20.0)) == "fused"
    assert sel.choose(ModeState(0.010, 0.0, 25.0)) == "fused"  # dwell again
    assert sel.choose(ModeState(0.060, 1.0, 31.0)) == "distributed"  # load lifts threshold to 70
    assert sel.switches == 2
    assert MODE_SELECTORS.create("rtt-load").choose(ModeState(0.2, 0.0, 0.0)) == "fused"

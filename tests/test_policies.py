"""Decision rules of the built-in policies."""

import pytest

from dsd.policies import (
    BATCHERS,
    ROUTERS,
    WINDOWS,
    RequestView,
    RoundResult,
    TargetView,
    UnknownPolicyError,
    WindowState,
)


class Job:
    def __init__(self, rid: int, q: int = 5, ctx: int = 100, t: float = 0.0) -> None:
        self.request_id, self.query_tokens, self.context_len = rid, q, ctx
        self.arrival_s, self.deadline_s = t, float("inf")


REQ = RequestView(0, 0, 50, 100)


def test_jsq_picks_fewest_queued_plus_running_then_lowest_rtt() -> None:
    jsq = ROUTERS.create("jsq")
    views = [TargetView(0, queue_depth=2, running=3, rtt_s=0.01),
             TargetView(1, queue_depth=1, running=2, rtt_s=0.05),
             TargetView(2, queue_depth=0, running=3, rtt_s=0.02)]
    assert jsq.choose(REQ, views) == 2  # 3 vs 5 vs 3: tie broken by RTT
    views[2].rtt_s = 0.09
    assert jsq.choose(REQ, views) == 1


def test_random_router_is_uniform_and_seeded() -> None:
    views = [TargetView(i) for i in range(4)]
    a = [ROUTERS.create("random", seed=1).choose(REQ, views) for _ in range(1)]
    r1, r2 = ROUTERS.create("random", seed=7), ROUTERS.create("random", seed=7)
    picks = [r1.choose(REQ, views) for _ in range(4000)]
    assert picks[:50] == [r2.choose(REQ, views) for _ in range(50)]
    for i in range(4):
        assert picks.count(i) == pytest.approx(1000, rel=0.1)
    assert a[0] in range(4)


def test_fifo_takes_a_prefix_within_batch_and_token_limits() -> None:
    fifo = BATCHERS.create("fifo", max_batch=3, max_batch_tokens=12)
    queue = [Job(i, q=5) for i in range(5)]
    assert [j.request_id for j in fifo.select(queue, 0.0)] == [0, 1]  # 15 tokens > 12
    fifo = BATCHERS.create("fifo", max_batch=3)
    assert [j.request_id for j in fifo.select(queue, 0.0)] == [0, 1, 2]
    # One job larger than the token budget still runs alone rather than starving.
    big = BATCHERS.create("fifo", max_batch=3, max_batch_tokens=4)
    assert [j.request_id for j in big.select([Job(9, q=100)], 0.0)] == [9]


def test_static_window_is_fixed_and_shared() -> None:
    factory = WINDOWS.create("static", gamma=6)
    assert factory.fixed_gamma == 6
    assert factory().next_gamma(WindowState()) == 6
    with pytest.raises(ValueError):
        WINDOWS.create("static", gamma=0)


def test_dynamic_window_follows_last_acceptance() -> None:
    ctl = WINDOWS.create("dynamic")()
    assert ctl.next_gamma(WindowState()) == 4
    ctl.observe(RoundResult(gamma=4, accepted=1, round_time_s=0.1, rtt_s=0.02))  # 0.25
    assert ctl.next_gamma(WindowState()) == 2
    ctl.observe(RoundResult(gamma=2, accepted=2, round_time_s=0.1, rtt_s=0.02))  # 1.0
    assert ctl.next_gamma(WindowState()) == 8
    ctl.observe(RoundResult(gamma=8, accepted=4, round_time_s=0.1, rtt_s=0.02))  # 0.5
    assert ctl.next_gamma(WindowState()) == 4
    # Sessions do not share state.
    assert WINDOWS.create("dynamic")().next_gamma(WindowState()) == 4


def test_unknown_policy_and_bad_params_are_clear() -> None:
    with pytest.raises(UnknownPolicyError, match="unknown router policy 'nope'.*jsq"):
        ROUTERS.create("nope")
    with pytest.raises(UnknownPolicyError, match="batcher 'fifo' takes no parameter 'colour'"):
        BATCHERS.create("fifo", colour="red")

"""Greedy distributed speculative decoding equals target-only greedy, token for token."""

from __future__ import annotations

import asyncio

import pytest

torch = pytest.importorskip("torch")

from rt_helpers import collect, make_edge, reference_greedy, verifier_server  # noqa: E402

pytestmark = pytest.mark.runtime

PROMPTS = ["The quick brown fox", "hello", "Once upon a time there was", "def f(x):\n  return"]


@pytest.mark.parametrize("gamma", [1, 3, 6])
def test_greedy_matches_target_over_grpc(tiny, runners, gamma):
    tok, target, _ = tiny
    tr, dr = runners
    n = 40

    async def main():
        async with verifier_server(tr, max_batch=8, max_wait_ms=5) as (svc, port):
            engine = make_edge(dr, [port], gamma=gamma)
            await engine.start()
            ids = [tok(p).input_ids for p in PROMPTS]
            outs = await asyncio.gather(*[collect(engine, i, max_tokens=n) for i in ids])
            await engine.close()
            return ids, outs, svc.core.metrics

    ids, outs, metrics = asyncio.run(main())
    for i, out in zip(ids, outs, strict=False):
        assert out == reference_greedy(target, i, n)
    # several sessions were verified in one target forward
    hist = metrics.batch_size.collect()[0].samples
    count = next(s.value for s in hist if s.name.endswith("_count"))
    total = next(s.value for s in hist if s.name.endswith("_sum"))
    assert total > count, "no verify step batched more than one session"


def test_dynamic_window_and_stats(tiny, runners):
    tok, target, _ = tiny
    tr, dr = runners
    from dsd.runtime.edge import RequestStats

    async def main():
        async with verifier_server(tr) as (_, port):
            engine = make_edge(dr, [port], window="dynamic")
            await engine.start()
            ids = tok("statistics please").input_ids
            stats = RequestStats("r1", 0.0, len(ids))
            import time

            stats.arrival_s = time.perf_counter()
            out = await collect(engine, ids, max_tokens=50, stats=stats)
            await engine.close()
            return ids, out, stats

    ids, out, stats = asyncio.run(main())
    assert out == reference_greedy(target, ids, 50)
    assert stats.output_tokens == 50 and stats.rounds == len(stats.gamma_history)
    # the policy's choices (2/4/8), clamped only near max_tokens
    assert set(stats.gamma_history[:-3]) <= {2, 4, 8} and max(stats.gamma_history) <= 8
    assert len(set(stats.gamma_history)) > 1  # the dynamic policy changed gamma
    assert 0 < stats.accepted < stats.drafted  # acceptance neither 0 nor 1
    # every round emits accepted + 1 tokens; the prefill emits the first
    assert stats.output_tokens == 1 + stats.accepted + stats.rounds
    assert stats.ttft_s > 0 and stats.tpot_s > 0
    # where the time went: the verifier's share and the link's, for the open and the rounds
    rec = stats.as_dict()
    assert 0 < rec["open_server_ms"] and 0 < rec["open_link_ms"]
    assert rec["open_server_ms"] + rec["open_link_ms"] <= rec["ttft_ms"]
    assert 0 < rec["round_server_ms"] and 0 < rec["round_link_ms"]


def test_link_timings_separate_the_emulated_delay(tiny, runners):
    """The edge's link time is the round trip minus the verifier's time, so an emulated
    20 ms RTT shows up there and not in the verifier's share."""
    tok, _, _ = tiny
    tr, dr = runners
    from dsd.runtime.edge import RequestStats

    async def main():
        async with verifier_server(tr) as (_, port):
            engine = make_edge(dr, [port], gamma=3, emulate_rtt_s=0.020)
            await engine.start()
            ids = tok("where did the time go").input_ids
            import time

            stats = RequestStats("r1", time.perf_counter(), len(ids))
            await collect(engine, ids, max_tokens=12, stats=stats)
            await engine.close()
            return stats.as_dict()

    rec = asyncio.run(main())
    for key in ("open_link_ms", "round_link_ms"):
        assert 20.0 <= rec[key] < 20.0 + 50.0, key
    assert rec["ttft_ms"] >= rec["open_link_ms"] + rec["open_server_ms"]


def test_fused_and_cloud_only_modes_match(tiny, runners):
    tok, target, _ = tiny
    tr, dr = runners
    from dsd.runtime.fused import cloud_only_engine, fused_engine, make_window

    ids = [tok(p).input_ids for p in PROMPTS[:3]]

    async def main():
        fused = fused_engine(dr, tr, make_window("static", 3))
        cloud = cloud_only_engine(tr)
        await fused.start()
        await cloud.start()
        a = await asyncio.gather(*[collect(fused, i, max_tokens=30) for i in ids])
        b = await asyncio.gather(*[collect(cloud, i, max_tokens=30) for i in ids])
        rounds = cloud.recent[-1]["drafted_tokens"]
        await fused.close()
        await cloud.close()
        return a, b, rounds

    a, b, cloud_drafted = asyncio.run(main())
    for i, x, y in zip(ids, a, b, strict=False):
        ref = reference_greedy(target, i, 30)
        assert x == ref and y == ref
    assert cloud_drafted == 0


def test_eos_stops_generation(tiny, runners):
    tok, target, _ = tiny
    tr, dr = runners
    ids = tok("The quick brown fox").input_ids
    ref = reference_greedy(target, ids, 20)
    stop_tok = ref[7]
    from dsd.runtime.fused import fused_engine

    async def main():
        eng = fused_engine(dr, tr)
        eng.eos_ids = {stop_tok}
        await eng.start()
        out = await collect(eng, ids, max_tokens=20, ignore_eos=False)
        reason = eng.recent[-1]["finish_reason"]
        await eng.close()
        return out, reason

    out, reason = asyncio.run(main())
    assert out == ref[: ref.index(stop_tok)] and reason == "stop"

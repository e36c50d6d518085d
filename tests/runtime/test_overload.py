"""Overload and bounds: capacity refusals queue and retry instead of failing, /health tracks the
verifier's real state, queues are bounded (429 + Retry-After beyond them), sessions time out
and are capped per peer, the context limit is refused cleanly, memory stays flat."""

from __future__ import annotations

import asyncio
import random
import socket
import time

import pytest

torch = pytest.importorskip("torch")
httpx = pytest.importorskip("httpx")

from attacks import stream_completion  # noqa: E402
from rt_helpers import collect, edge_stack, make_edge, verifier_server  # noqa: E402

pytestmark = pytest.mark.runtime


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _streams(base: str, n: int, max_tokens: int, timeout: float = 300) -> list[dict]:
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    async with httpx.AsyncClient(base_url=base, timeout=timeout, limits=limits) as c:
        return await asyncio.gather(*[
            stream_completion(c, {"prompt": f"stream {i}", "max_tokens": max_tokens,
                                  "ignore_eos": True, "temperature": 0 if i % 2 else 0.8,
                                  "seed": i})
            for i in range(n)])


def _complete(r: dict, n: int) -> bool:
    return (r["status"] == 200 and r["done"] and not r["error"]
            and r["final"]["usage"]["completion_tokens"] == n)


def test_a_full_verifier_queues_requests_and_stays_up(tiny, backend_runners):
    """--max-sessions 2 and 3 requests: the third waits for a session, nothing fails, and
    the verifier is never reported down."""
    tok = tiny[0]

    async def main():
        async with edge_stack(backend_runners, tok, verifier_kw={"max_sessions": 2}) as (
                base, svc):
            async with httpx.AsyncClient(base_url=base, timeout=60) as c:
                body = {"prompt": "queue me", "max_tokens": 40, "ignore_eos": True}
                results = await asyncio.gather(*[c.post("/v1/completions", json=body)
                                                 for _ in range(3)])
                health = await c.get("/health")
            return results, health, svc.core.metrics

    results, health, metrics = asyncio.run(main())
    assert [r.status_code for r in results] == [200, 200, 200]
    assert all(r.json()["usage"]["completion_tokens"] == 40 for r in results)
    assert health.status_code == 200 and health.json()["verifiers"][0]["up"]
    assert metrics.sessions_waiting._value.get() == 0


def test_capacity_refusals_are_retried_not_failures(tiny, backend_runners):
    """With no verifier queue (refused at once with RESOURCE_EXHAUSTED) the edge waits and
    retries; the verifier stays up for everyone."""
    tok = tiny[0]

    async def main():
        async with edge_stack(backend_runners, tok,
                              verifier_kw={"max_sessions": 2, "max_queue": 0}) as (base, svc):
            async with httpx.AsyncClient(base_url=base, timeout=60) as c:
                body = {"prompt": "refuse me", "max_tokens": 30, "ignore_eos": True}
                results = await asyncio.gather(*[c.post("/v1/completions", json=body)
                                                 for _ in range(4)])
                health = await c.get("/health")
                metrics = (await c.get("/metrics")).text
            refused = svc.core.metrics.errors.labels(code="resource_exhausted")._value.get()
            return results, health, metrics, refused

    results, health, metrics, refusals = asyncio.run(main())
    assert [r.status_code for r in results] == [200] * 4
    assert refusals > 0  # the verifier did refuse...
    assert "dsd_edge_verifier_busy_waits_total 0.0" not in metrics  # ...the edge waited
    assert health.status_code == 200 and health.json()["verifiers"][0]["up"]


def test_health_follows_the_verifier_and_a_restart_is_used_within_1s(tiny, runners):
    tok = tiny[0]
    tr, dr = runners
    port = _free_port()

    async def wait_health(c, code, within_s, running=None):
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < within_s:
            r = await c.get("/health")
            if r.status_code == code and (
                    running is None or r.json()["verifiers"][0]["running"] == running):
                return time.perf_counter() - t0, r.json()
            await asyncio.sleep(0.02)
        raise AssertionError(f"/health not {code} within {within_s}s: {r.json()}")

    async def main():
        from dsd.runtime.launch import start_edge_server

        engine = make_edge(dr, [port])
        srv = await start_edge_server(engine, tok, "tiny", "127.0.0.1", 0)
        base = f"http://127.0.0.1:{srv.port}"
        try:
            async with httpx.AsyncClient(base_url=base, timeout=30) as c:
                async with verifier_server(tr, port=port):
                    await wait_health(c, 200, 5)  # picked up in the background, no request
                    r = await c.post("/v1/completions", json={"prompt": "a", "max_tokens": 4})
                    assert r.status_code == 200
                    # the finished request's session is not reported as running for long
                    settle_s, _ = await wait_health(c, 200, 5, running=0)
                down_s, _ = await wait_health(c, 503, 10)  # stopped: seen without a request
                async with verifier_server(tr, port=port):
                    up_s, _ = await wait_health(c, 200, 5)
                    r = await c.post("/v1/completions", json={"prompt": "b", "max_tokens": 4})
                return settle_s, down_s, up_s, r.status_code
        finally:
            await srv.stop()

    settle_s, down_s, up_s, status = asyncio.run(main())
    assert settle_s < 2
    assert down_s < 10
    assert up_s < 1.0, f"restarted verifier used after {up_s:.2f}s"
    assert status == 200


def test_a_hung_verifier_cools_down_although_its_health_probe_passes(tiny, runners):
    """A verifier whose connection is up but whose target stopped answering passes the gRPC
    health probe; after a request timed out on it, it stays out of routing for a while."""
    from dsd.runtime.edge import RequestStats
    from dsd.runtime.verifier import Fault

    tok = tiny[0]
    tr, dr = runners
    ids = tok("hang here").input_ids

    async def main():
        async with verifier_server(tr) as (bad, p1), verifier_server(tr) as (_, p2):
            bad.fault = Fault("hang", after=2)
            engine = make_edge(dr, [p1, p2], round_timeout_s=0.5, down_seconds=5.0)
            await engine.start()
            engine.endpoints[1].rtt_ema = 1.0  # JSQ breaks ties towards the hanging one
            stats = []
            for i in range(2):
                st = RequestStats(f"r{i}", time.perf_counter(), len(ids))
                await collect(engine, ids, max_tokens=24, stats=st)
                stats.append(st)
                await asyncio.sleep(0.6)  # several probe intervals: the probe passes
            up = engine.endpoints[0].ready
            await engine.close()
            return stats, up

    (first, second), up = asyncio.run(main())
    assert first.retries == 1 and first.target_id == 1
    assert second.retries == 0 and second.target_id == 1  # not sent back to the hung one
    assert not up


def test_edge_queue_is_bounded_with_429_and_retry_after(tiny, runners):
    tok = tiny[0]

    async def main():
        async with edge_stack(runners, tok, max_running=2, max_queue=2) as (base, _):
            return await _streams(base, 8, max_tokens=48)

    results = asyncio.run(main())
    ok = [r for r in results if _complete(r, 48)]
    refused = [r for r in results if r["status"] == 429]
    assert len(ok) == 4 and len(refused) == 4, [(r["status"], r["error"]) for r in results]
    for r in refused:
        assert int(r["headers"]["retry-after"]) >= 1
        assert r["error"]["type"] == "rate_limit_error" and "queue" in r["error"]["message"]


def test_a_client_that_leaves_the_queue_is_dropped_at_once(tiny, runners):
    tok = tiny[0]

    async def main():
        # 20 ms per round keeps the holder running for seconds, however fast the engine.
        async with edge_stack(runners, tok, max_running=1,
                              emulate_rtt_s=0.02) as (base, _):
            async with httpx.AsyncClient(base_url=base, timeout=60) as c:
                body = {"prompt": "hold the slot", "max_tokens": 400, "ignore_eos": True}
                holder = asyncio.ensure_future(stream_completion(c, body))
                await asyncio.sleep(0.3)
                async with httpx.AsyncClient(base_url=base, timeout=0.5) as impatient:
                    gave_up = await asyncio.gather(
                        *[stream_completion(impatient, {**body, "stream": True})
                          for _ in range(3)], return_exceptions=True)
                await asyncio.sleep(0.2)
                health = (await c.get("/health")).json()
                holder.cancel()
                return gave_up, health

    gave_up, health = asyncio.run(main())
    assert all(isinstance(r, httpx.TimeoutException) for r in gave_up)
    assert health["waiting"] == 0 and health["running"] == 1


def _many_streams(tiny, runners, n: int, max_sessions: int, max_tokens: int):
    """n concurrent streams against a verifier with room for `max_sessions` sessions."""
    async def main():
        async with edge_stack(runners, tiny[0], max_wait_ms=2.0,
                              verifier_kw={"max_sessions": max_sessions}) as (base, svc):
            t0 = time.perf_counter()
            results = await _streams(base, n, max_tokens)
            return results, time.perf_counter() - t0, len(svc.core.sessions)

    return asyncio.run(main())


def test_streams_beyond_max_sessions_queue_with_zero_errors(tiny, backend_runners):
    results, _, left = _many_streams(tiny, backend_runners, n=48, max_sessions=12,
                                     max_tokens=12)
    bad = [(r["status"], r["error"]) for r in results if not _complete(r, 12)]
    assert not bad, bad[:3]
    assert left == 0


@pytest.mark.slow
def test_512_concurrent_streams_zero_errors(tiny, backend_runners):
    """The figure with its latency percentiles: benchmarks/runtime_concurrency.py."""
    results, _, left = _many_streams(tiny, backend_runners, n=512, max_sessions=256,
                                     max_tokens=32)
    assert not [r for r in results if not _complete(r, 32)]
    assert left == 0


async def _raw_session(port: int, prompt: list[int]):
    import grpc

    from dsd.runtime import protocol
    from dsd.runtime.proto import dsd_pb2 as pb

    ch = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    call = protocol.VerifierStub(ch).session(timeout=30)
    await call.write(pb.EdgeMessage(open=pb.Open(
        protocol_version=1, prompt_ids=prompt,
        sampling=pb.SamplingParams(temperature=0.0, top_p=1.0))))
    return ch, call


def test_idle_sessions_time_out_and_sessions_are_capped_per_peer(tiny, runners):
    import grpc

    tok, _, _ = tiny
    tr, dr = runners

    async def main():
        kw = {"idle_timeout_s": 0.5, "max_sessions_per_peer": 2}
        async with verifier_server(tr, service_kw=kw) as (svc, port):
            # A stopped edge: its session opens, then nothing more arrives.
            ch, idle = await _raw_session(port, [5, 6, 7])
            await idle.read()
            t0 = time.perf_counter()
            with pytest.raises(grpc.aio.AioRpcError) as timed_out:
                await idle.read()
            idle_s = time.perf_counter() - t0
            await ch.close()
            # One connection, three sessions: the third is refused (no queueing for it).
            ch = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
            from dsd.runtime import protocol
            from dsd.runtime.proto import dsd_pb2 as pb

            calls = []
            for _ in range(3):
                call = protocol.VerifierStub(ch).session(timeout=30)
                await call.write(pb.EdgeMessage(open=pb.Open(
                    protocol_version=1, prompt_ids=[1, 2, 3],
                    sampling=pb.SamplingParams(temperature=0.0, top_p=1.0))))
                calls.append(call)
            outcomes = []
            for call in calls:
                try:
                    outcomes.append((await call.read()).WhichOneof("kind"))
                except grpc.aio.AioRpcError as exc:
                    outcomes.append(exc.code().name)
            # Another peer (an edge on its own connection) is unaffected.
            engine = make_edge(dr, [port])
            await engine.start()
            out = await collect(engine, tok("fine").input_ids, max_tokens=8)
            await engine.close()
            for call in calls:
                call.cancel()
            await ch.close()
            await asyncio.sleep(0.2)
            return (timed_out.value, idle_s, outcomes, out, len(svc.core.sessions),
                    svc.core.metrics.idle_timeouts._value.get())

    timed_out, idle_s, outcomes, out, left, idle_count = asyncio.run(main())
    assert timed_out.code().name == "DEADLINE_EXCEEDED" and "idle" in timed_out.details()
    assert 0.4 < idle_s < 5 and idle_count == 1
    assert sorted(outcomes) == ["RESOURCE_EXHAUSTED", "opened", "opened"]
    assert len(out) == 8
    assert left == 0


def test_context_limit_is_refused_and_counted(tiny, backend_runners):
    import grpc

    from dsd.runtime.proto import dsd_pb2 as pb

    tr, _ = backend_runners
    limit = tr.max_context
    rng = random.Random(0)

    async def main():
        async with verifier_server(tr) as (svc, port):
            ch, call = await _raw_session(port, [rng.randrange(250) for _ in range(limit - 33)])
            await call.read()
            rounds, err = 0, None
            try:
                for rounds in range(1, 20):  # noqa: B007 - the round that was refused
                    await call.write(pb.EdgeMessage(verify=pb.Verify(round=rounds,
                                                                     draft_ids=[7] * 32)))
                    await call.read()
            except grpc.aio.AioRpcError as exc:
                err = exc
            await ch.close()
            await asyncio.sleep(0.1)
            return rounds, err, svc.core.metrics.context_limit._value.get(), len(svc.core.sessions)

    rounds, err, counted, left = asyncio.run(main())
    # 2015 + 1 committed: round 1 (32 drafts) fills the 2048 positions; round 2 is refused.
    assert rounds == 2 and err is not None
    assert err.code().name == "OUT_OF_RANGE" and "context length" in err.details()
    assert counted == 1 and left == 0


def test_edge_stops_at_the_verifiers_context_with_length(tiny, backend_runners):
    """A verifier with a shorter context than the edge's: the request ends with
    finish_reason 'length' at that context, not with an error."""
    tok = tiny[0]
    tr, dr = backend_runners

    class ShortContext:
        def __init__(self, runner):
            self._r, self.max_context = runner, 40

        def __getattr__(self, name):
            return getattr(self._r, name)

    async def main():
        from dsd.runtime.speculative import SamplingParams

        async with verifier_server(ShortContext(tr)) as (_, port):
            engine = make_edge(dr, [port])
            await engine.start()
            from dsd.runtime.edge import RequestStats

            ids = tok("twenty tokens of prompt").input_ids
            stats = RequestStats("r", time.perf_counter(), len(ids))
            out = []
            async for toks in engine.generate(ids, SamplingParams(), 100, True, stats=stats):
                out += toks
            await engine.close()
            return ids, out, stats

    ids, out, stats = asyncio.run(main())
    assert stats.finish_reason == "length"
    assert len(ids) + len(out) in (40, 41)


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def _memory_cycles(tiny, runners, cycles: int, per_cycle: int) -> list[float]:
    async def main():
        async with edge_stack(runners, tiny[0], max_wait_ms=2.0) as (base, _):
            rss = []
            for _ in range(cycles):
                results = await _streams(base, per_cycle, max_tokens=16)
                assert all(_complete(r, 16) for r in results)
                rss.append(_rss_mb())
            return rss

    return asyncio.run(main())


def test_memory_stays_flat_over_request_cycles(tiny, backend_runners):
    rss = _memory_cycles(tiny, backend_runners, cycles=4, per_cycle=16)
    # After a warm-up cycle, cycles do not accumulate memory (the edge keeps the statistics
    # of its last 1000 requests, a few kB each: the bound the slow test runs past).
    assert rss[-1] - rss[1] < 15, rss


@pytest.mark.slow
def test_memory_stays_flat_over_10_cycles_of_128_requests(tiny, backend_runners):
    rss = _memory_cycles(tiny, backend_runners, cycles=10, per_cycle=128)
    assert rss[-1] - rss[2] < 40, rss

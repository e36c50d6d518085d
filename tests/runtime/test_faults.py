"""Faults: dying / silent verifiers, no verifier left, handshake refusals, auth."""

from __future__ import annotations

import asyncio
import time

import pytest

torch = pytest.importorskip("torch")

from rt_helpers import collect, make_edge, reference_greedy, verifier_server  # noqa: E402

pytestmark = pytest.mark.runtime


@pytest.mark.parametrize("mode", ["hang", "abort"])
def test_retry_on_another_verifier_keeps_output_exact(tiny, runners, mode):
    from dsd.runtime.edge import RequestStats
    from dsd.runtime.verifier import Fault

    tok, target, _ = tiny
    tr, dr = runners
    ids = tok("The quick brown fox").input_ids
    n = 40

    async def main():
        async with verifier_server(tr) as (bad, p1), verifier_server(tr) as (good, p2):
            bad.fault = Fault(mode, after=3)
            engine = make_edge(dr, [p1, p2], round_timeout_s=1.0)
            await engine.start()
            engine.endpoints[1].rtt_ema = 1.0  # JSQ breaks the tie towards the faulty one
            stats = RequestStats("r", time.perf_counter(), len(ids))
            t0 = time.perf_counter()
            out = await asyncio.wait_for(collect(engine, ids, max_tokens=n, stats=stats), 60)
            elapsed = time.perf_counter() - t0
            await engine.close()
            return out, stats, elapsed, bad, good

    out, stats, elapsed, bad, good = asyncio.run(main())
    assert out == reference_greedy(target, ids, n)  # nothing lost or duplicated
    assert stats.retries == 1 and stats.target_id == 1
    assert elapsed < 20
    assert not bad.core.sessions and not good.core.sessions  # caches freed


def test_all_verifiers_down_gives_clear_error_fast(tiny, runners):
    from dsd.errors import DsdError
    from dsd.runtime.verifier import Fault

    tok, _, _ = tiny
    tr, dr = runners

    async def main():
        async with verifier_server(tr) as (svc, port):
            svc.fault = Fault("hang", after=1)
            engine = make_edge(dr, [port, 1], round_timeout_s=0.5)  # port 1: nothing listens
            await engine.start()
            t0 = time.perf_counter()
            with pytest.raises(DsdError, match="no verifier available"):
                await asyncio.wait_for(collect(engine, tok("x").input_ids, max_tokens=30), 30)
            dt = time.perf_counter() - t0
            await engine.close()
            return dt

    assert asyncio.run(main()) < 10


def test_verifier_killed_mid_request(tiny, runners):
    """A verifier process that goes away (server stopped) mid-generation."""
    from dsd.policies import BATCHERS
    from dsd.runtime.scheduler import VerifierCore
    from dsd.runtime.verifier import VerifierService, start_verifier_server

    tok, target, _ = tiny
    tr, dr = runners
    ids = tok("Once upon a time").input_ids

    async def main():
        core = VerifierCore(tr, BATCHERS.create("fifo"))
        svc = VerifierService(core)
        server, p1 = await start_verifier_server(svc, "127.0.0.1", 0)
        async with verifier_server(tr) as (_, p2):
            engine = make_edge(dr, [p1, p2], round_timeout_s=2.0)
            await engine.start()
            engine.endpoints[1].rtt_ema = 1.0  # the request starts on the one we kill
            out = []
            async for toks in engine.generate(ids, __import__(
                    "dsd.runtime.speculative", fromlist=["SamplingParams"]).SamplingParams(),
                    60, ignore_eos=True):
                out.extend(toks)
                if len(out) >= 10 and server is not None:
                    await server.stop(0)  # kill the verifier serving this request
                    await core.stop()
                    server = None
            retries = engine.recent[-1]["retries"]
            await engine.close()
            return out, retries

    out, retries = asyncio.run(main())
    assert out == reference_greedy(target, ids, 60)
    assert retries == 1


def test_tokenizer_mismatch_refused_at_connect(tiny, runners):
    from dsd.errors import DsdError
    from dsd.runtime.backends.hf import HFBackend
    from dsd.runtime.tiny import build_tokenizer

    tok, _, draft = tiny
    tr, _ = runners
    other = build_tokenizer()
    other.add_tokens(["<something-else>"])
    bad_draft = HFBackend(draft, other, "bad-draft")

    async def main():
        async with verifier_server(tr) as (_, port):
            engine = make_edge(bad_draft, [port])
            with pytest.raises(DsdError, match="tokenizer mismatch"):
                await engine.start()
            await engine.close()

    asyncio.run(main())


def test_bearer_token_and_protocol_version(tiny, runners):
    import grpc

    from dsd.errors import DsdError
    from dsd.runtime import protocol
    from dsd.runtime.proto import dsd_pb2 as pb

    tok, _, _ = tiny
    tr, dr = runners

    async def main():
        async with verifier_server(tr, token="s3cret") as (_, port):
            engine = make_edge(dr, [port], token="wrong")
            with pytest.raises(DsdError, match="bearer token"):
                await engine.start()
            await engine.close()
            ok = make_edge(dr, [port], token="s3cret")
            await ok.start()
            out = await collect(ok, tok("auth").input_ids, max_tokens=5)
            await ok.close()
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
                stub = protocol.VerifierStub(ch)
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await stub.hello(pb.HelloRequest(protocol_version=99), timeout=5,
                                     metadata=protocol.auth_metadata("s3cret"))
            return out, err.value

    out, err = asyncio.run(main())
    assert len(out) == 5
    assert err.code().name == "FAILED_PRECONDITION" and "protocol version 99" in err.details()


def test_malformed_verify_is_refused(tiny, runners):
    import grpc

    from dsd.runtime import protocol
    from dsd.runtime.proto import dsd_pb2 as pb

    tok, _, _ = tiny
    tr, _ = runners

    async def main():
        async with verifier_server(tr) as (svc, port):
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
                stub = protocol.VerifierStub(ch)
                call = stub.session(timeout=10)
                await call.write(pb.EdgeMessage(open=pb.Open(
                    protocol_version=1, prompt_ids=[1, 2, 3],
                    sampling=pb.SamplingParams(temperature=1.0, top_p=1.0))))
                opened = await call.read()
                await call.write(pb.EdgeMessage(verify=pb.Verify(round=1, draft_ids=[4, 5])))
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await call.read()
                await asyncio.sleep(0.1)
                return opened, err.value, len(svc.core.sessions)

    opened, err, left = asyncio.run(main())
    assert opened.WhichOneof("kind") == "opened"
    assert err.code().name == "INVALID_ARGUMENT" and "proposal" in err.details()
    assert left == 0

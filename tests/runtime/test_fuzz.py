"""Property-based fuzzing, bounded in examples and time.

- HTTP: schemathesis generates requests from the OpenAPI schema the edge serves (valid and
  invalid ones) and checks every answer: no server error, a documented status code and
  content type, a body that matches the documented schema, invalid data rejected.
- gRPC: hypothesis sends random message sequences (random ids, gamma, sizes, proposals, and
  orders) to the verifier while greedy requests run beside them: every rogue stream ends
  with a reply or a client-error status (never an internal error or a hang), and every
  greedy request still returns the target's exact output.
"""

from __future__ import annotations

import asyncio

import pytest

torch = pytest.importorskip("torch")
schemathesis = pytest.importorskip("schemathesis")
hypothesis = pytest.importorskip("hypothesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from rt_helpers import ServedStack, collect, make_edge, reference_greedy  # noqa: E402

pytestmark = pytest.mark.runtime

BOUNDED = settings(max_examples=20, deadline=None, database=None, derandomize=True,
                   suppress_health_check=list(HealthCheck))


def test_schemathesis_finds_no_server_error_or_schema_violation(tiny, runners):
    import requests
    from schemathesis import GenerationMode
    from schemathesis.checks import (
        content_type_conformance,
        negative_data_rejection,
        not_a_server_error,
        response_schema_conformance,
        status_code_conformance,
    )

    checks = [not_a_server_error, status_code_conformance, content_type_conformance,
              response_schema_conformance, negative_data_rejection]
    # A small max_tokens limit keeps every generated request cheap (larger ones get a 400).
    with ServedStack(runners, tiny[0], server_kw={"max_tokens_limit": 8}) as stack:
        spec = requests.get(stack.base + "/openapi.json", timeout=10).json()
        schema = schemathesis.openapi.from_dict(spec)
        session = requests.Session()
        ran = 0
        for result in schema.get_all_operations():
            op = result.ok()
            has_input = bool(list(op.iter_parameters())) or bool(op.body)
            modes = [GenerationMode.POSITIVE] + ([GenerationMode.NEGATIVE] if has_input else [])
            for mode in modes:
                @BOUNDED
                @given(case=op.as_strategy(generation_mode=mode))
                def fuzz(case):
                    nonlocal ran
                    case.call_and_validate(base_url=stack.base, session=session,
                                           checks=checks, timeout=30)
                    ran += 1

                fuzz()
    assert ran > 50  # every operation was exercised, with valid and invalid input


# Each stream starts with an Open, well-formed or hostile (out-of-vocabulary ids, NaN or
# out-of-range sampling, a wrong version), then sends a mix of well-formed and hostile
# messages; some streams are hostile from their first message.
_VALID_ID = st.integers(0, 258)
_ID = st.one_of(_VALID_ID, _VALID_ID, _VALID_ID, st.integers(259, 2**32 - 1))
_ANY_SAMPLING = st.builds(
    dict, temperature=st.floats(allow_nan=True, allow_infinity=True, width=32),
    top_p=st.floats(-1, 2, width=32), top_k=st.integers(0, 2**32 - 1))
_GREEDY = st.just({"temperature": 0.0, "top_p": 1.0, "top_k": 0})
_SAMPLED = st.builds(dict, temperature=st.floats(0.125, 2, width=32),
                     top_p=st.floats(0.0625, 1, width=32), top_k=st.integers(0, 300))
_GOOD_OPEN = st.builds(dict, kind=st.just("open"),
                       ids=st.lists(_VALID_ID, min_size=1, max_size=40),
                       sampling=st.one_of(_GREEDY, _SAMPLED), version=st.just(1))
_HOSTILE_OPEN = st.builds(dict, kind=st.just("open"), ids=st.lists(_ID, max_size=40),
                          sampling=st.one_of(_GREEDY, _SAMPLED, _ANY_SAMPLING),
                          version=st.sampled_from([1, 1, 1, 2]))
_PROB = st.one_of(st.floats(-1, 2, width=32), st.sampled_from([float("nan"), float("inf")]))


def _shaped_proposal(n: int):  # ids and probs of one length: their values get checked
    return st.builds(dict, ids=st.lists(_ID, min_size=n, max_size=n),
                     probs=st.lists(_PROB, min_size=n, max_size=n))


_GOOD_VERIFY = st.builds(dict, kind=st.just("verify"), ids=st.lists(_VALID_ID, max_size=6),
                         proposals=st.just([]))
_SAMPLED_VERIFY = st.integers(0, 5).flatmap(lambda g: st.builds(
    dict, kind=st.just("verify"), ids=st.lists(_ID, min_size=g, max_size=g),
    proposals=st.lists(st.integers(1, 6).flatmap(_shaped_proposal), min_size=g,
                       max_size=g)))
_RANDOM_VERIFY = st.builds(
    dict, kind=st.just("verify"), ids=st.lists(_ID, max_size=40),
    proposals=st.lists(st.builds(dict, ids=st.lists(_ID, max_size=6),
                                 probs=st.lists(_PROB, max_size=6)), max_size=5))
_ANY = st.one_of(_GOOD_VERIFY, _SAMPLED_VERIFY, _RANDOM_VERIFY, _HOSTILE_OPEN,
                 st.just({"kind": "close"}), st.just({"kind": "empty"}))
_MESSAGES = st.one_of(
    st.tuples(st.one_of(_GOOD_OPEN, _HOSTILE_OPEN), st.lists(_ANY, max_size=5)).map(
        lambda t: [t[0], *t[1]]),
    st.lists(_ANY, min_size=1, max_size=6))
CLIENT_ERRORS = {"INVALID_ARGUMENT", "FAILED_PRECONDITION", "OUT_OF_RANGE", "ABORTED",
                 "RESOURCE_EXHAUSTED"}


async def _send(port: int, messages: list[dict]) -> list[str]:
    """One stream of `messages`; returns what each produced (reply kind or status name)."""
    import grpc

    from dsd.runtime import protocol
    from dsd.runtime.proto import dsd_pb2 as pb

    def build(m):
        if m["kind"] == "open":
            s = m["sampling"]
            return pb.EdgeMessage(open=pb.Open(
                protocol_version=m["version"], prompt_ids=m["ids"],
                sampling=pb.SamplingParams(temperature=s["temperature"], top_p=s["top_p"],
                                           top_k=s["top_k"])))
        if m["kind"] == "verify":
            return pb.EdgeMessage(verify=pb.Verify(round=1, draft_ids=m["ids"], proposals=[
                pb.SparseDist(ids=q["ids"], probs=q["probs"]) for q in m["proposals"]]))
        return pb.EdgeMessage(close=pb.Close()) if m["kind"] == "close" else pb.EdgeMessage()

    seen = []
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        call = protocol.VerifierStub(ch).session(timeout=20)
        try:
            for m in messages:
                await call.write(build(m))
                if m["kind"] == "close":
                    await call.done_writing()
                reply = await asyncio.wait_for(call.read(), 15)
                if reply is grpc.aio.EOF:
                    seen.append("EOF")
                    break
                seen.append(reply.WhichOneof("kind"))
            else:
                await call.done_writing()
                await asyncio.wait_for(call.read(), 15)
        except grpc.aio.AioRpcError as exc:
            seen.append(exc.code().name)
        except asyncio.InvalidStateError:
            seen.append("closed")
    return seen


def test_grpc_message_fuzz_leaves_other_sessions_exact(tiny, backend_runners):
    tok, target, _ = tiny
    tr, dr = backend_runners
    prompts = [tok(f"steady {i}").input_ids for i in range(3)]
    refs = [reference_greedy(target, p, 24) for p in prompts]
    outcomes: list[list[str]] = []

    with ServedStack(backend_runners, tok, max_wait_ms=2.0) as stack:
        port = stack.svc.port
        engine = stack.run(_started_edge(dr, port))  # its channel belongs to that loop
        normal = {"done": 0, "wrong": []}

        async def steady():  # greedy requests beside the fuzzing, checked token for token
            while True:
                for p, ref in zip(prompts, refs, strict=True):
                    out = await collect(engine, p, max_tokens=24)
                    normal["done"] += 1
                    if out != ref:
                        normal["wrong"].append(out)

        task = stack.run(_start(steady()))

        @settings(BOUNDED, max_examples=60)
        @given(messages=_MESSAGES)
        def fuzz(messages):
            seen = stack.run(_send(port, messages), timeout=60)
            outcomes.append(seen)
            assert not (set(seen) - CLIENT_ERRORS - {"opened", "verdict", "EOF", "closed"}), seen

        try:
            fuzz()
        finally:
            stack.run(_cancel(task))
        after = [stack.run(collect(engine, p, max_tokens=24)) for p in prompts]
        stack.run(engine.close())
        sessions_left = len(stack.svc.core.sessions)

    assert normal["done"] >= 1 and not normal["wrong"], normal  # during the fuzzing
    assert after == refs  # and after it
    assert sessions_left == 0
    assert any("verdict" in o for o in outcomes) and any("INVALID_ARGUMENT" in o
                                                         for o in outcomes)


async def _started_edge(draft, port):
    engine = make_edge(draft, [port])
    await engine.start()
    return engine


async def _start(coro):
    return asyncio.ensure_future(coro)


async def _cancel(task):
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass

"""Session isolation at the verifier: no client can fail another client's session.

A close takes effect between steps; an exception in one session's part of a step fails that
session only; prompt ids are validated before the model; client hang-ups and rogue gRPC
sessions beside normal traffic cause no normal failure.
"""

from __future__ import annotations

import asyncio
import random
import threading

import pytest

torch = pytest.importorskip("torch")
httpx = pytest.importorskip("httpx")

from attacks import (  # noqa: E402
    ROGUE_KINDS,
    cancel_mid_verify,
    hang_up,
    rogue_session,
    stream_completion,
)
from rt_helpers import collect, edge_stack, make_edge, reference_greedy, verifier_server  # noqa: E402

pytestmark = pytest.mark.runtime


class _Wrapped:
    """A runner stand-in that forwards everything to the real runner unless overridden."""

    def __init__(self, runner) -> None:
        self._runner = runner

    def __getattr__(self, name):
        return getattr(self._runner, name)


class GatedRunner(_Wrapped):
    """Its steps that verify (feed sessions holding tokens) wait on a gate, so a test can
    act while such a step runs."""

    def __init__(self, runner) -> None:
        super().__init__(runner)
        self.entered, self.gate = threading.Event(), threading.Event()

    def forward_batch(self, steps):
        steps = list(steps)
        if any(s.kv.length > 0 for s in steps):
            self.entered.set()
            assert self.gate.wait(30)
        return self._runner.forward_batch(steps)


POISON = 200  # a valid token id that makes PoisonRunner raise, like a model bug would


class PoisonRunner(_Wrapped):
    def forward_batch(self, steps):
        steps = list(steps)
        if any(POISON in s.tokens for s in steps):
            raise RuntimeError("poisoned batch")
        return self._runner.forward_batch(steps)


def _core(runner, max_wait_ms: float = 0.0):
    from dsd.policies import BATCHERS
    from dsd.runtime.scheduler import VerifierCore

    kw = {"max_batch": 8, **({"max_wait_ms": max_wait_ms} if max_wait_ms else {})}
    return VerifierCore(runner, BATCHERS.create("fifo", **kw))


def test_close_during_a_batched_step_fails_no_other_session(backend_runners):
    from dsd.runtime.speculative import SamplingParams

    tr, _ = backend_runners
    gated = GatedRunner(tr)

    async def main():
        core = _core(gated, max_wait_ms=50)  # both verifies land in one step
        try:
            ka, _ = await core.open("a", [5, 6, 7, 8], SamplingParams())
            kb, _ = await core.open("b", [9, 10, 11], SamplingParams())
            va = asyncio.ensure_future(core.verify(ka, [1, 2, 3], None))
            vb = asyncio.ensure_future(core.verify(kb, [4, 5], None))
            assert await asyncio.to_thread(gated.entered.wait, 30)
            sess_a = core.sessions[ka]
            core.close(ka)  # the client hangs up while its job runs in the target thread
            gated.gate.set()
            a, b = await asyncio.gather(va, vb, return_exceptions=True)
            return a, b, sess_a, dict(core.sessions)
        finally:
            await core.stop()

    a, b, sess_a, left = asyncio.run(main())
    assert not isinstance(b, BaseException), b  # the other session of the step is unharmed
    assert 0 <= b.accepted <= 2 and b.batch_size == 2
    assert sess_a.kv is None  # freed once the step ended
    assert list(left) == [2]


def test_an_exception_in_one_session_fails_only_that_session(backend_runners):
    from dsd.runtime.scheduler import SessionFailed
    from dsd.runtime.speculative import SamplingParams

    tr, _ = backend_runners
    prompts = {"ok1": [5, 6, 7, 8], "ok2": [9, 10, 11], "bad": [12, 13]}
    drafts = {"ok1": [1, 2, 3], "ok2": [4, 5], "bad": [POISON, 1]}

    async def run(runner, names):
        core = _core(runner, max_wait_ms=50)
        try:
            keys = {n: (await core.open(n, prompts[n], SamplingParams()))[0] for n in names}
            outs = await asyncio.gather(*[core.verify(keys[n], drafts[n], None) for n in names],
                                        return_exceptions=True)
            poisoned_open = await asyncio.gather(
                core.open("p", [1, POISON], SamplingParams()), return_exceptions=True)
            return dict(zip(names, outs, strict=True)), poisoned_open[0], len(core.sessions)
        finally:
            await core.stop()

    outs, poisoned_open, left = asyncio.run(run(PoisonRunner(tr), ["ok1", "bad", "ok2"]))
    clean, _, _ = asyncio.run(run(tr, ["ok1", "ok2"]))
    assert isinstance(outs["bad"], SessionFailed)
    for name in ("ok1", "ok2"):  # same verdicts as in a step without the failing session
        assert not isinstance(outs[name], BaseException), outs[name]
        assert (outs[name].accepted, outs[name].next_token) == (
            clean[name].accepted, clean[name].next_token)
    assert isinstance(poisoned_open, SessionFailed)  # a failed prefill fails its session only
    assert left == 3  # the three sessions stay open; the failed prefill freed its own


def _hangups_beside_streams(tiny, runners, n_hangups: int):
    """Half the hang-ups are HTTP clients that leave mid-stream; the other half do at the
    verifier what an edge does when its client leaves: cancel the stream mid-verify."""
    tok = tiny[0]
    rng = random.Random(0)

    async def hang_ups(base, port):
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as c:
            pending: set[asyncio.Task] = set()
            for i in range(n_hangups):
                if i % 2:
                    body = {"prompt": f"gone {i}", "max_tokens": 64, "ignore_eos": True}
                    job = hang_up(c, body, rng.uniform(0.02, 0.4))
                else:
                    job = cancel_mid_verify(port, len(tok), rng)
                pending.add(asyncio.ensure_future(job))
                if len(pending) >= 24:
                    _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            await asyncio.gather(*pending)

    async def normal(base, i):
        async with httpx.AsyncClient(base_url=base, timeout=120) as c:
            results = []
            for j in range(3):  # each normal client streams a few requests over the attack
                body = {"prompt": f"client {i}.{j} says", "max_tokens": 24, "ignore_eos": True,
                        "temperature": 0}
                results.append(await stream_completion(c, body))
            return results

    async def main():
        async with edge_stack(runners, tok, max_wait_ms=2.0) as (base, svc):
            attack = asyncio.ensure_future(hang_ups(base, svc.port))
            normals = await asyncio.gather(*[normal(base, i) for i in range(16)])
            await attack
            await asyncio.sleep(0.5)
            return [r for rs in normals for r in rs], len(svc.core.sessions)

    return asyncio.run(main())


def test_client_hangups_beside_normal_streams(tiny, backend_runners):
    results, left = _hangups_beside_streams(tiny, backend_runners, n_hangups=100)
    bad = [(r["status"], r["error"]) for r in results
           if r["error"] or not r["done"] or r["final"]["usage"]["completion_tokens"] != 24]
    assert not bad, bad[:3]
    assert left == 0  # every session of a client that hung up was freed


@pytest.mark.slow
def test_1000_client_hangups_beside_16_streams(tiny, backend_runners):
    results, left = _hangups_beside_streams(tiny, backend_runners, n_hangups=1000)
    assert not [r for r in results if r["error"] or not r["done"]]
    assert left == 0


def test_rogue_sessions_beside_normal_streams(tiny, backend_runners):
    """100 rogue Open/Verify sessions (out-of-vocabulary ids, -1 as a 10-byte varint, bad
    gamma and proposals, messages out of order) beside 8 greedy streams: every rogue gets
    its own error, every normal stream its exact target-greedy output."""
    tok, target, _ = tiny
    tr, dr = backend_runners
    prompts = [tok(f"normal stream {i}").input_ids for i in range(8)]
    rng = random.Random(1)

    async def main():
        async with verifier_server(tr, max_batch=8, max_wait_ms=2) as (svc, port):
            engine = make_edge(dr, [port])
            await engine.start()

            async def rogues():
                codes = []
                for wave in range(10):
                    kinds = [ROGUE_KINDS[(wave * 10 + i) % len(ROGUE_KINDS)] for i in range(10)]
                    codes += await asyncio.gather(*[rogue_session(port, k, len(tok), rng)
                                                    for k in kinds])
                return codes

            outs, codes = await asyncio.gather(
                asyncio.gather(*[collect(engine, p, max_tokens=32) for p in prompts],
                               return_exceptions=True),
                rogues())
            await engine.close()
            await asyncio.sleep(0.3)
            return outs, codes, len(svc.core.sessions)

    outs, codes, left = asyncio.run(main())
    for p, out in zip(prompts, outs, strict=True):
        assert not isinstance(out, BaseException), out
        assert out == reference_greedy(target, p, 32)
    by_kind: dict[str, set[str]] = {}
    for i, code in enumerate(codes):
        by_kind.setdefault(ROGUE_KINDS[i % len(ROGUE_KINDS)], set()).add(code)
    for kind in ("oov_prompt", "minus_one", "oov_draft", "big_gamma", "double_open", "empty",
                 "bad_proposal", "nan_proposal", "oov_proposal", "bad_sampling"):
        assert by_kind[kind] == {"INVALID_ARGUMENT"}, (kind, by_kind[kind])
    assert by_kind["verify_first"] == {"FAILED_PRECONDITION"}
    assert left == 0

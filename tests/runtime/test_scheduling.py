"""The verifier's steps on the engine seam: chunked prefill mixed into verify steps, KV
budget admission (sessions wait, never fail for KV), one ragged forward per step.

Every test runs on both engines (HF transformers and llama.cpp on the tiny pair)."""

from __future__ import annotations

import asyncio
import statistics
import time

import pytest

torch = pytest.importorskip("torch")

from backend_helpers import KINDS, open_backend  # noqa: E402

pytestmark = pytest.mark.runtime

ENGINES = [k for k in KINDS if getattr(k, "values", (k,))[0] in ("hf", "llamacpp")]


class Recording:
    """Forwards to a backend and records every step's (new tokens, kept logits) per session."""

    def __init__(self, backend) -> None:
        self._backend = backend
        self.steps: list[list[tuple[int, int, int]]] = []  # (cached, new, keep) per session

    def __getattr__(self, name):
        return getattr(self._backend, name)

    def forward_batch(self, steps):
        steps = list(steps)
        self.steps.append([(s.kv.length, len(s.tokens), s.n_keep) for s in steps])
        return self._backend.forward_batch(steps)


def _core(backend, **kw):
    from dsd.policies import BATCHERS
    from dsd.runtime.scheduler import VerifierCore

    return VerifierCore(backend, BATCHERS.create("fifo", max_batch=16), **kw)


async def _verify_loop(core, key, stop: asyncio.Event, log: list[tuple[float, float]]):
    """A running session: verify a fixed 3-token draft until told to stop."""
    while not stop.is_set():
        t0 = time.perf_counter()
        await core.verify(key, [5, 6, 7], None)
        log.append((t0, time.perf_counter()))


def _stall(backend, chunk: int, long_prompt: list[int]):
    """Verify latencies of 3 running sessions that overlap a long prompt's prefill, and the
    steps the engine ran meanwhile."""
    from dsd.runtime.speculative import SamplingParams

    rec = Recording(backend)

    async def main():
        core = _core(rec, prefill_chunk=chunk)
        try:
            keys = [(await core.open(f"s{i}", [10 + i, 20, 30], SamplingParams()))[0]
                    for i in range(3)]
            stop, logs = asyncio.Event(), [[] for _ in keys]
            loops = [asyncio.ensure_future(_verify_loop(core, k, stop, log))
                     for k, log in zip(keys, logs, strict=True)]
            await asyncio.sleep(0.05)  # the sessions are running
            first = len(rec.steps)
            t0 = time.perf_counter()
            await core.open("long", long_prompt, SamplingParams())
            t1 = time.perf_counter()
            last = len(rec.steps)
            await asyncio.sleep(0.02)
            stop.set()
            await asyncio.gather(*loops)
            overlap = [b - a for log in logs for a, b in log if b > t0 and a < t1]
            return overlap, rec.steps[first:last], t1 - t0
        finally:
            await core.stop()

    return asyncio.run(main())


@pytest.mark.parametrize("kind", ENGINES)
def test_a_long_prompt_does_not_stall_running_sessions(kind):
    backend = open_backend(kind)
    try:
        long_prompt = [(7 * i) % 250 + 1 for i in range(1536)]
        _stall(backend, 64, long_prompt[:64])  # warm up both paths
        chunked, steps, prefill_s = _stall(backend, 64, long_prompt)
        whole, _, _ = _stall(backend, 4096, long_prompt)
    finally:
        backend.close()
    # The prompt went in 64 tokens per step, each step also verifying the running sessions.
    prompt_steps = [s for s in steps if any(new > 5 for _, new, _ in s)]
    assert len(prompt_steps) >= 1536 // 64
    assert all(sum(new for _, new, keep in s if new > 5) <= 64 for s in prompt_steps)
    assert sum(any(new <= 5 and cached for cached, new, _ in s) for s in prompt_steps) \
        >= len(prompt_steps) // 2
    # The running sessions kept verifying during the prefill, at a fraction of the latency
    # they see when the whole prompt is one step.
    assert len(chunked) >= 3 * len(prompt_steps) // 2
    assert statistics.median(chunked) < 0.5 * max(whole), (statistics.median(chunked),
                                                            max(whole), prefill_s)


@pytest.mark.parametrize("kind", ENGINES)
def test_sessions_wait_for_the_kv_budget_and_all_complete(kind):
    """8 sessions whose KV shares (prompt + max_new_tokens + max_gamma + 1 = 80 tokens)
    fit 3 at a time in a 240-256-token budget: the rest wait, none fails, every output
    equals its session's target-only greedy run alone."""
    from dsd.runtime.spec_loop import generate
    from dsd.runtime.speculative import SamplingParams

    backend = open_backend(kind, kv_capacity=240, max_sessions=16) if kind == "hf" else \
        open_backend(kind, kv_tokens=256, max_sessions=16)
    prompts = [[40 + i, 50, 60, 70 + i, 80, 90, 100] for i in range(8)]
    new = 40
    try:
        expected = [generate(backend, None, [p], new)[0][0] for p in prompts]

        async def main():
            core = _core(backend, max_gamma=32)
            peak = [0, 0]

            async def one(i):
                key, first = await core.open(f"r{i}", prompts[i], SamplingParams(),
                                             max_new_tokens=new)
                peak[0] = max(peak[0], core.admission.holding)
                peak[1] = max(peak[1], backend.kv_used)
                out = [first]
                while len(out) < new:
                    verdict = await core.verify(key, [], None)
                    out.append(verdict.next_token)
                    peak[1] = max(peak[1], backend.kv_used)
                core.close(key)
                return out

            try:
                outs = await asyncio.gather(*[one(i) for i in range(8)])
                return outs, peak, core.admission.used
            finally:
                await core.stop()

        outs, (most_sessions, most_kv), left = asyncio.run(main())
    finally:
        backend.close()
    assert outs == expected
    assert most_sessions == 3 and most_kv <= backend.kv_capacity and left == 0


@pytest.mark.parametrize("kind", ENGINES)
def test_a_verify_past_its_kv_share_is_refused_alone(kind):
    from dsd.runtime.scheduler import ContextLimitError
    from dsd.runtime.speculative import SamplingParams

    backend = open_backend(kind, kv_capacity=512) if kind == "hf" else \
        open_backend(kind, kv_tokens=512, max_sessions=4)

    async def main():
        core = _core(backend, max_gamma=4)
        try:
            key, _ = await core.open("rogue", [5, 6, 7], SamplingParams(), max_new_tokens=4)
            assert core.sessions[key].reserved == 3 + 4 + 5
            with pytest.raises(ContextLimitError, match="KV share of 12"):
                await core.verify(key, [1] * 9, None)  # 4 committed + 9 > 12
            other, _ = await core.open("fine", [8, 9], SamplingParams(), max_new_tokens=4)
            return await core.verify(other, [1, 2], None)
        finally:
            await core.stop()

    try:
        verdict = asyncio.run(main())
    finally:
        backend.close()
    assert 0 <= verdict.accepted <= 2


def test_prefills_and_verifies_of_a_step_share_one_forward(runners):
    from dsd.runtime.speculative import SamplingParams

    rec = Recording(runners[0])

    async def main():
        core = _core(rec)
        try:
            a, _ = await core.open("a", [5, 6, 7], SamplingParams())
            verify = asyncio.ensure_future(core.verify(a, [1, 2], None))
            opened = asyncio.ensure_future(core.open("b", [8, 9, 10, 11], SamplingParams()))
            await asyncio.gather(verify, opened)
        finally:
            await core.stop()

    asyncio.run(main())
    # step 1: a's prefill; step 2: a's verify (2 drafts + its last token) and b's prefill
    assert rec.steps == [[(0, 3, 1)], [(3, 3, 3), (0, 4, 1)]]

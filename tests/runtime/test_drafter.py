"""The edge drafts every session that is drafting in one batch: one draft forward per draft
position across them, with each session's tokens as if it drafted alone."""

from __future__ import annotations

import asyncio

import pytest

torch = pytest.importorskip("torch")

from backend_helpers import needs_llama, open_backend  # noqa: E402
from rt_helpers import collect, make_edge, verifier_server  # noqa: E402

pytestmark = pytest.mark.runtime

ENGINES = ["hf", pytest.param("llamacpp", marks=needs_llama)]


class Counting:
    def __init__(self, backend) -> None:
        self._backend = backend
        self.calls: list[int] = []  # sessions per forward_batch

    def __getattr__(self, name):
        return getattr(self._backend, name)

    def forward_batch(self, steps):
        steps = list(steps)
        self.calls.append(len(steps))
        return self._backend.forward_batch(steps)


def _alone(backend, committed: list[int], gamma: int) -> list[int]:
    """Greedy drafts of one session on its own."""
    kv = backend.new_kv()
    try:
        logits = backend.prefill(kv, committed)
        out = []
        for _ in range(gamma):
            out.append(int(torch.argmax(logits)))
            logits = backend.forward(kv, [out[-1]], keep=1)[-1]
        return out
    finally:
        kv.release()


@pytest.mark.parametrize("kind", ENGINES)
def test_sessions_drafting_together_share_one_forward_per_position(kind):
    from dsd.runtime.drafter import Drafter
    from dsd.runtime.speculative import SamplingParams

    backend = open_backend(kind, which="draft")
    counting = Counting(backend)
    prompts = [[10 + i, 20, 30 + i, 40][: 2 + i % 3] for i in range(6)]
    gammas = [4, 4, 2, 3, 4, 1]
    try:
        expected = [_alone(backend, p + [7], g) for p, g in zip(prompts, gammas, strict=True)]

        async def main():
            drafter = Drafter(counting)
            try:
                sessions = [drafter.session(list(p), SamplingParams()) for p in prompts]
                await asyncio.gather(*[drafter.prefill(s, len(s.committed)) for s in sessions])
                prefill_calls = list(counting.calls)
                for s in sessions:
                    s.committed.append(7)  # the verifier's first token
                drafts = await asyncio.gather(*[drafter.draft(s, g)
                                                for s, g in zip(sessions, gammas, strict=True)])
                for s in sessions:
                    drafter.close(s)
                return prefill_calls, [d[0] for d in drafts]
            finally:
                await drafter.stop()

        prefill_calls, drafts = asyncio.run(main())
    finally:
        backend.close()
    assert drafts == expected
    assert prefill_calls == [6]  # six prompts, one forward
    assert counting.calls[1:5] == [6, 5, 4, 3]  # positions 1-4: sessions still drafting
    # then, unless the sessions closed first, one forward caching every last draft
    assert counting.calls[5:] in ([], [6])
    assert backend.sessions == 0  # every session's draft KV released


def test_concurrent_requests_draft_in_batches_and_stay_lossless(tiny, backend_runners):
    from dsd.runtime.spec_loop import generate

    tok = tiny[0]
    tr, dr = backend_runners
    prompts = [tok(f"request number {i}").input_ids for i in range(8)]
    expected, _ = generate(tr, None, prompts, 24)

    async def main():
        async with verifier_server(tr, max_batch=8, max_wait_ms=2.0) as (_, port):
            engine = make_edge(dr, [port])
            await engine.start()
            try:
                outs = await asyncio.gather(*[collect(engine, p, max_tokens=24)
                                              for p in prompts])
                d = engine.drafter
                return outs, d.batched_sessions / d.batches
            finally:
                await engine.close()

    outs, per_forward = asyncio.run(main())
    assert outs == expected
    assert per_forward > 2  # most draft forwards carried several sessions


class Feeding(Counting):
    """Also records how many tokens each session fed per forward."""

    def __init__(self, backend) -> None:
        super().__init__(backend)
        self.fed: list[list[int]] = []

    def forward_batch(self, steps):
        steps = list(steps)
        self.fed.append([len(s.tokens) for s in steps])
        return super().forward_batch(steps)


def test_the_last_draft_is_cached_while_the_verifier_verifies():
    """After a round whose drafts were all accepted, the next round feeds one token (the
    bonus), not two: the drafter cached the last draft while the verdict was awaited."""
    from dsd.runtime.drafter import Drafter
    from dsd.runtime.speculative import SamplingParams

    backend = open_backend("hf", which="draft")
    feeding = Feeding(backend)

    async def main():
        drafter = Drafter(feeding)
        try:
            sess = drafter.session([11, 12, 13, 14], SamplingParams())
            await drafter.prefill(sess, 4)
            sess.committed.append(7)
            base = len(sess.committed)
            tokens, _ = await drafter.draft(sess, 3)
            await asyncio.sleep(0.2)  # the verifier is verifying: the extension runs now
            drafter.rollback(sess, base, 3)  # all three accepted, then a bonus token
            sess.committed.extend(tokens + [9])
            start = len(feeding.fed)
            await drafter.draft(sess, 2)
            drafter.close(sess)
            return feeding.fed[start][0], sess
        finally:
            await drafter.stop()

    first_feed, sess = asyncio.run(main())
    assert first_feed == 1 and sess.kv is None and backend.sessions == 0

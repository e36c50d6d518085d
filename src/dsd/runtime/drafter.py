"""The edge's drafter: every session that is drafting right now drafts in ONE batch.

Requests ask for work (`prefill`, `draft gamma tokens`) and await it; the drafter's loop
takes everything pending and runs it in the draft thread as ragged batches on the engine
seam: one `forward_batch` per draft position across the sessions drafting (position 0
feeds each session's uncommitted tail, later ones the token just drafted), prompt prefills
ride in the first of them in chunks of `prefill_chunk` tokens. Work that arrives while a
batch runs joins the next one. Each session samples its own tokens from its own logits with
the exact proposal distribution (`speculative.propose`).

Every engine call runs in the one draft thread (engines are not thread-safe). Rollbacks and
releases asked for by the event loop are recorded on the session and applied in that
thread before the session's next step.

KV is best effort at the edge: when the draft engine's KV budget or sessions run out, the
sessions that do not fit draft fewer tokens this round (possibly none: the verifier still
commits one token per round), and catch up on their context once room frees.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass, field

import torch

from dsd.runtime.backends import Backend, BackendError, KVBudgetError, KVHandle, Step
from dsd.runtime.engine_thread import EngineThread
from dsd.runtime.speculative import SamplingParams, SparseDist, make_generator, propose
from dsd.runtime.tasks import cancel_and_wait

log = logging.getLogger("dsd.runtime.drafter")


@dataclass(eq=False)
class DraftSession:
    """One request's draft state. `committed` is the list the edge commits tokens to."""

    committed: list[int]
    params: SamplingParams
    generator: torch.Generator
    vocab_limit: int  # ids at or past it are never proposed (the pair's shared vocabulary)
    kv: KVHandle | None = None  # made in the draft thread
    valid: float = math.inf  # cached tokens still valid (rollback, applied in the thread)
    confidence: float | None = None  # top-1 probability of the last draft (window feature)
    closed: bool = False


@dataclass(eq=False)
class _Work:
    sess: DraftSession
    future: asyncio.Future
    gamma: int = 0  # tokens to draft; 0 = a prefill of the first `upto` tokens
    upto: int = 0
    extend: list[int] | None = None  # cache these drafted tokens (nobody waits for it)
    tokens: list[int] = field(default_factory=list)
    proposals: list[SparseDist] = field(default_factory=list)
    error: BaseException | None = None
    done: bool = False


class Drafter:
    def __init__(self, backend: Backend, max_support: int = 256,
                 prefill_chunk: int = 256, cache_last_draft: bool = True) -> None:
        self.backend = backend
        # After a draft, feed its last token to the draft cache while the verifier verifies:
        # the next round then feeds one token (the correction or bonus) instead of two.
        self.cache_last_draft = cache_last_draft
        self.max_support = max_support
        self.prefill_chunk = prefill_chunk
        self._pending: list[_Work] = []
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._thread = EngineThread("dsd-draft")
        self.batches = 0  # draft forwards run (for tests and metrics)
        self.batched_sessions = 0  # sessions summed over those forwards

    # ---- the API the edge uses ------------------------------------------------------------

    def session(self, committed: list[int], params: SamplingParams,
                vocab_limit: int | None = None) -> DraftSession:
        limit = self.backend.vocab_size if vocab_limit is None else min(
            vocab_limit, self.backend.vocab_size)
        return DraftSession(committed, params,
                            make_generator(None if params.seed is None else params.seed + 1),
                            limit)

    async def prefill(self, sess: DraftSession, n: int) -> None:
        """Cache the first n committed tokens (the prompt)."""
        await self._submit(_Work(sess, self._future(), upto=n))

    async def draft(self, sess: DraftSession, gamma: int
                    ) -> tuple[list[int], list[SparseDist] | None]:
        """Draft up to gamma tokens after `committed`; returns (tokens, proposals or None
        for greedy). Fewer tokens when the draft engine's KV is full."""
        work = _Work(sess, self._future(), gamma=gamma)
        await self._submit(work)
        return work.tokens, (work.proposals if not sess.params.greedy else None)

    def rollback(self, sess: DraftSession, base: int, accepted: int) -> None:
        """The verifier accepted `accepted` of the drafts made at `base` committed tokens."""
        sess.valid = min(sess.valid, base + accepted)

    def discard_uncommitted(self, sess: DraftSession) -> None:
        """Drop cached drafts of a round that never got a verdict."""
        sess.valid = min(sess.valid, len(sess.committed))

    def close(self, sess: DraftSession) -> None:
        """The request is over: free its KV (in the draft thread, before any later step)."""
        sess.closed = True
        self._thread.submit(self._release, sess)

    @staticmethod
    def _release(sess: DraftSession) -> None:  # in the draft thread, after its last step
        if sess.kv is not None:
            sess.kv.release()
            sess.kv = None

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        for work in self._pending:
            if not work.future.done():
                work.future.set_exception(BackendError("drafter stopped"))
        self._pending.clear()
        await self._thread.stop()


    # ---- the loop -------------------------------------------------------------------------

    @staticmethod
    def _future() -> asyncio.Future:
        return asyncio.get_running_loop().create_future()

    async def _submit(self, work: _Work) -> None:
        if self._task is None:
            self._wake = asyncio.Event()
            self._task = asyncio.create_task(self._loop(), name="dsd-drafter")
        self._pending.append(work)
        self._wake.set()
        try:
            await work.future
        finally:
            if work in self._pending:  # the caller gave up while it waited
                self._pending.remove(work)

    async def _loop(self) -> None:
        while True:
            if not self._pending:
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = [w for w in self._pending if not w.future.done()]
            self._pending.clear()
            if not batch:
                continue
            try:
                await self._thread.run(self._run, batch)
            except Exception as exc:  # noqa: BLE001 - last resort: _run isolates sessions
                log.exception("draft step failed")
                for w in batch:
                    w.error = w.error or exc
            for w in batch:
                if w.future.done():
                    continue
                if w.error is not None:
                    w.future.set_exception(w.error)
                elif w.done:
                    w.future.set_result(None)
                    if w.gamma and w.tokens and self.cache_last_draft:
                        self._pending.append(_Work(w.sess, self._future(), extend=w.tokens[-1:],
                                                   upto=w.sess.kv.length + 1))
                else:  # a prefill with chunks left
                    self._pending.append(w)

    # ---- the draft thread -----------------------------------------------------------------

    def _run(self, batch: list[_Work]) -> None:
        live = []
        busy = {id(w.sess) for w in batch if w.extend is None}
        for w in batch:
            sess = w.sess
            if w.extend is not None and (sess.closed or sess.valid != math.inf
                                         or id(sess) in busy or sess.kv is None
                                         or sess.kv.length + 1 != w.upto):
                w.done = True  # the verdict came first: the next draft feeds what it needs
                continue
            if sess.closed:
                w.error = BackendError("draft session closed")
                continue
            if sess.kv is None:
                try:
                    sess.kv = self.backend.new_kv()
                except KVBudgetError:  # no draft slot now: draft nothing this time
                    w.done = True
                    continue
            if sess.kv.length > sess.valid:
                sess.kv.crop(int(sess.valid))
            sess.valid = math.inf
            live.append(w)
        for pos in range(max((w.gamma for w in live), default=0) or 1):
            steps, members = [], []
            for w in live:
                step = self._next_step(w, pos)
                if step is not None:
                    steps.append(step)
                    members.append(w)
            if not steps:
                break
            self._forward(steps, members)

    def _next_step(self, w: _Work, pos: int) -> Step | None:
        """What `w` feeds at draft position `pos` (None: nothing more this batch)."""
        sess, kv = w.sess, w.sess.kv
        if w.error is not None or w.done:
            return None
        if w.extend is not None:
            return Step(kv, w.extend, 0) if pos == 0 else None
        if w.gamma == 0:  # prefill: one chunk in the first forward
            if pos > 0:
                return None
            end = min(w.upto, kv.length + self.prefill_chunk)
            if end <= kv.length:
                w.done = True
                return None
            return Step(kv, sess.committed[kv.length:end], 0)
        if pos >= w.gamma or len(w.tokens) < pos:
            return None
        if pos == 0:
            if kv.length >= len(sess.committed):  # always feed at least the last token
                kv.crop(len(sess.committed) - 1)
            return Step(kv, sess.committed[kv.length:], 1)
        return Step(kv, [w.tokens[-1]], 1)

    def _forward(self, steps: list[Step], members: list[_Work]) -> None:
        # Sessions that do not fit the KV budget stop drafting (the latest joiners first).
        while steps and not self.backend.fits(sum(len(s.tokens) for s in steps)):
            steps.pop()
            members.pop().done = True
        if not steps:
            return
        try:
            rows = self.backend.forward_batch(steps)
        except Exception:  # noqa: BLE001 - rerun one by one: a bad session fails alone
            rows = []
            for step, w in zip(steps, members, strict=True):
                try:
                    rows.append(self.backend.forward_batch([step])[0])
                except Exception as exc:  # noqa: BLE001
                    w.error = exc
                    rows.append(None)
        self.batches += 1
        self.batched_sessions += len(steps)
        for w, logits in zip(members, rows, strict=True):
            if logits is None:
                continue
            if w.gamma == 0:
                w.done = w.extend is not None or w.sess.kv.length >= w.upto
                continue
            sess = w.sess
            try:
                tok, q, conf = propose(logits[-1, :sess.vocab_limit], sess.params,
                                       sess.generator, self.max_support)
            except Exception as exc:  # noqa: BLE001 - fails this session only
                w.error = exc
                continue
            w.tokens.append(tok)
            if q is not None:
                w.proposals.append(q)
            sess.confidence = conf
            if len(w.tokens) >= w.gamma:
                w.done = True

"""The verifier's core: target sessions, a job queue and the batch scheduler.

`VerifierCore` is transport-free: the gRPC service (verifier.py) and the in-process fused /
cloud-only engines call `open`, `verify` and `close`. Jobs wait in one queue; the scheduler
asks the batcher policy (`dsd.policies.BATCHERS`) which jobs form the next step, runs all
the step's verify jobs in ONE padded target forward (`ModelRunner.forward_batch`), prefills
the step's prefill jobs, then applies the lossless verification math per session.

Session invariant: `committed` holds prompt + output tokens; the target KV cache holds all
of them but the last, which is fed first in the next verify query.

Isolation: a session closed while its job runs in the target thread keeps its cache until
the step ends (the close takes effect between steps), and an exception while running one
session's part of a step fails that session only. Sessions beyond `max_sessions` wait in
a bounded FIFO (`admission.Admission`) instead of being refused.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import torch

from dsd.runtime.admission import Admission, Overloaded
from dsd.runtime.backend import KVState, ModelRunner
from dsd.runtime.metrics import VerifierMetrics
from dsd.runtime.speculative import (
    SamplingParams,
    SparseDist,
    make_generator,
    sample,
    target_probs,
    verify_greedy,
    verify_sampled,
)

log = logging.getLogger("dsd.runtime.verifier")


class CapacityError(Overloaded):
    """The verifier has no room for another session, and its queue is full or timed out."""


class ContextLimitError(RuntimeError):
    """A verify would run the session past the target's context length."""


def _settle(future: asyncio.Future, result: object) -> None:
    """Resolve a job's future with its result (or exception) unless already resolved."""
    if future.done():
        return
    if isinstance(result, Exception):
        future.set_exception(result)
    else:
        future.set_result(result)


class SessionClosed(RuntimeError):
    """The session was closed while a job was pending."""


class SessionFailed(RuntimeError):
    """Running this session's part of a step raised; only this session fails."""


@dataclass(eq=False)
class TargetSession:
    request_id: str
    params: SamplingParams
    generator: torch.Generator
    committed: list[int]
    kv: KVState = field(default_factory=KVState)
    busy: bool = False
    closed: bool = False
    in_step: bool = False  # a job of this session is in the target thread's current step
    rounds: int = 0
    opened_s: float = 0.0


@dataclass(eq=False)
class Job:
    """A queued unit of target work; exposes the batcher's VerifyJob view."""

    kind: str  # "prefill" | "verify"
    session: TargetSession
    request_id: int
    context_len: int
    query_tokens: int
    arrival_s: float
    future: asyncio.Future
    deadline_s: float = math.inf
    draft: list[int] = field(default_factory=list)
    proposals: list[SparseDist] | None = None


@dataclass(slots=True)
class Load:
    queue_depth: int = 0
    running: int = 0
    outstanding_tokens: int = 0
    capacity: int = 1
    batch_occupancy: float = 0.0


@dataclass(slots=True)
class VerifyOutcome:
    accepted: int
    next_token: int
    batch_size: int
    queue_s: float


class VerifierCore:
    def __init__(
        self,
        runner: ModelRunner,
        batcher,
        max_sessions: int = 256,
        metrics: VerifierMetrics | None = None,
        max_queue: int = 1024,
        queue_timeout_s: float = 300.0,
    ) -> None:
        self.runner = runner
        self.batcher = batcher
        self.max_sessions = max_sessions
        self.queue_timeout_s = queue_timeout_s
        self.metrics = metrics or VerifierMetrics()
        self.sessions: dict[int, TargetSession] = {}
        self.admission = Admission(max_sessions, max_queue, "session")
        self._queue: list[Job] = []
        self._ids = itertools.count(1)
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dsd-target")
        self._last_batch = 0

    # ---- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is None:
            self._wake = asyncio.Event()
            self._task = asyncio.create_task(self._loop(), name="dsd-verifier-scheduler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        for job in self._queue:
            if not job.future.done():
                job.future.set_exception(SessionClosed("verifier shutting down"))
        self._queue.clear()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def load(self) -> Load:
        cap = self.batcher.max_batch
        return Load(
            queue_depth=len(self._queue) + self.admission.waiting,
            running=len(self.sessions),
            outstanding_tokens=sum(j.query_tokens for j in self._queue),
            capacity=cap,
            batch_occupancy=self._last_batch / cap if cap else 0.0,
        )

    # ---- session API ----------------------------------------------------------------------

    async def open(self, request_id: str, prompt_ids: list[int], params: SamplingParams,
                   queue_timeout_s: float | None = None):
        """Create a session and prefill it, waiting for a free session slot first (FIFO,
        bounded). Returns (session_key, first_token). Raises CapacityError when the wait
        queue is full or the wait passes `queue_timeout_s`."""
        if len(prompt_ids) > self.runner.max_context:
            raise ContextLimitError(f"prompt of {len(prompt_ids)} tokens exceeds the context "
                                    f"length {self.runner.max_context}")
        timeout = self.queue_timeout_s if queue_timeout_s is None else queue_timeout_s
        self.metrics.sessions_waiting.set(self.admission.waiting + 1)
        try:
            await self.admission.acquire(timeout)
        except Overloaded as exc:
            self.metrics.capacity_refusals.inc()
            raise CapacityError(f"verifier is full: {exc}", exc.retry_after_s) from None
        finally:
            self.metrics.sessions_waiting.set(self.admission.waiting)
        sess = TargetSession(request_id, params, make_generator(params.seed), list(prompt_ids))
        sess.opened_s = time.perf_counter()
        key = next(self._ids)
        self.sessions[key] = sess
        self.metrics.sessions.set(len(self.sessions))
        try:
            first = await self._submit("prefill", sess, key, len(prompt_ids))
        except BaseException:
            self.close(key)
            raise
        return key, first

    async def verify(
        self, key: int, draft: list[int], proposals: list[SparseDist] | None
    ) -> VerifyOutcome:
        sess = self.sessions.get(key)
        if sess is None or sess.closed:
            raise SessionClosed("unknown or closed session")
        if sess.busy:
            raise RuntimeError("a verify is already pending for this session")
        # The forward feeds positions up to len(committed) - 1 + gamma: all must fit.
        if len(sess.committed) + len(draft) > self.runner.max_context:
            self.metrics.context_limit.inc()
            raise ContextLimitError(
                f"session at {len(sess.committed)} tokens + {len(draft)} draft tokens exceeds "
                f"the context length {self.runner.max_context}")
        query = len(sess.committed) - sess.kv.length + len(draft)
        return await self._submit("verify", sess, key, query, draft, proposals)

    def close(self, key: int) -> None:
        """Free a session. Safe at any time: a session whose job is in the running step
        keeps its cache until the step ends (the scheduler frees it then)."""
        sess = self.sessions.pop(key, None)
        if sess is None:
            return
        sess.closed = True
        if not sess.in_step:
            sess.kv = KVState()
        for job in [j for j in self._queue if j.session is sess]:
            self._queue.remove(job)
            if not job.future.done():
                job.future.set_exception(SessionClosed("session closed"))
        self.admission.release(time.perf_counter() - sess.opened_s)
        self.metrics.sessions.set(len(self.sessions))
        self.metrics.queue_depth.set(len(self._queue))

    async def _submit(self, kind, sess, key, query, draft=(), proposals=None):
        if self._task is None:
            await self.start()
        loop = asyncio.get_running_loop()
        job = Job(kind, sess, key, sess.kv.length, query, time.perf_counter(),
                  loop.create_future(), draft=list(draft), proposals=proposals)
        sess.busy = True
        self._queue.append(job)
        self.metrics.queue_depth.set(len(self._queue))
        self._wake.set()
        try:
            return await job.future
        finally:
            sess.busy = False
            if job in self._queue:  # cancelled by the caller while waiting
                self._queue.remove(job)

    # ---- scheduler ------------------------------------------------------------------------

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            wait = self.batcher.max_wait_s
            if wait > 0 and len(self._queue) < self.batcher.max_batch:
                oldest = min(j.arrival_s for j in self._queue)
                delay = oldest + wait - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                    if not self._queue:
                        continue
            now = time.perf_counter()
            batch = self.batcher.select(list(self._queue), now) or self._queue[:1]
            for job in batch:
                self._queue.remove(job)
                job.session.in_step = True
            self.metrics.queue_depth.set(len(self._queue))
            try:
                results = await loop.run_in_executor(self._pool, self._execute, batch, now, loop)
            except Exception as exc:  # noqa: BLE001 - last resort: _execute isolates sessions
                log.exception("target step failed")
                results = [exc] * len(batch)
            finally:
                for job in batch:  # closes during the step take effect now
                    job.session.in_step = False
                    if job.session.closed:
                        job.session.kv = KVState()
            for job, result in zip(batch, results, strict=False):
                _settle(job.future, result)

    def _execute(self, batch: list[Job], now: float, loop: asyncio.AbstractEventLoop) -> list:
        """Runs in the target thread: prefills, then one batched verify forward. A failure in
        one session's part (its prefill, its row of the batch, its verification) becomes that
        job's result; the other jobs of the step are unaffected."""
        results: dict[int, object] = {}
        for job in batch:
            self.metrics.queue_time.observe(now - job.arrival_s)
            if job.session.closed:
                results[id(job)] = SessionClosed("session closed")
        for job in batch:
            if job.kind == "prefill" and id(job) not in results:
                t0 = time.perf_counter()
                results[id(job)] = self._guard(job, self._prefill, job.session)
                self.metrics.forward_time.labels(kind="prefill").observe(time.perf_counter() - t0)
                # The first token goes out now, not after the step's other prefills and
                # verifies: sessions opened together get their first tokens one prefill apart.
                loop.call_soon_threadsafe(_settle, job.future, results[id(job)])
                self.metrics.prefill_tokens.inc(job.query_tokens)
        verifies = [j for j in batch if j.kind == "verify" and id(j) not in results]
        if verifies:
            self._last_batch = len(verifies)
            self.metrics.batch_size.observe(len(verifies))
            t0 = time.perf_counter()
            logits = self._forward_verifies(verifies, results)
            self.metrics.forward_time.labels(kind="verify").observe(time.perf_counter() - t0)
            for job, lg in zip(verifies, logits, strict=True):
                if lg is not None:
                    results[id(job)] = self._guard(job, self._finish_verify, job, lg,
                                                   len(verifies), now)
        return [results[id(job)] for job in batch]

    def _guard(self, job: Job, fn, *args):
        """Run one session's part of a step; an exception fails that session only."""
        try:
            return fn(*args)
        except Exception as exc:  # noqa: BLE001 - isolate the session, keep the step going
            log.warning("session %s failed in a %s step: %s: %s", job.session.request_id,
                        job.kind, type(exc).__name__, exc)
            self.metrics.errors.labels(code="session_failed").inc()
            return SessionFailed(f"{job.kind} failed: {type(exc).__name__}")

    def _forward_verifies(self, verifies: list[Job], results: dict) -> list:
        """Logits per verify job (None where the session failed): one batched forward; if
        it raises, each session alone, so that a bad row fails only its own session. The
        sessions' caches are untouched by a batched forward that raised (`forward_batch`
        stacks copies and writes the caches back only after the model ran)."""
        items = [(j.session.kv, j.session.committed[j.session.kv.length:] + j.draft)
                 for j in verifies]
        if len(items) > 1:
            try:
                return self.runner.forward_batch(items)
            except Exception as exc:  # noqa: BLE001 - find the failing session(s) below
                log.warning("batched verify of %d sessions failed (%s); running them one "
                            "by one", len(items), type(exc).__name__)
        return [self._guard_logits(job, kv, ids, results)
                for job, (kv, ids) in zip(verifies, items, strict=True)]

    def _guard_logits(self, job: Job, kv: KVState, ids: list[int], results: dict):
        out = self._guard(job, self.runner.forward_batch, [(kv, ids)])
        if isinstance(out, SessionFailed):
            results[id(job)] = out
            return None
        return out[0]

    def _pick(self, logits: torch.Tensor, sess: TargetSession) -> int:
        if sess.params.greedy:
            return int(torch.argmax(logits))
        return sample(target_probs(logits, sess.params), sess.generator)

    def _prefill(self, sess: TargetSession) -> int:
        sess.kv = KVState()
        logits = self.runner.forward(sess.kv, sess.committed, keep=1)
        token = self._pick(logits[-1], sess)
        sess.committed.append(token)
        return token

    def _finish_verify(self, job: Job, logits: torch.Tensor, bsz: int, now: float):
        sess = job.session
        gamma = len(job.draft)
        lg = logits[-(gamma + 1):]
        if sess.params.greedy:
            accepted, token = verify_greedy(job.draft, lg)
        else:
            p = target_probs(lg, sess.params)
            accepted, token = verify_sampled(job.draft, job.proposals or [], p, sess.generator)
        base = len(sess.committed)
        sess.kv.crop(base + accepted)
        sess.committed.extend(job.draft[:accepted])
        sess.committed.append(token)
        sess.rounds += 1
        self.metrics.spec.record(gamma, accepted)
        return VerifyOutcome(accepted, token, bsz, now - job.arrival_s)

"""The verifier's core: target sessions, a job queue and the step scheduler, on the engine seam.

`VerifierCore` is transport-free: the gRPC service (verifier.py) and the in-process fused /
cloud-only engines call `open`, `verify` and `close`. It sees the target model only through
`dsd.runtime.backends.Backend`: an opaque KV handle per session and `forward_batch` over a
ragged list of steps.

One step = ONE `forward_batch`: the batcher policy (`dsd.policies.BATCHERS`) picks queued
jobs, each verify job feeds its session's uncommitted tail plus its draft (logits for the
gamma + 1 verified positions only), and each prefill job feeds the next chunk of its prompt
(`prefill_chunk` tokens per step across all prefills, logits only for a prompt's last
position). A long prompt therefore goes in over several steps, each of which also carries
the running sessions' verifies: it does not stall them. Then the lossless verification
math runs per session.

Admission, as the simulator's target admits sessions: a session holds a KV reservation
(prompt + max_new_tokens + max_gamma + 1 tokens, capped at the context) for its whole life,
so a running session never fails for KV; sessions that do not fit the backend's budget
(`kv_capacity`) or the session limit wait in a bounded FIFO (`admission.Admission`).

Session invariant: `committed` holds prompt + output tokens; the target KV cache holds all
of them but the last, which is fed first in the next verify query.

Isolation: every engine call runs in one target thread. A session closed while its job is
in the running step keeps its cache until the step ends (the close takes effect between
steps: its KV is released in the target thread), and an exception while running one
session's part of a step fails that session only (a batched forward that raises is rerun
session by session; the engine leaves every cache as it was).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import time
from dataclasses import dataclass, field

import torch

from dsd.runtime.admission import Admission, Overloaded
from dsd.runtime.backends import Backend, KVHandle, Step
from dsd.runtime.engine_thread import EngineThread
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
from dsd.runtime.tasks import cancel_and_wait

log = logging.getLogger("dsd.runtime.verifier")

MAX_GAMMA = 32  # the protocol's bound on draft tokens per round (protocol.MAX_GAMMA)


class CapacityError(Overloaded):
    """The verifier has no room for another session, and its queue is full or timed out."""


class ContextLimitError(RuntimeError):
    """A verify would run the session past the target's context length or its KV share."""


class SessionClosed(RuntimeError):
    """The session was closed while a job was pending."""


class SessionFailed(RuntimeError):
    """Running this session's part of a step raised; only this session fails."""


def _settle(future: asyncio.Future, result: object) -> None:
    """Resolve a job's future with its result (or exception) unless already resolved."""
    if future.done():
        return
    if isinstance(result, Exception):
        future.set_exception(result)
    else:
        future.set_result(result)


_MORE = object()  # a prefill job whose prompt has chunks left: it goes back in the queue


@dataclass(eq=False)
class TargetSession:
    request_id: str
    params: SamplingParams
    generator: torch.Generator
    committed: list[int]
    prompt_len: int
    max_new_tokens: int = 0  # 0: unknown (up to the context)
    vocab_limit: int = 0  # ids at or past it are never emitted (the pair's shared vocabulary)
    reserved: int = 0  # KV tokens held for it in the admission budget
    kv: KVHandle | None = None  # made in the target thread at its first step
    fed: int = 0  # prompt tokens prefilled so far
    busy: bool = False
    closed: bool = False
    in_step: bool = False  # a job of this session is in the target thread's current step
    rounds: int = 0
    opened_s: float = 0.0
    counted: int = 0  # its `remaining` as last added to the core's load (event-loop side)

    @property
    def remaining(self) -> int:
        """Output tokens it may still produce (0 when unknown or done)."""
        if not self.max_new_tokens:
            return 0
        return max(0, self.max_new_tokens - (len(self.committed) - self.prompt_len))


@dataclass(eq=False)
class Job:
    """A queued unit of target work; exposes the batcher's VerifyJob view."""

    kind: str  # "prefill" | "verify"
    session: TargetSession
    request_id: int
    context_len: int
    query_tokens: int  # a verify's gamma + 1 (+ uncommitted tail); a prefill's next chunk
    arrival_s: float
    future: asyncio.Future
    deadline_s: float = math.inf
    draft: list[int] = field(default_factory=list)
    proposals: list[SparseDist] | None = None

    @property
    def outstanding(self) -> int:
        """Tokens of work it still brings (a prefill: the rest of its prompt)."""
        if self.kind == "prefill":
            return self.session.prompt_len - self.session.fed
        return self.query_tokens


@dataclass(slots=True)
class Load:
    """What a verifier reports with every reply: the simulator's TargetView fields."""

    queue_depth: int = 0
    running: int = 0
    outstanding_tokens: int = 0
    capacity: int = 1
    batch_occupancy: float = 0.0
    remaining_tokens: int = 0  # output tokens its sessions (open or waiting) may still make
    # Measured time of a verify step of one session (EMA; 0 = none yet): as the simulator's
    # estimate, free of the load, which the routers weigh separately.
    est_step_s: float = 0.0


@dataclass(slots=True)
class VerifyOutcome:
    accepted: int
    next_token: int
    batch_size: int
    queue_s: float


class VerifierCore:
    def __init__(
        self,
        backend: Backend,
        batcher,
        max_sessions: int = 256,
        metrics: VerifierMetrics | None = None,
        max_queue: int = 1024,
        queue_timeout_s: float = 300.0,
        prefill_chunk: int = 256,
        max_gamma: int = MAX_GAMMA,
    ) -> None:
        if prefill_chunk < 1:
            raise ValueError("prefill_chunk must be >= 1")
        self.backend = backend
        self.batcher = batcher
        self.max_sessions = min(max_sessions, backend.max_sessions or max_sessions)
        self.queue_timeout_s = queue_timeout_s
        self.prefill_chunk = prefill_chunk
        self.max_gamma = max_gamma
        # The longest session: the engine's context, and no more than the whole KV budget.
        self.max_context = min(backend.max_context, backend.kv_capacity or backend.max_context)
        self.metrics = metrics or VerifierMetrics()
        self.sessions: dict[int, TargetSession] = {}
        self.admission = Admission(self.max_sessions, max_queue, "session",
                                   capacity=backend.kv_capacity)
        self._queue: list[Job] = []
        self._queued_tokens = 0
        self._remaining = 0  # remaining output tokens of open sessions
        self._remaining_waiting = 0  # the same for sessions waiting for admission
        self._step_ema_s = 0.0
        self._ids = itertools.count(1)
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._thread = EngineThread("dsd-target")
        self._last_batch = 0

    # ---- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is None:
            self._wake = asyncio.Event()
            self._task = asyncio.create_task(self._loop(), name="dsd-verifier-scheduler")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        for job in self._queue:
            if not job.future.done():
                job.future.set_exception(SessionClosed("verifier shutting down"))
        self._queue.clear()
        self._queued_tokens = 0
        for key in list(self.sessions):  # the engine may outlive this core: free its KV
            self.close(key)
        await self._thread.stop()

    def load(self) -> Load:
        cap = self.batcher.max_batch
        return Load(
            queue_depth=len(self._queue) + self.admission.waiting,
            running=len(self.sessions),
            outstanding_tokens=self._queued_tokens,
            capacity=cap,
            batch_occupancy=self._last_batch / cap if cap else 0.0,
            remaining_tokens=self._remaining + self._remaining_waiting,
            est_step_s=self._step_ema_s,
        )

    @property
    def vocab_size(self) -> int:
        return self.backend.vocab_size

    def reservation(self, prompt_tokens: int, max_new_tokens: int = 0) -> int:
        """KV tokens a session holds: everything it may cache, capped at the context."""
        new = max_new_tokens if max_new_tokens > 0 else self.max_context
        return min(self.max_context, prompt_tokens + new + self.max_gamma + 1)

    # ---- session API ----------------------------------------------------------------------

    async def open(self, request_id: str, prompt_ids: list[int], params: SamplingParams,
                   queue_timeout_s: float | None = None, max_new_tokens: int = 0,
                   vocab_limit: int | None = None):
        """Create a session and prefill it, waiting for a session slot and its KV share first
        (FIFO, bounded). Returns (session_key, first_token). Raises CapacityError when the
        wait queue is full or the wait passes `queue_timeout_s`."""
        if len(prompt_ids) > self.max_context:
            raise ContextLimitError(f"prompt of {len(prompt_ids)} tokens exceeds the context "
                                    f"length {self.max_context}")
        timeout = self.queue_timeout_s if queue_timeout_s is None else queue_timeout_s
        reserve = self.reservation(len(prompt_ids), max_new_tokens)
        self.metrics.sessions_waiting.set(self.admission.waiting + 1)
        self._remaining_waiting += max_new_tokens
        try:
            await self.admission.acquire(timeout, reserve)
        except Overloaded as exc:
            self.metrics.capacity_refusals.inc()
            raise CapacityError(f"verifier is full: {exc}", exc.retry_after_s) from None
        finally:
            self._remaining_waiting -= max_new_tokens
            self.metrics.sessions_waiting.set(self.admission.waiting)
        limit = self.vocab_size if vocab_limit is None else min(vocab_limit, self.vocab_size)
        sess = TargetSession(request_id, params, make_generator(params.seed), list(prompt_ids),
                             len(prompt_ids), max_new_tokens, limit, reserve)
        sess.opened_s = time.perf_counter()
        self._count_remaining(sess)
        key = next(self._ids)
        self.sessions[key] = sess
        self.metrics.sessions.set(len(self.sessions))
        self.metrics.kv_reserved.set(self.admission.used)
        try:
            first = await self._submit("prefill", sess, key, 0)
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
        # The forward caches positions up to len(committed) - 1 + gamma: all must fit.
        end = len(sess.committed) + len(draft)
        if end > self.max_context:
            self.metrics.context_limit.inc()
            raise ContextLimitError(
                f"session at {len(sess.committed)} tokens + {len(draft)} draft tokens exceeds "
                f"the context length {self.max_context}")
        if self.backend.kv_capacity is not None and end > sess.reserved:
            self.metrics.context_limit.inc()
            raise ContextLimitError(
                f"session at {len(sess.committed)} tokens + {len(draft)} draft tokens exceeds "
                f"its KV share of {sess.reserved} tokens (prompt + max_new_tokens + "
                f"{self.max_gamma + 1})")
        query = len(sess.committed) - sess.kv.length + len(draft)
        return await self._submit("verify", sess, key, query, draft, proposals)

    def close(self, key: int) -> None:
        """Free a session. Safe at any time: a session whose job is in the running step
        keeps its cache until the step ends (the scheduler frees it then)."""
        sess = self.sessions.pop(key, None)
        if sess is None:
            return
        sess.closed = True
        self._remaining -= sess.counted
        if not sess.in_step:
            self._release_kv([sess])
        for job in [j for j in self._queue if j.session is sess]:
            self._dequeue(job)
            if not job.future.done():
                job.future.set_exception(SessionClosed("session closed"))
        self.admission.release(time.perf_counter() - sess.opened_s, sess.reserved)
        self.metrics.sessions.set(len(self.sessions))
        self.metrics.queue_depth.set(len(self._queue))
        self.metrics.kv_reserved.set(self.admission.used)

    def _count_remaining(self, sess: TargetSession) -> None:
        """Bring the load's remaining-token sum up to date for one session (event loop)."""
        now = sess.remaining
        self._remaining += now - sess.counted
        sess.counted = now

    def _release_kv(self, sessions: list[TargetSession]):
        """Free the sessions' KV in the target thread (engines are not thread-safe); runs
        before any later step. Returns the concurrent future."""
        kvs = [s.kv for s in sessions if s.kv is not None]
        for s in sessions:
            s.kv = None
        if not kvs:
            return None

        def release() -> None:
            for kv in kvs:
                kv.release()

        return self._thread.submit(release)

    # ---- the queue ------------------------------------------------------------------------

    def _enqueue(self, job: Job, front: bool = False) -> None:
        if front:
            self._queue.insert(0, job)
        else:
            self._queue.append(job)
        self._queued_tokens += job.outstanding

    def _dequeue(self, job: Job) -> None:
        self._queue.remove(job)
        self._queued_tokens -= job.outstanding

    async def _submit(self, kind, sess, key, query, draft=(), proposals=None):
        if self._task is None:
            await self.start()
        loop = asyncio.get_running_loop()
        job = Job(kind, sess, key, sess.kv.length if sess.kv else 0, query, time.perf_counter(),
                  loop.create_future(), draft=list(draft), proposals=proposals)
        if kind == "prefill":
            job.query_tokens = min(self.prefill_chunk, sess.prompt_len)
        sess.busy = True
        self._enqueue(job)
        self.metrics.queue_depth.set(len(self._queue))
        self._wake.set()
        try:
            return await job.future
        finally:
            sess.busy = False
            if job in self._queue:  # cancelled by the caller while waiting
                self._dequeue(job)

    # ---- scheduler ------------------------------------------------------------------------

    def _select(self, now: float) -> list[Job]:
        """The batcher's pick, with the step's prefill budget: `prefill_chunk` prompt tokens
        in all. Prefills beyond it stay queued for the next step."""
        batch = self.batcher.select(list(self._queue), now) or self._queue[:1]
        budget, chosen = self.prefill_chunk, []
        for job in batch:
            if job.kind == "prefill":
                if budget <= 0:
                    continue
                job.query_tokens = min(budget, job.session.prompt_len - job.session.fed)
                budget -= job.query_tokens
            chosen.append(job)
        return chosen

    async def _loop(self) -> None:
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
            batch = self._select(now)
            for job in batch:
                self._dequeue(job)
                job.session.in_step = True
            self.metrics.queue_depth.set(len(self._queue))
            try:
                results = await self._thread.run(self._execute, batch, now)
            except Exception as exc:  # noqa: BLE001 - last resort: _execute isolates sessions
                log.exception("target step failed")
                results = [exc] * len(batch)
            closed = []
            for job in batch:  # closes during the step take effect now
                job.session.in_step = False
                if job.session.closed:
                    closed.append(job.session)
            done = self._release_kv(closed)
            if done is not None:
                await asyncio.wrap_future(done)
            again = [j for j, r in zip(batch, results, strict=True)
                     if r is _MORE and not j.session.closed]
            for job in reversed(again):  # the rest of their prompts: first in the next step
                job.context_len = job.session.fed
                job.query_tokens = min(self.prefill_chunk,
                                       job.session.prompt_len - job.session.fed)
                self._enqueue(job, front=True)
            for job, result in zip(batch, results, strict=True):
                if not job.session.closed:
                    self._count_remaining(job.session)
                if result is _MORE:
                    if job.session.closed:
                        _settle(job.future, SessionClosed("session closed"))
                    continue
                _settle(job.future, result)

    def _execute(self, batch: list[Job], now: float) -> list:
        """Runs in the target thread: one ragged forward for every job of the step, then the
        verification math per session. A failure in one session's part becomes that job's
        result; the other jobs of the step are unaffected."""
        results: dict[int, object] = {}
        jobs, steps = [], []
        for job in batch:
            self.metrics.queue_time.observe(now - job.arrival_s)
            sess = job.session
            if sess.closed:
                results[id(job)] = SessionClosed("session closed")
                continue
            if sess.kv is None:
                kv = self._guard(job, self.backend.new_kv)
                if isinstance(kv, SessionFailed):
                    results[id(job)] = kv
                    continue
                sess.kv = kv
            if job.kind == "prefill":
                chunk = sess.committed[sess.fed:sess.fed + job.query_tokens]
                last = sess.fed + len(chunk) == sess.prompt_len
                steps.append(Step(sess.kv, chunk, 1 if last else 0))
            else:
                steps.append(Step(sess.kv, sess.committed[sess.kv.length:] + job.draft,
                                  len(job.draft) + 1))
            jobs.append(job)
        verifies = sum(job.kind == "verify" for job in jobs)
        t0 = time.perf_counter()
        logits = self._forward(jobs, steps, results)
        took = time.perf_counter() - t0
        self.metrics.forward_time.labels(kind="verify" if verifies else "prefill").observe(took)
        if verifies:
            self._last_batch = verifies
            self.metrics.batch_size.observe(verifies)
        for job, step, lg in zip(jobs, steps, logits, strict=True):
            if lg is None:
                continue
            if job.kind == "prefill":
                results[id(job)] = self._guard(job, self._finish_prefill, job, step, lg)
            else:
                results[id(job)] = self._guard(job, self._finish_verify, job, lg, verifies, now)
        if verifies == 1 and len(jobs) == 1:  # the routers' step estimate: one verify alone
            took = time.perf_counter() - t0
            self._step_ema_s = took if not self._step_ema_s else (
                self._step_ema_s + 0.2 * (took - self._step_ema_s))
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

    def _forward(self, jobs: list[Job], steps: list[Step], results: dict) -> list:
        """Logits per step (None where the session failed): one batched forward; if it
        raises, each session alone, so that a bad row fails only its own session. The engine
        leaves every cache as it was when a forward raises."""
        if not steps:
            return []
        if len(steps) > 1:
            try:
                return self.backend.forward_batch(steps)
            except Exception as exc:  # noqa: BLE001 - find the failing session(s) below
                log.warning("batched step of %d sessions failed (%s); running them one by one",
                            len(steps), type(exc).__name__)
        out = []
        for job, step in zip(jobs, steps, strict=True):
            rows = self._guard(job, self.backend.forward_batch, [step])
            if isinstance(rows, SessionFailed):
                results[id(job)] = rows
                out.append(None)
            else:
                out.append(rows[0])
        return out

    def _pick(self, logits: torch.Tensor, sess: TargetSession) -> int:
        if sess.params.greedy:
            return int(torch.argmax(logits))
        return sample(target_probs(logits, sess.params), sess.generator)

    def _finish_prefill(self, job: Job, step: Step, logits: torch.Tensor):
        sess = job.session
        sess.fed += len(step.tokens)
        self.metrics.prefill_tokens.inc(len(step.tokens))
        if sess.fed < sess.prompt_len:
            return _MORE
        token = self._pick(logits[-1, :sess.vocab_limit], sess)
        sess.committed.append(token)
        return token

    def _finish_verify(self, job: Job, logits: torch.Tensor, bsz: int, now: float):
        sess = job.session
        gamma = len(job.draft)
        lg = logits[-(gamma + 1):, :sess.vocab_limit]
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

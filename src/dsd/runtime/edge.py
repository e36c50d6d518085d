"""The edge engine: draft loop, window policy, routing, retries, per-request statistics.

`EdgeEngine.generate(prompt_ids, params, max_tokens)` is an async generator of committed
token lists. Per request it routes to a verifier (router policy over the load verifiers
report and the RTT the edge measures), prefills the draft cache while the verifier
prefills, then runs rounds: choose gamma (window policy), draft gamma tokens with their
exact proposal distributions, send them, receive (accepted, next token), roll the draft
cache back to the accepted prefix. If the verifier dies or stops answering, the request
moves to another verifier, re-prefilled with prompt + committed tokens (nothing lost or
duplicated); with none left it fails with a clear error. Every wait has a deadline.

Overload queues instead of failing: at most `max_running` requests run at once, the next
`max_queue` wait in FIFO order (up to `queue_timeout_s`), and only beyond that is a request
refused (`Overloaded`, HTTP 429). A verifier that refuses for capacity is not a failure:
the request waits (back-off with jitter) and retries within the same deadline.

With no draft model (cloud-only mode) every round has gamma = 0: plain target decoding.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
from collections.abc import AsyncIterator

from dsd.errors import DsdError
from dsd.policies import RequestView, RoundResult, TargetView
from dsd.policies.features import SessionFeatures
from dsd.runtime.admission import Admission, Overloaded
from dsd.runtime.backends import Backend
from dsd.runtime.client import Endpoint, VerifierBusy, VerifierFailure, VerifierRefused
from dsd.runtime.drafter import Drafter
from dsd.runtime.metrics import EdgeMetrics
from dsd.runtime.request_stats import RequestStats
from dsd.runtime.speculative import SamplingParams

log = logging.getLogger("dsd.runtime.edge")


class NoVerifierError(DsdError):
    """No verifier is left to serve a request."""


def target_view(ep: Endpoint) -> TargetView:
    """The router's view of a verifier: its last load report (the simulator's TargetView
    fields) and the RTT this edge measured; sessions this edge opened since the report
    count as running."""
    load = ep.load
    return TargetView(target_id=ep.target_id, queue_depth=load.queue_depth,
                      running=max(load.running, ep.active),
                      outstanding_tokens=load.outstanding_tokens, capacity=load.capacity,
                      rtt_s=ep.rtt_ema, remaining_tokens=load.remaining_tokens,
                      est_step_s=load.est_step_s)


class EdgeEngine:
    def __init__(
        self,
        draft: Backend | None,
        endpoints: list[Endpoint],
        window_factory,
        router,
        metrics: EdgeMetrics | None = None,
        round_timeout_s: float = 30.0,
        request_timeout_s: float = 600.0,
        max_support: int = 256,
        edge_id: str = "edge",
        device_id: int = 0,
        down_seconds: float = 5.0,
        eos_ids: set[int] | None = None,
        max_running: int = 256,
        max_queue: int = 1024,
        queue_timeout_s: float = 300.0,
    ) -> None:
        if not endpoints:
            raise DsdError("the edge needs at least one verifier")
        self.draft = draft
        self.endpoints = endpoints
        self.window_factory = window_factory
        self.router = router
        self.metrics = metrics or EdgeMetrics()
        self.round_timeout_s = round_timeout_s
        self.request_timeout_s = request_timeout_s
        self.max_support = max_support
        self.edge_id = edge_id
        self.device_id = device_id
        self.down_seconds = down_seconds  # cool-down of a verifier that stopped answering
        self.queue_timeout_s = queue_timeout_s
        self.admission = Admission(max_running, max_queue, "request")
        self.eos_ids = set(eos_ids) if eos_ids is not None else (
            draft.eos_ids if draft is not None else set())
        self.fingerprint = draft.fingerprint if draft is not None else ""
        self.vocab_size = draft.vocab_size if draft is not None else 0
        # Every request drafting at the same moment drafts in one batch (drafter.py).
        self.drafter = Drafter(draft, max_support) if draft is not None else None
        self._ids = itertools.count(1)
        self.recent: list[dict] = []  # finished requests' stats (bounded)

    async def start(self, strict: bool = False) -> None:
        """Handshake with every verifier and start probing their health in the background.
        A tokenizer/version/token mismatch is fatal; so, with `strict`, is a verifier that
        accepts TCP connections but fails the handshake (a TLS mistake: it would never
        work). An unreachable verifier is only logged: the probe picks it up when it starts."""
        reachable = 0
        for ep in self.endpoints:
            try:
                await ep.connect(self.fingerprint, self.vocab_size, self.edge_id)
                reachable += 1
            except VerifierFailure as exc:
                if strict and await asyncio.to_thread(ep.listening):
                    raise VerifierRefused(ep.diagnose(exc)) from None
                log.warning("%s", exc)
        if reachable == 0:
            log.warning("no verifier reachable yet; it is probed in the background")
        for ep in self.endpoints:
            ep.start_probe(self.fingerprint, self.vocab_size, self.edge_id)

    async def close(self) -> None:
        for ep in self.endpoints:
            await ep.close()
        if self.drafter is not None:
            await self.drafter.stop()

    def _choose(self, stats: RequestStats, max_tokens: int, skip: set[int]) -> Endpoint | None:
        """The router's pick among ready verifiers not in `skip`; None if there is none."""
        cands = [ep for ep in self.endpoints if ep.target_id not in skip and ep.ready]
        if not cands:
            return None
        views = [target_view(ep) for ep in cands]
        req = RequestView(request_id=next(self._ids), device_id=self.device_id,
                          prompt_tokens=stats.prompt_tokens, max_output_tokens=max_tokens)
        chosen = self.router.choose(req, views)
        return next(ep for ep in cands if ep.target_id == chosen)

    async def _endpoint(self, stats: RequestStats, max_tokens: int, failed: set[int],
                        busy: set[int], busy_until: float) -> Endpoint:
        """A verifier for the next attempt. Verifiers that failed this request are skipped;
        if the rest are all busy (capacity refusals) the request backs off and retries
        them until `busy_until`, then is refused as overloaded."""
        backoff = 0.05
        while True:
            ep = self._choose(stats, max_tokens, failed | busy)
            if ep is not None:
                return ep
            if not busy:
                raise NoVerifierError(f"no verifier available for request {stats.request_id} "
                                      f"({len(self.endpoints)} configured, all down or "
                                      "failed)")
            left = busy_until - time.perf_counter()
            if left <= 0:
                raise Overloaded(f"every verifier is at capacity; request {stats.request_id} "
                                 "waited its whole queue deadline", 1.0)
            await asyncio.sleep(min(left, backoff * random.uniform(0.5, 1.5)))
            backoff = min(1.0, backoff * 2)
            busy.clear()

    async def generate(
        self,
        prompt_ids: list[int],
        params: SamplingParams,
        max_tokens: int,
        ignore_eos: bool = False,
        request_id: str | None = None,
        stats: RequestStats | None = None,
    ) -> AsyncIterator[list[int]]:
        """Yield lists of newly committed output tokens until max_tokens or EOS."""
        if not prompt_ids:
            raise DsdError("empty prompt")
        stats = stats or RequestStats(request_id or f"req-{next(self._ids)}",
                                      time.perf_counter(), len(prompt_ids))
        self.metrics.waiting.inc()
        try:
            await self.admission.acquire(stats.arrival_s + self.queue_timeout_s
                                         - time.perf_counter())
        except Overloaded:
            self.metrics.requests.labels(status="rejected").inc()
            raise
        finally:
            self.metrics.waiting.dec()
        admitted = time.perf_counter()
        self.metrics.running.inc()
        self.metrics.prompt_tokens.inc(len(prompt_ids))
        status = "error"
        try:
            async for tokens in self._generate(prompt_ids, params, max_tokens, ignore_eos,
                                               stats):
                yield tokens
            status = "ok"
        except (GeneratorExit, asyncio.CancelledError):
            # The consumer ended the request early: a stop string matched (the API sets
            # finish_reason "stop" first), or its client left. Neither is an error.
            if stats.finish_reason != "stop":
                stats.finish_reason = "cancelled"
            status = "ok" if stats.finish_reason == "stop" else "cancelled"
            raise
        finally:
            stats.finish_s = time.perf_counter()
            self.admission.release(stats.finish_s - admitted)
            self.metrics.running.dec()
            self.metrics.requests.labels(status=status).inc()
            if status != "error":
                self.metrics.e2e.observe(stats.e2e_s)
                if stats.output_tokens > 1:
                    self.metrics.tpot.observe(stats.tpot_s)
            self.recent.append(stats.as_dict())
            del self.recent[:-1000]
            log.info("request done", extra={"dsd": {**stats.as_dict(), "status": status}})

    async def _generate(self, prompt_ids, params, max_tokens, ignore_eos, stats):
        eos = set() if ignore_eos else self.eos_ids
        deadline_at = stats.arrival_s + self.request_timeout_s
        committed = list(prompt_ids)
        n_prompt = len(prompt_ids)
        drafter = self.drafter
        draft = drafter.session(committed, params) if drafter is not None else None
        controller = self.window_factory()
        features = SessionFeatures()  # the same window features the simulator computes
        failed: set[int] = set()  # verifiers that failed this request
        busy: set[int] = set()  # verifiers that refused it for capacity since the last wait
        busy_until = min(deadline_at, stats.arrival_s + self.queue_timeout_s)
        draft_task = None
        draft_started = draft is None

        def start_draft_prefill() -> None:
            # Once the prompt is on the wire: on an edge whose CPU also runs the network
            # stack, the verifier's prefill (the first token) must not wait for the draft's.
            nonlocal draft_task, draft_started
            if not draft_started:
                draft_started = True
                draft_task = asyncio.ensure_future(drafter.prefill(draft, n_prompt))

        try:
            while True:
                out_len = len(committed) - n_prompt
                if out_len >= max_tokens:
                    stats.finish_reason = "length"
                    return
                ep = await self._endpoint(stats, max_tokens, failed, busy, busy_until)
                stats.target_id = ep.target_id
                left = deadline_at - time.perf_counter()
                if left <= 0:
                    raise DsdError(f"request {stats.request_id} exceeded its "
                                   f"{self.request_timeout_s:.0f}s deadline")
                sess = ep.session(stats.request_id, left, min(self.round_timeout_s, left))
                ep.active += 1
                try:
                    if draft is not None and ep.vocab_size:  # the pair's shared vocabulary
                        draft.vocab_limit = min(draft.vocab_limit, ep.vocab_size)
                    reply = await sess.open(committed, params, max_tokens - out_len,
                                            self.fingerprint, on_sent=start_draft_prefill,
                                            vocab_size=self.vocab_size)
                    stats.open_link_s, stats.open_server_s = reply.rtt_s, reply.server_time_s
                    done = self._commit(stats, committed, n_prompt, [reply.token], eos,
                                        max_tokens)
                    # The target's first token goes out at once; drafting waits for the
                    # draft prefill that ran meanwhile (it reads only the prompt prefix).
                    yield committed[n_prompt + out_len:n_prompt + stats.output_tokens]
                    if done:
                        return
                    start_draft_prefill()  # in case the endpoint never reported the send
                    if draft_task is not None:
                        await draft_task
                        draft_task = None
                    rnd = 0
                    while True:
                        if time.perf_counter() > deadline_at:
                            raise DsdError(f"request {stats.request_id} exceeded its "
                                           f"{self.request_timeout_s:.0f}s deadline")
                        out_len = stats.output_tokens
                        remaining = max_tokens - out_len
                        if len(committed) >= ep.max_context:  # the target's context is full
                            stats.finish_reason = "length"
                            return
                        limit = min(ep.max_gamma, remaining - 1,
                                    ep.max_context - len(committed) - 1)
                        if draft is not None:
                            limit = min(limit, self.draft.max_context - len(committed) - 1)
                        wstate = features.state(
                            ep.load.queue_depth / max(1, ep.load.capacity),
                            stats.gamma_history[-1] if stats.gamma_history else 0,
                            draft.confidence if draft else None)
                        gamma = 0
                        if draft is not None:
                            gamma = max(0, min(int(controller.next_gamma(wstate)), limit))
                        t0 = time.perf_counter()
                        base = len(committed)
                        tokens, proposals = ([], None)
                        if gamma:
                            tokens, proposals = await drafter.draft(draft, gamma)
                        rnd += 1
                        reply = await sess.verify(rnd, tokens, proposals)
                        a = min(reply.accepted, gamma)
                        if draft is not None:
                            drafter.rollback(draft, base, a)
                        elapsed = time.perf_counter() - t0
                        self._record_round(stats, gamma, a, elapsed, reply)
                        features.observe(gamma, a, elapsed, reply.rtt_s)
                        if gamma:
                            controller.observe(RoundResult(gamma, a, elapsed, reply.rtt_s))
                        start = stats.output_tokens
                        done = self._commit(stats, committed, n_prompt,
                                            tokens[:a] + [reply.token], eos, max_tokens)
                        yield committed[n_prompt + start:n_prompt + stats.output_tokens]
                        if done:
                            return
                except (VerifierFailure, VerifierBusy) as exc:
                    if draft is not None:
                        if draft_task is not None:
                            await draft_task
                            draft_task = None
                        drafter.discard_uncommitted(draft)
                    if isinstance(exc, VerifierBusy):  # capacity: wait and retry, not down
                        log.info("request %s: %s; waiting for room", stats.request_id, exc)
                        busy.add(ep.target_id)
                        self.metrics.busy_retries.inc()
                        continue
                    log.warning("request %s: %s; retrying elsewhere", stats.request_id, exc)
                    if exc.down:
                        ep.mark_down(self.down_seconds if exc.silent else 0.0)
                    failed.add(ep.target_id)
                    stats.retries += 1
                    self.metrics.retries.inc()
                    continue
                except VerifierRefused:
                    raise
                finally:
                    ep.active -= 1
                    await sess.close()
                    ep.session_closed()
        finally:
            if draft_task is not None:
                draft_task.cancel()
            if draft is not None:
                drafter.close(draft)

    def _commit(self, stats, committed, n_prompt, new, eos, max_tokens) -> bool:
        """Append accepted tokens; stop at EOS or max_tokens. Returns True when finished."""
        now = time.perf_counter()
        for tok in new:
            if tok in eos:
                stats.finish_reason = "stop"
                return True
            committed.append(tok)
            stats.output_tokens += 1
            if stats.first_token_s is None:
                stats.first_token_s = now
                self.metrics.ttft.observe(stats.ttft_s)
            self.metrics.generation_tokens.inc()
            if stats.output_tokens >= max_tokens:
                stats.finish_reason = "length"
                return True
        return False

    def _record_round(self, stats, gamma, accepted, elapsed, reply) -> None:
        rtt = reply.rtt_s
        stats.rounds += 1
        stats.link_s += rtt
        stats.server_s += reply.server_time_s
        stats.drafted += gamma
        stats.accepted += accepted
        stats.gamma_history.append(gamma)
        stats.accepted_history.append(accepted)
        if len(stats.accepted_per_pos) < gamma:
            stats.accepted_per_pos.extend([0] * (gamma - len(stats.accepted_per_pos)))
        for i in range(accepted):
            stats.accepted_per_pos[i] += 1
        self.metrics.spec.record(gamma, accepted)
        self.metrics.round_time.observe(elapsed)
        self.metrics.rtt.observe(rtt)
        self.metrics.gamma.observe(gamma)

"""A target server's steps: which queued jobs run together within the engine's limits, and
what each job does when its step ends.

One executor per server runs one step at a time. A step is a fused-mode draft batch, or a
target forward over: every queued decode (cloud-only continuous batching, up to
`max_num_seqs`) plus the verify and prefill jobs the batcher policy picks. The engine then
holds the step to `max_num_seqs` sequences and `max_num_batched_tokens` query tokens,
verifies and decodes first; a prefill that does not fit the tokens left is chunked
(`chunked_prefill`, the rest runs first in line next step) or waits for a step with room.
"""

from __future__ import annotations

from typing import Any

from dsd.sim.batch_time import fused_draft_s, record_interference, target_batch_s
from dsd.sim.entities import DECODE, DRAFT, PREFILL, VERIFY, Request, TargetServer


class ServerSteps:
    """Mixin of `Simulator`: queueing, step formation and step completion at a server."""

    __slots__ = ()

    # Also uses Simulator's sample_at, _sample, _prefilled, _verified, _decoded, _verify_job
    # and KvMemory's _admit_waiting.
    loop: Any
    metrics: Any
    sample_at: float

    def _enqueue(self, server: TargetServer, req: Request, kind: int, query: int,
                 context: int) -> None:
        req.kind = kind
        req.query_tokens = query
        req.context_len = context
        now = req.arrival_s = self.loop.now
        if kind == VERIFY:
            server.queue.append(req)
            if server.step_prefill_s and server.busy and req.measured:
                # Its wait includes what is left of the running step's prefill share.
                left = server.step_start + server.step_prefill_s - now
                if left > 0:
                    self.metrics.interference_s += left
        elif kind == DECODE:
            server.decode_queue.append(req)
        elif kind == DRAFT:
            server.draft_queue.append(req)
        else:
            server.queue.append(req)
            server.prefills_pending += 1
        server.queued_tokens += query
        if not server.busy:
            self._start_batch(server)

    def _wake(self, server: TargetServer) -> None:
        server.wake_pending = False
        if not server.busy:
            self._start_batch(server)

    def _start_batch(self, server: TargetServer) -> None:
        now = self.loop.now
        if now >= self.sample_at:
            self._sample(now)
        # Time-weighted KV occupancy, sampled at every step boundary.
        server.kv_area += server.kv_last * (now - server.kv_t)
        server.kv_t = now
        server.kv_last = server.kv_used
        queue, drafts, decodes = server.queue, server.draft_queue, server.decode_queue
        prefill_s = 0.0
        if drafts and (not queue or drafts[0].arrival_s <= queue[0].arrival_s):
            batch = drafts[: server.max_batch]
            del drafts[: len(batch)]
            n = len(batch)
            duration = fused_draft_s(server.draft_step, batch)
        elif queue or decodes:
            taken = 0
            if decodes:  # every waiting decode joins, up to the sequence cap
                if len(decodes) <= server.max_seqs:
                    batch = decodes
                    server.decode_queue = []
                else:
                    batch = decodes[: server.max_seqs]
                    del decodes[: server.max_seqs]
                taken = len(batch)
            elif (server.max_wait_s and len(queue) < server.max_batch
                    and now < queue[0].arrival_s + server.max_wait_s):  # same sum as the wake
                if not server.wake_pending:
                    server.wake_pending = True
                    self.loop.at(queue[0].arrival_s + server.max_wait_s, self._wake, server)
                return
            n = taken
            if queue:
                chosen = server.batcher.select(queue, now)
                k = len(chosen)
                if taken + k > server.max_seqs or server.queued_tokens > server.max_tokens:
                    chosen = self._fit_step(server, chosen, taken)  # the bound is loose
                    k = len(chosen)
                if queue[:k] == chosen:  # the common FIFO case: a prefix
                    del queue[:k]
                else:
                    picked = {id(r) for r in chosen}
                    server.queue = [r for r in queue if id(r) not in picked]
                batch = batch + chosen if taken else chosen
                n += k
            duration = target_batch_s(server.step, batch)
            record_interference(self.metrics, server.step, batch, duration)
            if server.prefills_pending:
                prefill_s = self._prefill_share(server, batch, duration)
                if prefill_s:  # the verifies left in the queue wait behind this prefill work
                    self._wait_behind_prefill(server.queue, prefill_s)
        else:
            return
        if server.swap_pending_s:  # swaps run inside the step, as in vLLM
            duration += server.swap_pending_s
            server.swap_pending_s = 0.0
        if server.wake is not None:  # a step after an idle gap starts cold (perf/idle_wake.py)
            duration += server.wake.adjust_s(now - server.batch_end, duration)
        server.busy = True
        server.busy_time += duration
        server.batch_end = end = now + duration
        server.batches += 1
        server.batched_jobs += n
        if prefill_s:
            server.step_start = now
            server.step_prefill_s = prefill_s
        elif server.step_prefill_s:
            server.step_prefill_s = 0.0
        # One forward for the whole step, prefills included (a GPU engine's mixed step, and the
        # runtime verifier's one ragged batch): every job, a prefill's first token too, ends
        # with the step.
        server.batch = batch
        self.loop.at(end, self._batch_done, server)

    def _wait_behind_prefill(self, queue: list[Request], prefill_s: float) -> None:
        """Verification interference also counts the time verifies wait behind prefills."""
        waiting = sum(1 for r in queue if r.kind == VERIFY and r.measured)
        self.metrics.interference_s += waiting * prefill_s

    @staticmethod
    def _prefill_share(server: TargetServer, batch: list[Request], duration: float) -> float:
        """Seconds of the step spent on prefill work: T(step) - T(step without prefills)."""
        rest = [r for r in batch if r.kind != PREFILL]
        if len(rest) == len(batch):
            return 0.0
        return duration - target_batch_s(server.step, rest) if rest else duration

    @staticmethod
    def _fit_step(server: TargetServer, chosen: list[Request], taken: int) -> list[Request]:
        """Hold the step to the engine's caps: `taken` decodes are in already; verifies
        first, then prefills (the last one chunked to the tokens left, when enabled)."""
        seqs = server.max_seqs - taken
        budget = server.max_tokens - taken
        fitted: list[Request] = []
        prefills: list[Request] = []
        for job in chosen:
            if job.kind == PREFILL:
                prefills.append(job)
            elif seqs > 0 and job.query_tokens <= budget:
                fitted.append(job)
                seqs -= 1
                budget -= job.query_tokens
        for job in prefills:
            if seqs <= 0:
                break
            q = job.query_tokens
            if q <= budget:
                fitted.append(job)
                seqs -= 1
                budget -= q
            elif server.chunked and budget > 0:
                server.queued_tokens -= q - budget  # the rest queues again after the step
                job.query_tokens = budget
                fitted.append(job)
                break
            elif not fitted and not taken:  # an oversize prefill runs whole, alone
                fitted.append(job)
                break
            else:
                break
        return fitted

    def _batch_done(self, server: TargetServer) -> None:
        # Stay busy while results fan out, so jobs re-queued by them join one next step;
        # the step's sessions stay out of reach of preemption until they have moved on.
        for req in server.batch:
            server.queued_tokens -= req.query_tokens
            kind = req.kind
            if kind == VERIFY:
                self._verified(server, req)
            elif kind == DECODE:
                self._decoded(server, req)
            elif kind == PREFILL:
                req.prefilled += req.query_tokens
                if req.prefilled < req.prefill_total:  # a chunk: the rest goes first next
                    rest = req.prefill_total - req.prefilled
                    req.query_tokens = rest
                    req.context_len = req.prefilled
                    server.queue.insert(0, req)
                    server.queued_tokens += rest
                else:
                    self._prefilled(server, req)
            else:
                self._verify_job(req)  # fused: drafted, now verify
        server.batch = []
        if server.waiting:
            self._admit_waiting(server)
        server.busy = False
        self._start_batch(server)

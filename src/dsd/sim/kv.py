"""KV memory at a target server, step by step, as vLLM manages it.

- A request's prompt reaches the server: it is rejected if prompt + output can never fit
  the server's KV, or if the admission policy says so; else it starts when its prompt fits
  with a 1% watermark left free (requests wait in arrival order, `server.waiting`).
- Each step's new tokens are reserved when its job joins the queue: gamma + 1 for a verify,
  1 for a decode (the prompt was reserved at admission). A verify's rejected drafts are
  freed with the verdict; everything is freed when the session ends.
- When a step's tokens do not fit, the newest admitted session is preempted (not one in
  the running step; possibly the requester itself) until they do. `recompute` frees its KV
  and, once memory allows, re-prefills prompt + generated tokens together with the job it
  was waiting to run; `swap` copies its KV to host memory and back at `swap_gbps` per GPU,
  paid inside the server's next step. Preempted requests go to the front of the wait queue.
- In distributed mode a session keeps its KV at the server while the edge drafts and while
  verdicts travel; a session preempted meanwhile finds out when its next verify arrives.

So `kv_used` never exceeds `kv_capacity` (`peak_kv_used` in the summary).
"""

from __future__ import annotations

from typing import Any

from dsd.policies.admission import AdmissionView
from dsd.sim.entities import DECODE, PREFILL, VERIFY, Request, TargetServer


class KvMemory:
    """Mixin of `Simulator`: admission, KV reservation, preemption and session ends."""

    __slots__ = ()

    # Also uses ServerSteps' _enqueue and Simulator's _count_in_flight.
    loop: Any
    net: Any
    metrics: Any
    arrivals: Any
    admission: Any
    swap: bool
    ttft_slo_s: float
    preemptions: int
    recomputed_tokens: int
    swapped_tokens: int
    rejected_total: int

    # ------------------------------------------------------------------ admission
    def _at_server(self, req: Request) -> None:
        """The prompt reached the server: reject it, start it, or let it wait for memory."""
        server: TargetServer = req.server  # type: ignore[assignment]
        if req.prompt + req.output > server.kv_capacity:  # could never fit, even alone
            self._reject(server, req)
            return
        if self.admission is not None and not self.admission.admit(self._admission_view(
                server, req, len(server.waiting) + server.prefills_pending)):
            self._reject(server, req)
            return
        if server.waiting or not self._fits(server, req.prompt):
            server.waiting.append(req)
            return
        self._start_session(server, req)

    @staticmethod
    def _fits(server: TargetServer, need: int) -> bool:
        headroom = server.watermark if server.running else 0
        return server.kv_used + need + headroom <= server.kv_capacity

    def _admission_view(self, server: TargetServer, req: Request, ahead: int) -> AdmissionView:
        now = self.loop.now
        p = req.prompt
        return AdmissionView(
            now, req.arrival, p, ahead,
            len(server.queue) + len(server.decode_queue) + len(server.draft_queue),
            server.queued_tokens, server.seq_cap, server.max_tokens,
            server.busy_time / server.batches if server.batches else 0.0,
            max(0.0, server.batch_end - now) if server.busy else 0.0,
            server.step.step_s(1, p, 0, p * (p + 1) // 2),
            0.5 * self.net.link_rtt(req.device.device_id, server.server_id), self.ttft_slo_s)

    def _start_session(self, server: TargetServer, req: Request) -> None:
        self._hold(server, req, req.prompt)
        req.deadline_s = req.arrival + self.ttft_slo_s  # the prefill's deadline is the TTFT SLO
        req.prefill_total = req.prompt
        self._enqueue(server, req, PREFILL, req.prompt, 0)

    def _hold(self, server: TargetServer, req: Request, tokens: int) -> None:
        """Admit a session holding `tokens` of KV."""
        server.kv_used += tokens
        req.kv_held = tokens
        if server.kv_used > server.peak_kv:
            server.peak_kv = server.kv_used
        server.sessions[req] = None
        server.running += 1
        if server.running > server.peak_running:
            server.peak_running = server.running

    def _admit_waiting(self, server: TargetServer) -> None:
        """Start waiting requests, oldest first, while the head fits."""
        waiting = server.waiting
        while waiting:
            req = waiting[0]
            need = self._readmit_need(req) if req.preempted else req.prompt
            if not self._fits(server, need):
                return
            waiting.popleft()
            if req.preempted:
                self._readmit(server, req, need)
            elif self.admission is not None and not self.admission.admit(
                    self._admission_view(server, req, server.prefills_pending)):
                self._reject(server, req)
            else:
                self._start_session(server, req)

    # ------------------------------------------------------------------ rejection
    def _reject(self, server: TargetServer, req: Request) -> None:
        server.remaining_tokens -= req.output
        self.rejected_total += 1
        if req.measured:
            self.metrics.rejected += 1
        back = self.net.one_way(req.device.device_id, server.server_id, 0)
        self.loop.at(self.loop.now + back, self._rejected_at_edge, req)

    def _rejected_at_edge(self, req: Request) -> None:
        self._count_in_flight(-1)
        self.arrivals.on_finish(req)  # a closed-loop user thinks, then asks again

    # ------------------------------------------------------------------ per-step KV
    def _make_room(self, server: TargetServer, req: Request, kind: int, need: int) -> bool:
        """Preempt the newest sessions until `need` more tokens fit for `req`'s next `kind`
        job. False when `req` itself had to wait (preempted now or before)."""
        if not req.preempted:
            while server.kv_used + need > server.kv_capacity:
                victim = next(s for s in reversed(server.sessions)
                              if s is req or self._preemptible(server, s))
                self._preempt(server, victim)
                if victim is req:
                    break
            else:
                return True
        req.pending_kind = kind
        server.waiting.appendleft(req)
        self._admit_waiting(server)
        return False

    @staticmethod
    def _preemptible(server: TargetServer, s: Request) -> bool:
        """Sessions in the running step keep their KV until the step ends."""
        return s not in server.batch

    def _preempt(self, server: TargetServer, victim: Request) -> None:
        server.kv_used -= victim.kv_held
        victim.kv_held = 0
        del server.sessions[victim]
        server.running -= 1
        victim.preempted = True
        self.preemptions += 1
        cached = victim.prompt + victim.generated - 1 if victim.generated else victim.prefilled
        kind = victim.kind
        queue = server.decode_queue if kind == DECODE else server.queue
        if kind in (PREFILL, VERIFY, DECODE) and victim in queue:  # its job leaves with it
            queue.remove(victim)
            server.queued_tokens -= victim.query_tokens
            if kind == PREFILL:
                server.prefills_pending -= 1
                cached = victim.prefilled
                kind = victim.resume if victim.resume >= 0 else PREFILL
                victim.resume = -1
            victim.pending_kind = kind
            server.waiting.appendleft(victim)
        if self.swap:
            victim.swapped = cached
            server.swap_pending_s += cached * server.swap_s_per_token
            self.swapped_tokens += cached

    @staticmethod
    def _readmit_need(req: Request) -> int:
        if not req.generated:  # still in its first prefill
            return req.prompt
        query = req.gamma + 1 if req.pending_kind == VERIFY else 1
        return req.prompt + req.generated - 1 + query

    def _readmit(self, server: TargetServer, req: Request, need: int) -> None:
        """A preempted session gets memory back and runs the job it was waiting for."""
        req.preempted = False
        self._hold(server, req, need)
        swapped, req.swapped = req.swapped, 0
        if swapped:
            server.swap_pending_s += swapped * server.swap_s_per_token
        if not req.generated:
            if not swapped:
                self.recomputed_tokens += req.prefilled
                req.prefilled = 0
            self._enqueue(server, req, PREFILL, req.prefill_total - req.prefilled, req.prefilled)
            return
        kind = req.pending_kind
        query = req.gamma + 1 if kind == VERIFY else 1
        if swapped:
            self._enqueue(server, req, kind, query, need - query)
            return
        self.recomputed_tokens += need - query
        req.resume = kind  # one prefill over everything, then the verdict or the next token
        req.prefill_total = need
        req.prefilled = 0
        self._enqueue(server, req, PREFILL, need, 0)

    def _end_session(self, server: TargetServer, req: Request) -> None:
        """Free the session's KV and start waiting requests that now fit."""
        server.kv_used -= req.kv_held
        req.kv_held = 0
        del server.sessions[req]
        server.running -= 1
        if server.waiting:
            self._admit_waiting(server)

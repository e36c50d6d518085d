"""DSD-Sim: the request lifecycle of distributed, fused and cloud-only serving.

Distributed round: the edge drafts gamma tokens (gamma sequential draft steps on its
device), sends them up the link, the target verifies them in a batched forward over gamma+1
query tokens, and the verdict (accepted count + one correction/bonus token) comes back
down; the edge continues from the corrected prefix. Fused: the same rounds with the draft
model on the target server and no per-round network. Cloud-only: plain decoding with
continuous batching. Every token reaches the user after the link's one-way delay.
"""

from __future__ import annotations

import math
from typing import Any

from dsd.metrics import MetricsCollector, RequestTableWriter
from dsd.policies import ModeState, RequestView, RoundResult, TargetView
from dsd.policies.features import SessionFeatures
from dsd.sim.batch_time import fused_draft_s, record_interference, target_batch_s
from dsd.sim.cluster import Cluster
from dsd.sim.engine import EventLoop
from dsd.sim.entities import DECODE, DRAFT, PREFILL, VERIFY, DraftDevice, Request, TargetServer


def target_view(index: int, server: TargetServer, rtt_s: float) -> TargetView:
    """What a router sees of a target: the fields the runtime's verifiers report too
    (dsd.runtime.edge.target_view builds the same view from a verifier's load report)."""
    return TargetView(index, len(server.queue) + len(server.draft_queue) + len(server.waiting),
                      server.running, server.queued_tokens, server.max_batch, rtt_s,
                      server.remaining_tokens, server.est_step_s)


class Simulator:
    def __init__(self, cluster: Cluster, table: RequestTableWriter) -> None:
        cfg = cluster.config
        self.cluster = cluster
        self.loop = EventLoop()
        self.mode = cfg.mode
        self.net = cluster.network
        self.devices = cluster.devices
        self.servers = cluster.servers
        self.router = cluster.router
        self.window_factory = cluster.window_factory
        self.fixed_gamma = self.window_factory.fixed_gamma
        # Early-stopping controllers need per-token confidence draws; others skip that path.
        self.confidence = cluster.confidence if getattr(
            self.window_factory, "early_stop", False) else None
        self.mode_selectors = cluster.mode_selectors
        self.ttft_slo_s = cfg.slo.ttft_ms / 1000.0
        self.needs_expected = any(getattr(s.batcher, "wants_expected_tokens", False)
                                  for s in cluster.servers)
        self.mode_counts = {"distributed": 0, "fused": 0, "cloud_only": 0}
        self.max_gamma = cfg.simulation.max_gamma
        self.tpot_slo_s = cfg.slo.tpot_ms / 1000.0
        self.metrics = MetricsCollector(cfg.slo.ttft_ms / 1000.0, self.tpot_slo_s, self.max_gamma)
        self.table = table
        self.uniform = cluster.rngs["acceptance"].random
        self.session_rng = cluster.rngs["session"]
        self.arrivals = cluster.arrivals
        self.arrivals.bind(self)
        self.in_flight = 0
        self.peak_in_flight = 0
        self.arrived = 0
        self._area = 0.0  # integral of in-flight requests over time, for Little's law
        self._area_t = 0.0

    def _count_in_flight(self, delta: int) -> None:
        now = self.loop.now
        self._area += self.in_flight * (now - self._area_t)
        self._area_t = now
        self.in_flight += delta
        if self.in_flight > self.peak_in_flight:
            self.peak_in_flight = self.in_flight

    # ---------------------------------------------------------------- arrival and routing
    def admit(self, req: Request) -> None:
        """A request appears at its edge device (called by the arrival process at `now`)."""
        self.arrived += 1
        self._count_in_flight(1)
        dev = req.device
        server = self._route(req, dev)
        req.server = server
        server.remaining_tokens += req.output
        req.acceptance = self.cluster.acceptance[dev.pool, server.pool].session(self.session_rng)
        if self.fixed_gamma is None:
            req.window = self.window_factory()
            req.features = SessionFeatures()
        now = self.loop.now
        mode = self.mode
        if mode == "auto":  # the device's selector decides from its measured RTT and load
            mode = self.mode_selectors[dev.device_id].choose(ModeState(  # type: ignore[index]
                self.net.link_rtt(dev.device_id, server.server_id),
                len(server.queue) / server.max_batch, now))
        req.mode = mode
        self.mode_counts[mode] += 1
        if mode == "distributed":  # the edge prefills its draft cache meanwhile
            start = max(now, dev.busy_until)
            cost = dev.prefill_s(req.prompt)
            dev.busy_until = start + cost
            dev.busy_time += cost
        up = self.net.one_way(dev.device_id, server.server_id, req.prompt) + self.net.setup_s
        self.loop.at(now + up, self._at_server, req)

    def _route(self, req: Request, dev: DraftDevice) -> TargetServer:
        targets = dev.targets
        if len(targets) == 1:
            return targets[0]
        views = [target_view(i, s, self.net.link_rtt(dev.device_id, s.server_id))
                 for i, s in enumerate(targets)]
        choice = self.router.choose(
            RequestView(req.request_id, dev.device_id, req.prompt, req.output), views)
        return targets[choice]

    # ---------------------------------------------------------------- target server
    def _at_server(self, req: Request) -> None:
        """The prompt reached the server: admit it if its KV fits, else it waits."""
        server: TargetServer = req.server  # type: ignore[assignment]
        need = req.prompt + self.max_gamma + 1
        if server.waiting or (server.kv_used + need > server.kv_capacity and server.running):
            server.waiting.append(req)
            return
        self._start_session(server, req, need)

    def _start_session(self, server: TargetServer, req: Request, need: int) -> None:
        server.kv_used += need
        req.kv_held = need
        server.running += 1
        if server.running > server.peak_running:
            server.peak_running = server.running
        req.deadline_s = req.arrival + self.ttft_slo_s  # the prefill's deadline is the TTFT SLO
        self._enqueue(server, req, PREFILL, req.prompt, 0)

    def _enqueue(self, server: TargetServer, req: Request, kind: int, query: int,
                 context: int) -> None:
        req.kind = kind
        req.query_tokens = query
        req.context_len = context
        req.arrival_s = self.loop.now
        if kind == DRAFT:
            server.draft_queue.append(req)
        else:
            server.queue.append(req)
        server.queued_tokens += query
        if not server.busy:
            self._start_batch(server)

    def _wake(self, server: TargetServer) -> None:
        server.wake_pending = False
        if not server.busy:
            self._start_batch(server)

    def _start_batch(self, server: TargetServer) -> None:
        now = self.loop.now
        queue, drafts = server.queue, server.draft_queue
        if drafts and (not queue or drafts[0].arrival_s <= queue[0].arrival_s):
            batch = drafts[: server.max_batch]
            del drafts[: len(batch)]
            duration = fused_draft_s(server.draft_step, batch)
        elif queue:
            if (server.max_wait_s and len(queue) < server.max_batch
                    and now < queue[0].arrival_s + server.max_wait_s):  # same sum as the wake
                if not server.wake_pending:
                    server.wake_pending = True
                    self.loop.at(queue[0].arrival_s + server.max_wait_s, self._wake, server)
                return
            batch = server.batcher.select(queue, now)
            n = len(batch)
            if queue[:n] == batch:  # the common FIFO case: a prefix
                del queue[:n]
            else:
                chosen = {id(r) for r in batch}
                server.queue = [r for r in queue if id(r) not in chosen]
            # One forward for the whole step, prefills included (the runtime's verifier runs
            # one ragged batch): every job, a prefill's first token too, ends with the step.
            duration = target_batch_s(server.step, batch)
            record_interference(self.metrics, server.step, batch, duration)
        else:
            return
        server.busy = True
        server.batch = batch
        server.busy_time += duration
        server.batches += 1
        server.batched_jobs += len(batch)
        self.loop.at(now + duration, self._batch_done, server)

    def _batch_done(self, server: TargetServer) -> None:
        batch = server.batch
        server.batch = []
        # Stay busy while results fan out, so jobs re-queued by them join one next batch.
        for req in batch:
            server.queued_tokens -= req.query_tokens
            kind = req.kind
            if kind == VERIFY:
                self._verified(server, req)
            elif kind == DECODE:
                self._decoded(server, req)
            elif kind == PREFILL:
                self._prefilled(server, req)
            else:
                self._enqueue(server, req, VERIFY, req.gamma + 1, req.prompt + req.generated - 1)
        server.busy = False
        self._start_batch(server)

    def _prefilled(self, server: TargetServer, req: Request) -> None:
        now = self.loop.now
        req.generated = 1  # the target's prefill yields the first token
        server.remaining_tokens -= 1
        dev = req.device
        mode = req.mode
        if mode == "distributed":
            down = self.net.one_way(dev.device_id, server.server_id, 1)
            req.load = len(server.queue) / server.max_batch
            self.loop.at(now + down, self._first_token_at_edge, req)
            if req.output <= 1:
                self._end_session(server, req)
            return
        deliver = now + 0.5 * self.net.link_rtt(dev.device_id, server.server_id)
        req.first_token_s = req.last_token_s = deliver
        if req.output <= 1:
            self._end_session(server, req)
            self.loop.at(deliver, self._finish, req)
        elif mode == "fused":
            self._fused_round(server, req)
        else:
            self._enqueue(server, req, DECODE, 1, req.prompt)

    def _verified(self, server: TargetServer, req: Request) -> None:
        """Sample the verdict of one verify job; distributed sends it down to the edge."""
        gamma = req.gamma
        if req.pre_accepted >= 0:  # sampled while drafting (early-stopping window)
            accepted = req.pre_accepted
            req.pre_accepted = -1
        else:
            accepted = req.acceptance.accepted(gamma, self.uniform()) if gamma else 0
        remaining = req.output - req.generated
        if accepted >= remaining:  # max_tokens reached inside the window
            accepted = remaining - 1
        tokens = accepted + 1
        server.remaining_tokens -= tokens
        server.kv_used -= gamma - accepted  # keep the committed tokens' KV, free the rest
        req.kv_held -= gamma - accepted
        req.rounds += 1
        req.drafted += gamma
        req.accepted += accepted
        if req.measured and gamma:
            self.metrics.record_round(gamma, accepted, req.draft_s / gamma)
        done = req.generated + tokens >= req.output
        if done:
            self._end_session(server, req)
        now = self.loop.now
        if req.mode == "distributed":
            req.pending_tokens = tokens
            req.pending_accepted = accepted
            req.load = len(server.queue) / server.max_batch
            down = self.net.one_way(req.device.device_id, server.server_id, tokens)
            req.net_s += down
            self.loop.at(now + down, self._verdict_at_edge, req)
            return
        req.generated += tokens
        self._observe(req, gamma, accepted, now - req.round_start, 0.0)
        req.last_token_s = now + 0.5 * self.net.link_rtt(req.device.device_id, server.server_id)
        if done:
            self.loop.at(req.last_token_s, self._finish, req)
        else:
            self._fused_round(server, req)

    def _decoded(self, server: TargetServer, req: Request) -> None:
        req.generated += 1
        server.remaining_tokens -= 1
        server.kv_used += 1
        req.kv_held += 1
        req.last_token_s = self.loop.now + 0.5 * self.net.link_rtt(
            req.device.device_id, server.server_id)
        if req.generated >= req.output:
            self._end_session(server, req)
            self.loop.at(req.last_token_s, self._finish, req)
        else:
            self._enqueue(server, req, DECODE, 1, req.prompt + req.generated - 1)

    def _end_session(self, server: TargetServer, req: Request) -> None:
        """Free the request's KV and admit waiting requests that now fit."""
        server.kv_used -= req.kv_held
        req.kv_held = 0
        server.running -= 1
        waiting = server.waiting
        while waiting:
            nxt = waiting[0]
            need = nxt.prompt + self.max_gamma + 1
            if server.kv_used + need > server.kv_capacity and server.running:
                break
            waiting.popleft()
            self._start_session(server, nxt, need)

    # ---------------------------------------------------------------- speculation rounds
    def _next_gamma(self, req: Request) -> int:
        remaining = req.output - req.generated
        if self.fixed_gamma is not None:
            gamma = self.fixed_gamma
        else:
            gamma = req.window.next_gamma(req.features.state(req.load, req.gamma))
            gamma = max(0, min(gamma, self.max_gamma))
        # Drafting past the last needed token is pure waste: the final round may be shorter.
        if gamma >= remaining:
            gamma = remaining - 1
        if self.confidence is not None and gamma:
            # Decide the verdict first, then let the controller stop on draft confidence.
            accepted = req.acceptance.accepted(gamma, self.uniform())
            gamma = self.confidence.draft_window(req.window, gamma, accepted)
            req.pre_accepted = accepted if accepted < gamma else gamma
        return gamma

    def _observe(self, req: Request, gamma: int, accepted: int, round_s: float,
                 network_s: float) -> None:
        """Update the session's window features after a verdict, as the runtime's edge does."""
        if req.window is None:
            return
        req.features.observe(gamma, accepted, round_s, network_s)
        if gamma:
            req.window.observe(RoundResult(gamma, accepted, round_s, network_s))

    def _first_token_at_edge(self, req: Request) -> None:
        now = self.loop.now
        req.first_token_s = req.last_token_s = now
        if req.generated >= req.output:
            self._finish(req)
        else:
            self._edge_round(req)

    def _verdict_at_edge(self, req: Request) -> None:
        now = self.loop.now
        tokens = req.pending_tokens
        req.generated += tokens
        req.last_token_s = now
        if req.window is not None:
            self._observe(req, req.gamma, req.pending_accepted, now - req.round_start, req.net_s)
        if req.generated >= req.output:
            self._finish(req)
        else:
            self._edge_round(req)

    def _edge_round(self, req: Request) -> None:
        """Draft the next window at the edge device and send it to the target."""
        now = self.loop.now
        gamma = self._next_gamma(req)
        dev = req.device
        start = dev.busy_until if dev.busy_until > now else now
        context = req.prompt + req.generated
        draft = gamma * dev.step.step_s(1, 1, context + gamma // 2, context + gamma // 2 + 1) \
            if gamma else 0.0
        dev.busy_until = start + draft
        dev.busy_time += draft
        req.gamma = gamma
        req.draft_s = draft
        req.round_start = now
        server: TargetServer = req.server  # type: ignore[assignment]
        up = self.net.one_way(dev.device_id, server.server_id, gamma)
        req.net_s = up
        self.loop.at(start + draft + up, self._verify_at_server, req)

    def _verify_at_server(self, req: Request) -> None:
        server: TargetServer = req.server  # type: ignore[assignment]
        gamma = req.gamma
        server.kv_used += gamma + 1
        req.kv_held += gamma + 1
        # The TPOT deadline: the next token must leave by the time that keeps mean TPOT in SLO.
        req.deadline_s = req.first_token_s + self.tpot_slo_s * req.generated
        if self.needs_expected:
            req.expected_tokens = req.acceptance.expected_tokens(gamma)
        self._enqueue(server, req, VERIFY, gamma + 1, req.prompt + req.generated - 1)

    def _fused_round(self, server: TargetServer, req: Request) -> None:
        gamma = self._next_gamma(req)
        req.gamma = gamma
        req.round_start = self.loop.now
        context = req.prompt + req.generated
        req.draft_s = gamma * server.draft_step.step_s(1, 1, context, context + 1)
        server.kv_used += gamma + 1
        req.kv_held += gamma + 1
        req.deadline_s = req.first_token_s + self.tpot_slo_s * req.generated
        if self.needs_expected:
            req.expected_tokens = req.acceptance.expected_tokens(gamma)
        if gamma:
            self._enqueue(server, req, DRAFT, gamma, context)
        else:
            self._enqueue(server, req, VERIFY, 1, context - 1)

    # ---------------------------------------------------------------- completion
    def _finish(self, req: Request) -> None:
        self._count_in_flight(-1)
        ttft = req.first_token_s - req.arrival
        e2e = req.last_token_s - req.arrival
        if req.measured:
            tpot, met = self.metrics.record_request(
                ttft, e2e, req.generated, req.rounds, req.drafted, req.accepted)
            server: TargetServer = req.server  # type: ignore[assignment]
            self.table.add((
                req.request_id, req.device.device_id, server.server_id, req.mode, req.arrival,
                req.prompt, req.generated, ttft * 1e3, tpot * 1e3, e2e * 1e3, req.rounds,
                req.drafted, req.accepted, met,
            ))
        self.arrivals.on_finish(req)

    # ---------------------------------------------------------------- run
    def run(self) -> dict[str, Any]:
        sim = self.cluster.config.simulation
        self.arrivals.start()
        self.loop.run(math.inf if sim.drain else sim.duration_s)
        self._count_in_flight(0)  # close the in-flight integral at the end time
        return self.cluster_stats()

    def cluster_stats(self) -> dict[str, Any]:
        span = self.loop.now
        busy = sum(s.busy_time for s in self.servers)
        batches = sum(s.batches for s in self.servers)
        jobs = sum(s.batched_jobs for s in self.servers)
        return {
            "sim_time_s": span,
            "events_processed": self.loop.events,
            "requests_arrived": self.arrived,
            "requests_unfinished": self.in_flight,
            "peak_in_flight": self.peak_in_flight,
            "mean_in_flight": self._area / span if span > 0 else 0.0,
            "peak_sessions_per_target": max(s.peak_running for s in self.servers),
            "target_utilization": busy / (len(self.servers) * span) if span > 0 else 0.0,
            "mean_batch_size": jobs / batches if batches else 0.0,
            "draft_utilization": (sum(d.busy_time for d in self.devices)
                                  / (len(self.devices) * span) if span > 0 else 0.0),
            "fused_request_frac": self.mode_counts["fused"] / max(self.arrived, 1),
        }

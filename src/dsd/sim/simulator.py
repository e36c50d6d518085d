"""DSD-Sim: the request lifecycle of distributed, fused and cloud-only serving.

Distributed round: the edge drafts gamma tokens (gamma sequential draft steps on its
device), sends them up the link, the target verifies them in a batched forward over gamma+1
query tokens, and the verdict (accepted count + one correction/bonus token) comes back
down; the edge continues from the corrected prefix. Fused: the same rounds with the draft
model on the target server and no per-round network. Cloud-only: plain decoding with
continuous batching. In fused and cloud-only modes the server streams tokens to the user
over the same link model, in order. Server steps are in steps.py, KV memory in kv.py.
"""

from __future__ import annotations

import math
from typing import Any

from dsd.metrics import MetricsCollector, RequestTableWriter, TimeSeriesRecorder
from dsd.policies import ModeState, RequestView, RoundResult, TargetView
from dsd.policies.features import SessionFeatures
from dsd.sim.cluster import Cluster
from dsd.sim.engine import EventLoop
from dsd.sim.entities import DECODE, DRAFT, VERIFY, DraftDevice, Request, TargetServer
from dsd.sim.kv import KvMemory
from dsd.sim.steps import ServerSteps
from dsd.sim.window import WindowStats, kv_area_at


def target_view(index: int, server: TargetServer, rtt_s: float) -> TargetView:
    """What a router sees of a target: the fields the runtime's verifiers report too
    (dsd.runtime.edge.target_view builds the same view from a verifier's load report)."""
    return TargetView(index, len(server.queue) + len(server.draft_queue)
                      + len(server.decode_queue) + len(server.waiting), server.running,
                      server.queued_tokens, server.max_batch, rtt_s, server.remaining_tokens,
                      server.est_step_s)


class Simulator(ServerSteps, KvMemory):
    # Slots: the hot loop reads these attributes millions of times, and a plain instance
    # dict past 30 keys loses CPython's fast attribute path.
    __slots__ = (
        "cluster", "loop", "mode", "net", "devices", "servers", "router", "window_factory",
        "fixed_gamma", "confidence", "mode_selectors", "ttft_slo_s", "needs_expected",
        "mode_counts", "max_gamma", "tpot_slo_s", "metrics", "table", "uniform", "session_rng",
        "arrivals", "in_flight", "peak_in_flight", "arrived", "_area", "_area_t", "admission",
        "swap", "preemptions", "recomputed_tokens", "swapped_tokens", "rejected_total",
        "warmup_s", "window", "gamma_sum", "gamma_rounds", "series", "sample_at",
    )

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
        self.admission = cluster.admission
        self.swap = cfg.engine.preemption == "swap"
        self.preemptions = self.recomputed_tokens = self.swapped_tokens = 0
        self.rejected_total = 0
        self.warmup_s = cfg.simulation.warmup_s
        self.window = WindowStats(self.servers, self.devices)
        self.gamma_sum = self.gamma_rounds = 0  # gammas chosen, for the time series
        self.series = TimeSeriesRecorder(len(self.servers), cfg.simulation.duration_s)
        self.sample_at = self.series.next_t
        for server in self.servers:  # a full step: the decode cap, or the verify cap
            server.seq_cap = (server.max_seqs if self.mode == "cloud_only"
                              else min(server.max_batch, server.max_seqs))

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
            if dev.wake is not None:
                cost += dev.wake.adjust_s(start - dev.busy_until, cost)
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

    # ---------------------------------------------------------------- target server jobs
    def _prefilled(self, server: TargetServer, req: Request) -> None:
        server.prefills_pending -= 1
        if req.resume >= 0:  # a recompute after preemption: it also ran the pending job
            kind, req.resume = req.resume, -1
            if kind == VERIFY:
                self._verified(server, req)
            else:
                self._decoded(server, req)
            return
        now = self.loop.now
        req.generated = 1  # the target's prefill yields the first token
        server.remaining_tokens -= 1
        dev = req.device
        mode = req.mode
        down = self.net.one_way(dev.device_id, server.server_id, 1)
        if mode == "distributed":
            req.load = len(server.queue) / server.max_batch
            self.loop.at(now + down, self._first_token_at_edge, req)
            if req.output <= 1:
                self._end_session(server, req)
            return
        req.first_token_s = req.last_token_s = now + down
        if req.output <= 1:
            self._end_session(server, req)
            self.loop.at(req.last_token_s, self._finish, req)
        elif mode == "fused":
            self._fused_round(server, req)
        else:
            self._decode_job(server, req)

    def _stream(self, server: TargetServer, req: Request, tokens: int) -> None:
        """The server sends `tokens` new tokens to the user (fused, cloud-only): one message
        over the link, delivered in order after the ones before it."""
        arrive = self.loop.now + self.net.one_way(req.device.device_id, server.server_id, tokens)
        if arrive > req.last_token_s:
            req.last_token_s = arrive

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
        self._stream(server, req, tokens)
        if done:
            self.loop.at(req.last_token_s, self._finish, req)
        else:
            self._fused_round(server, req)

    def _decoded(self, server: TargetServer, req: Request) -> None:
        req.generated += 1
        server.remaining_tokens -= 1
        self._stream(server, req, 1)
        if req.generated >= req.output:
            self._end_session(server, req)
            self.loop.at(req.last_token_s, self._finish, req)
        else:
            self._decode_job(server, req)

    def _decode_job(self, server: TargetServer, req: Request) -> None:
        """Queue the next decode step, with KV for its one new token."""
        if req.preempted or server.kv_used >= server.kv_capacity:
            if not self._make_room(server, req, DECODE, 1):
                return
        server.kv_used += 1
        req.kv_held += 1
        if server.kv_used > server.peak_kv:
            server.peak_kv = server.kv_used
        self._enqueue(server, req, DECODE, 1, req.prompt + req.generated - 1)

    def _verify_job(self, req: Request) -> None:
        """The drafted window reached the server: queue its verify, with KV for its
        gamma + 1 tokens (an event handler in distributed mode)."""
        server: TargetServer = req.server  # type: ignore[assignment]
        gamma = req.gamma
        # The TPOT deadline: the next token must leave by the time that keeps mean TPOT in SLO.
        req.deadline_s = req.first_token_s + self.tpot_slo_s * req.generated
        if self.needs_expected:
            req.expected_tokens = req.acceptance.expected_tokens(gamma)
        need = gamma + 1
        used = server.kv_used + need
        if used > server.kv_capacity or req.preempted:
            if not self._make_room(server, req, VERIFY, need):
                return
            used = server.kv_used + need
        server.kv_used = used
        req.kv_held += need
        if used > server.peak_kv:
            server.peak_kv = used
        self._enqueue(server, req, VERIFY, need, req.prompt + req.generated - 1)

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
        self.gamma_sum += gamma
        self.gamma_rounds += 1
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
        if gamma and dev.wake is not None:  # a draft after an idle gap starts cold
            draft += dev.wake.adjust_s(start - dev.busy_until, draft)
        draft += dev.round_host_s
        dev.busy_until = start + draft
        dev.busy_time += draft
        req.gamma = gamma
        req.draft_s = draft
        req.round_start = now
        server: TargetServer = req.server  # type: ignore[assignment]
        up = self.net.one_way(dev.device_id, server.server_id, gamma)
        req.net_s = up
        self.loop.at(start + draft + up, self._verify_job, req)

    def _fused_round(self, server: TargetServer, req: Request) -> None:
        gamma = self._next_gamma(req)
        req.gamma = gamma
        req.round_start = self.loop.now
        context = req.prompt + req.generated
        req.draft_s = gamma * server.draft_step.step_s(1, 1, context, context + 1)
        if gamma:  # the draft model's own KV is not the target's: no reservation to draft
            self._enqueue(server, req, DRAFT, gamma, context)
        else:
            self._verify_job(req)

    # ---------------------------------------------------------------- completion
    def _finish(self, req: Request) -> None:
        self._count_in_flight(-1)
        ttft = req.first_token_s - req.arrival
        e2e = req.last_token_s - req.arrival
        measured = req.measured
        tpot, met = self.metrics.record_request(
            ttft, e2e, req.generated, req.rounds, req.drafted, req.accepted, measured,
            self.loop.now >= self.warmup_s)
        if measured:
            server: TargetServer = req.server  # type: ignore[assignment]
            self.table.add((
                req.request_id, req.device.device_id, server.server_id, req.mode, req.arrival,
                req.prompt, req.generated, ttft * 1e3, None if tpot != tpot else tpot * 1e3,
                e2e * 1e3, req.rounds, req.drafted, req.accepted, met,
            ))
        self.arrivals.on_finish(req)

    # ---------------------------------------------------------------- run
    def run(self) -> dict[str, Any]:
        sim = self.cluster.config.simulation
        self.arrivals.start()
        if self.warmup_s > 0:
            self.loop.at(self.warmup_s, self._warmup_ends)
        self.loop.run(math.inf if sim.drain else sim.duration_s)
        end = self.loop.now  # drained: the last completion (arrivals stop scheduling at the end)
        self._count_in_flight(0)  # close the in-flight integral at the end time
        self._sample(end)
        return self.cluster_stats(end)

    def _warmup_ends(self, _: Any) -> None:
        self.window.start(self.loop.now)

    def _sample(self, now: float) -> None:
        """One time-series point for the interval that ends now (on step starts, coarse)."""
        servers = self.servers
        self.series.sample(
            now, [s.batched_jobs for s in servers], [s.batches for s in servers],
            [len(s.queue) + len(s.decode_queue) + len(s.draft_queue) + len(s.waiting)
             for s in servers],
            [kv_area_at(s, now) / max(s.kv_capacity, 1) for s in servers],
            self.gamma_sum, self.gamma_rounds)
        self.sample_at = self.series.next_t

    def cluster_stats(self, end: float) -> dict[str, Any]:
        span = end
        stats = {
            "sim_time_s": span,
            "events_processed": self.loop.events,
            "requests_arrived": self.arrived,
            "requests_unfinished": self.in_flight,
            "requests_rejected_total": self.rejected_total,
            "peak_in_flight": self.peak_in_flight,
            "mean_in_flight": self._area / span if span > 0 else 0.0,
            "peak_sessions_per_target": max(s.peak_running for s in self.servers),
            "fused_request_frac": self.mode_counts["fused"] / max(self.arrived, 1),
            "preemptions": self.preemptions,
            "recomputed_tokens": self.recomputed_tokens,
            "swapped_tokens": self.swapped_tokens,
            "peak_kv_used": max(s.peak_kv for s in self.servers),
            "peak_kv_occupancy": max(s.peak_kv / max(s.kv_capacity, 1) for s in self.servers),
        }
        stats.update(self.window.finish(end))
        return stats

"""Simulated things: requests, edge draft devices, cloud target servers, network links.

Plain `__slots__` classes, not dataclasses, because the hot loop touches their attributes
millions of times. A request is also its own job at a server: it is in exactly one phase
(prefill, draft, verify or decode) at a time, so the batcher sees the request itself
through the `VerifyJob` attributes (request_id, context_len, query_tokens, arrival_s,
deadline_s).
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

# Job kinds at a target server.
PREFILL, VERIFY, DECODE, DRAFT = 0, 1, 2, 3


class Request:
    __slots__ = (
        "request_id", "device", "server", "user", "arrival", "prompt", "output", "measured",
        "generated", "first_token_s", "last_token_s", "rounds", "drafted", "accepted",
        "acceptance", "window", "gamma", "pending_tokens", "pending_accepted", "round_start",
        "draft_s", "kv_held", "features", "net_s",
        "load", "kind", "context_len", "query_tokens", "arrival_s", "deadline_s",
        "mode", "pre_accepted", "expected_tokens",
    )

    def __init__(self, request_id: int, device: DraftDevice, arrival: float, prompt: int,
                 output: int, measured: bool, user: int = -1) -> None:
        self.request_id = request_id
        self.device = device
        self.server: TargetServer | None = None
        self.user = user
        self.arrival = arrival
        self.prompt = prompt
        self.output = output
        self.measured = measured
        self.generated = 0
        self.first_token_s = math.nan
        self.last_token_s = math.nan
        self.rounds = self.drafted = self.accepted = 0
        self.acceptance: Any = None
        self.window: Any = None
        self.gamma = 0
        self.pending_tokens = self.pending_accepted = 0
        self.round_start = 0.0
        self.draft_s = 0.0
        self.kv_held = 0
        self.features: Any = None  # SessionFeatures, when the window policy needs them
        self.net_s = 0.0  # network time of the current round, both directions
        self.load = 0.0
        self.kind = PREFILL
        self.context_len = 0
        self.query_tokens = 0
        self.arrival_s = arrival
        self.deadline_s = math.inf
        self.mode = "distributed"  # per request: distributed, fused or cloud_only
        self.pre_accepted = -1  # verdict sampled at drafting time (early-stop rounds), else -1
        self.expected_tokens = 1.0  # expected tokens of the pending verify (SLO batcher)


class DraftDevice:
    """An edge device: one draft model drafting for one request at a time, first come first
    served. `busy_until` is the whole queue state: a new draft starts when the device frees."""

    __slots__ = ("device_id", "pool", "step", "busy_until", "targets", "busy_time")

    def __init__(self, device_id: int, pool: int, step: Any, targets: list[TargetServer]) -> None:
        self.device_id = device_id
        self.pool = pool
        self.step = step  # perf StepModel of the draft model on this device
        self.busy_until = 0.0
        self.busy_time = 0.0
        self.targets = targets  # servers with a tokenizer-compatible target model

    def draft_step_s(self, context: int) -> float:
        return self.step.step_s(1, 1, context, context + 1)

    def prefill_s(self, prompt: int) -> float:
        return self.step.step_s(1, prompt, 0, prompt * (prompt + 1) // 2)


class TargetServer:
    """A cloud server: a job queue, a batcher, one executor running one batch at a time, and
    KV memory that admits a new request only when its prompt plus one window fits."""

    __slots__ = (
        "server_id", "pool", "step", "draft_step", "batcher", "max_batch", "max_wait_s",
        "queue", "draft_queue", "busy", "wake_pending", "batch", "kv_capacity", "kv_used",
        "waiting", "running", "peak_running", "queued_tokens", "busy_time", "batches",
        "batched_jobs", "remaining_tokens", "est_step_s",
    )

    def __init__(self, server_id: int, pool: int, step: Any, draft_step: Any, batcher: Any,
                 kv_capacity: int) -> None:
        self.server_id = server_id
        self.pool = pool
        self.step = step  # StepModel of the target model on this server
        self.draft_step = draft_step  # StepModel of the fused-mode draft model on this server
        self.batcher = batcher
        self.max_batch: int = batcher.max_batch
        self.max_wait_s: float = batcher.max_wait_s
        self.queue: list[Request] = []
        self.draft_queue: list[Request] = []
        self.busy = False
        self.wake_pending = False
        self.batch: list[Request] = []
        self.kv_capacity = kv_capacity
        self.kv_used = 0
        self.waiting: deque[Request] = deque()
        self.running = 0
        self.peak_running = 0
        self.queued_tokens = 0
        self.busy_time = 0.0
        self.batches = 0
        self.batched_jobs = 0
        self.remaining_tokens = 0  # output tokens its routed sessions have yet to produce
        # A one-job verify step (gamma 4, 512-token context): the routers' step estimate.
        self.est_step_s: float = step.step_s(1, 5, 512, 5 * 517)


class Network:
    """Per-link one-way delays: half the link RTT, plus transfer time at the link bandwidth,
    plus Gaussian jitter (clipped at zero), plus one retransmission delay per lost send."""

    __slots__ = ("n_servers", "rtt", "jitter_s", "bytes_per_s", "loss", "retransmit_s",
                 "header_bytes", "bytes_per_token", "rng", "setup_s")

    def __init__(self, rtt: list[float], n_servers: int, jitter_s: float, bandwidth_mbps: float,
                 loss: float, retransmit_s: float, header_bytes: int, bytes_per_token: int,
                 rng: Any, setup_s: float = 0.0) -> None:
        self.setup_s = setup_s  # extra delay of a session's first message (stream set-up)
        self.rtt = rtt  # flat [device * n_servers + server] -> RTT seconds
        self.n_servers = n_servers
        self.jitter_s = jitter_s
        self.bytes_per_s = bandwidth_mbps * 1e6 / 8
        self.loss = loss
        self.retransmit_s = retransmit_s
        self.header_bytes = header_bytes
        self.bytes_per_token = bytes_per_token
        self.rng = rng

    def link_rtt(self, device: int, server: int) -> float:
        return self.rtt[device * self.n_servers + server]

    def one_way(self, device: int, server: int, tokens: int) -> float:
        delay = 0.5 * self.rtt[device * self.n_servers + server] + (
            self.header_bytes + tokens * self.bytes_per_token) / self.bytes_per_s
        if self.jitter_s:
            delay += self.rng.gauss(0.0, self.jitter_s)
            if delay < 0.0:
                delay = 0.0
        if self.loss:
            random = self.rng.random
            while random() < self.loss:
                delay += self.retransmit_s
        return delay

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
        "prefill_total", "prefilled", "resume", "preempted", "pending_kind", "swapped",
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
        # A prefill job runs `prefill_total` tokens, `prefilled` of them done (chunks). A
        # recompute after preemption is a prefill that then resumes as `resume` (VERIFY or
        # DECODE); -1 for a plain prefill.
        self.prefill_total = 0
        self.prefilled = 0
        self.resume = -1
        self.preempted = False  # its KV was taken; its next server job waits for memory
        self.pending_kind = -1  # the job it waits to run again after preemption
        self.swapped = 0  # tokens of KV swapped out to host memory


class DraftDevice:
    """An edge device: one draft model drafting for one request at a time, first come first
    served. `busy_until` is the whole queue state: a new draft starts when the device frees."""

    __slots__ = ("device_id", "pool", "step", "busy_until", "targets", "busy_time", "wake",
                 "round_host_s")

    def __init__(self, device_id: int, pool: int, step: Any, targets: list[TargetServer],
                 round_host_s: float = 0.0) -> None:
        self.device_id = device_id
        self.pool = pool
        self.step = step  # perf StepModel of the draft model on this device
        self.busy_until = 0.0
        self.busy_time = 0.0
        self.targets = targets  # servers with a tokenizer-compatible target model
        # A measured profile's idle wake-up cost (perf/idle_wake.py), else None.
        self.wake = getattr(step, "wake", None)
        self.round_host_s = round_host_s  # host work per round besides drafting

    def draft_step_s(self, context: int) -> float:
        return self.step.step_s(1, 1, context, context + 1)

    def prefill_s(self, prompt: int) -> float:
        return self.step.step_s(1, prompt, 0, prompt * (prompt + 1) // 2)


class TargetServer:
    """A cloud server: job queues, a batcher, one executor running one step at a time within
    the engine's limits (sequences and tokens per step), and KV memory reserved step by
    step (see sim/kv.py)."""

    __slots__ = (
        "server_id", "pool", "step", "draft_step", "batcher", "max_batch", "max_wait_s",
        "queue", "draft_queue", "decode_queue", "busy", "wake_pending", "batch",
        "kv_capacity", "kv_used", "peak_kv", "watermark", "sessions", "waiting", "running",
        "peak_running", "queued_tokens", "busy_time", "batches", "batched_jobs",
        "remaining_tokens", "est_step_s", "prefills_pending", "max_seqs", "max_tokens",
        "chunked", "swap_s_per_token", "swap_pending_s", "batch_end",
        "step_start", "step_prefill_s", "kv_area", "kv_t", "kv_last",
        "seq_cap", "wake",
    )

    def __init__(self, server_id: int, pool: int, step: Any, draft_step: Any, batcher: Any,
                 kv_capacity: int, engine: Any = None, kv_bytes_per_token: float = 0.0,
                 tp: int = 1) -> None:
        self.server_id = server_id
        self.pool = pool
        self.step = step  # StepModel of the target model on this server
        self.draft_step = draft_step  # StepModel of the fused-mode draft model on this server
        self.batcher = batcher
        self.max_batch: int = batcher.max_batch
        self.max_wait_s: float = batcher.max_wait_s
        self.queue: list[Request] = []  # prefill and verify jobs, for the batcher
        self.draft_queue: list[Request] = []  # fused-mode draft jobs
        self.decode_queue: list[Request] = []  # cloud-only decode steps (continuous batching)
        self.busy = False
        self.wake_pending = False
        self.batch: list[Request] = []
        self.max_seqs: int = engine.max_num_seqs if engine else 1 << 30
        self.max_tokens: int = engine.max_num_batched_tokens if engine else 1 << 30
        self.chunked: bool = engine.chunked_prefill if engine else False
        if engine and engine.kv_budget_tokens is not None:
            kv_capacity = min(kv_capacity, engine.kv_budget_tokens)
        self.kv_capacity = kv_capacity
        self.kv_used = 0
        self.peak_kv = 0
        # Headroom a new session must leave free, so it is not preempted at its first step
        # (vLLM's 1% watermark); a server with nothing running admits without it.
        self.watermark = math.ceil(0.01 * kv_capacity)
        self.sessions: dict[Request, None] = {}  # sessions holding KV, oldest admitted first
        self.waiting: deque[Request] = deque()  # new and preempted requests waiting for KV
        self.running = 0
        self.peak_running = 0
        self.queued_tokens = 0
        self.busy_time = 0.0
        self.batches = 0
        self.batched_jobs = 0
        self.remaining_tokens = 0  # output tokens its routed sessions have yet to produce
        self.prefills_pending = 0  # queued or running prefills (most steps have none)
        # A one-job verify step (gamma 4, 512-token context): the routers' step estimate.
        self.est_step_s: float = step.step_s(1, 5, 512, 5 * 517)
        # Swapping moves each GPU's KV shard over its own host link.
        gbps = engine.swap_gbps if engine else 25.0
        self.swap_s_per_token = kv_bytes_per_token / (tp * gbps * 1e9)
        self.swap_pending_s = 0.0  # swap time the next step pays
        self.batch_end = 0.0  # when the running (or last) step ends
        self.wake = getattr(step, "wake", None)  # idle wake-up cost of a measured profile
        self.seq_cap = self.max_batch  # sequences a full step holds (occupancy denominator)
        # The running step started at `step_start` and spends `step_prefill_s` of its time
        # on prefill work (interference of the verifies that wait behind it).
        self.step_start = 0.0
        self.step_prefill_s = 0.0
        self.kv_area = 0.0  # integral of kv_used over time, sampled at step boundaries
        self.kv_t = 0.0
        self.kv_last = 0


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

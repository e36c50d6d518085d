"""Prometheus metrics of the edge and the verifier (one registry per server instance).

Speculative decoding counters follow vLLM's names and meaning: drafts (rounds with at least
one draft token), draft tokens, accepted tokens, accepted tokens per draft position.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class SpecDecodeCounters:
    def __init__(self, registry: CollectorRegistry, prefix: str) -> None:
        self.drafts = Counter(f"{prefix}spec_decode_num_drafts", "Speculation rounds with drafts",
                              registry=registry)
        self.draft_tokens = Counter(f"{prefix}spec_decode_num_draft_tokens",
                                    "Draft tokens proposed", registry=registry)
        self.accepted_tokens = Counter(f"{prefix}spec_decode_num_accepted_tokens",
                                       "Draft tokens accepted", registry=registry)
        self.accepted_per_pos = Counter(f"{prefix}spec_decode_num_accepted_tokens_per_pos",
                                        "Accepted draft tokens by position (0-based)",
                                        ["position"], registry=registry)

    def record(self, gamma: int, accepted: int) -> None:
        if gamma <= 0:
            return
        self.drafts.inc()
        self.draft_tokens.inc(gamma)
        self.accepted_tokens.inc(accepted)
        for pos in range(accepted):
            self.accepted_per_pos.labels(position=str(pos)).inc()


class EdgeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.spec = SpecDecodeCounters(r, "dsd_edge_")
        self.requests = Counter("dsd_edge_requests", "Finished requests", ["status"], registry=r)
        self.running = Gauge("dsd_edge_requests_running", "Requests in progress", registry=r)
        self.waiting = Gauge("dsd_edge_requests_waiting", "Requests queued for a slot",
                             registry=r)
        self.busy_retries = Counter("dsd_edge_verifier_busy_waits",
                                    "Opens a full verifier refused, waited and retried",
                                    registry=r)
        self.retries = Counter("dsd_edge_verifier_retries", "Requests moved to another verifier",
                               registry=r)
        self.ttft = Histogram("dsd_edge_time_to_first_token_seconds", "TTFT", registry=r,
                              buckets=LATENCY_BUCKETS)
        self.tpot = Histogram("dsd_edge_time_per_output_token_seconds", "TPOT", registry=r,
                              buckets=LATENCY_BUCKETS)
        self.e2e = Histogram("dsd_edge_e2e_request_latency_seconds", "End-to-end latency",
                             registry=r, buckets=LATENCY_BUCKETS)
        self.round_time = Histogram("dsd_edge_round_seconds", "Speculation round time (edge)",
                                    registry=r, buckets=LATENCY_BUCKETS)
        self.rtt = Histogram("dsd_edge_verifier_rtt_seconds", "Network RTT to the verifier",
                             registry=r, buckets=LATENCY_BUCKETS)
        self.gamma = Histogram("dsd_edge_gamma", "Window size per round", registry=r,
                               buckets=(0, 1, 2, 3, 4, 5, 6, 8, 12, 16, 32))
        self.prompt_tokens = Counter("dsd_edge_prompt_tokens", "Prompt tokens", registry=r)
        self.generation_tokens = Counter("dsd_edge_generation_tokens", "Generated tokens",
                                         registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class VerifierMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.spec = SpecDecodeCounters(r, "dsd_verifier_")
        self.sessions = Gauge("dsd_verifier_sessions", "Open sessions", registry=r)
        self.queue_depth = Gauge("dsd_verifier_queue_depth", "Jobs waiting", registry=r)
        self.batch_size = Histogram("dsd_verifier_batch_size", "Verify jobs per target forward",
                                    registry=r, buckets=(1, 2, 4, 8, 16, 32, 64))
        self.forward_time = Histogram("dsd_verifier_forward_seconds", "Target forward time",
                                      ["kind"], registry=r, buckets=LATENCY_BUCKETS)
        self.queue_time = Histogram("dsd_verifier_queue_seconds", "Time a job waited",
                                    registry=r, buckets=LATENCY_BUCKETS)
        self.prefill_tokens = Counter("dsd_verifier_prefill_tokens", "Prefilled tokens",
                                      registry=r)
        self.errors = Counter("dsd_verifier_errors", "Refused or failed calls", ["code"],
                              registry=r)
        self.sessions_waiting = Gauge("dsd_verifier_sessions_waiting",
                                      "Sessions queued for a session slot or KV share",
                                      registry=r)
        self.kv_reserved = Gauge("dsd_verifier_kv_reserved_tokens",
                                 "KV tokens reserved by open sessions", registry=r)
        self.capacity_refusals = Counter("dsd_verifier_capacity_refusals",
                                         "Sessions refused: wait queue full or wait too long",
                                         registry=r)
        self.context_limit = Counter("dsd_verifier_context_limit_refusals",
                                     "Verifies refused for running past the context length",
                                     registry=r)
        self.idle_timeouts = Counter("dsd_verifier_idle_session_timeouts",
                                     "Sessions closed for idling past the idle timeout",
                                     registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)

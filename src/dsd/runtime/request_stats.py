"""Per-request statistics the edge records: the simulator's per-request columns, plus where
the time went (link vs verifier) as the edge measured it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class RequestStats:
    request_id: str
    arrival_s: float  # perf_counter at arrival
    prompt_tokens: int
    target_id: int = -1
    output_tokens: int = 0
    first_token_s: float | None = None
    finish_s: float | None = None
    rounds: int = 0
    drafted: int = 0
    accepted: int = 0
    retries: int = 0
    gamma_history: list[int] = field(default_factory=list)
    accepted_history: list[int] = field(default_factory=list)  # per round, like gamma_history
    accepted_per_pos: list[int] = field(default_factory=list)
    finish_reason: str | None = None
    # Where the time went, as the edge measured it: the open's link time (round trip minus
    # the verifier's own time) and the verifier's time, and the same summed over rounds.
    open_link_s: float = 0.0
    open_server_s: float = 0.0
    link_s: float = 0.0
    server_s: float = 0.0

    @property
    def ttft_s(self) -> float:
        return (self.first_token_s or self.arrival_s) - self.arrival_s

    @property
    def e2e_s(self) -> float:
        return (self.finish_s or time.perf_counter()) - self.arrival_s

    @property
    def tpot_s(self) -> float:
        if self.output_tokens <= 1:
            return 0.0
        return (self.e2e_s - self.ttft_s) / (self.output_tokens - 1)

    def as_dict(self) -> dict:
        return {
            "request_id": self.request_id, "target_id": self.target_id,
            "prompt_tokens": self.prompt_tokens, "output_tokens": self.output_tokens,
            "ttft_ms": self.ttft_s * 1e3, "tpot_ms": self.tpot_s * 1e3, "e2e_ms": self.e2e_s * 1e3,
            "rounds": self.rounds, "drafted_tokens": self.drafted,
            "accepted_tokens": self.accepted,
            "acceptance_rate": self.accepted / self.drafted if self.drafted else 0.0,
            "retries": self.retries, "gamma_history": list(self.gamma_history),
            "accepted_history": list(self.accepted_history),
            "accepted_per_pos": list(self.accepted_per_pos), "finish_reason": self.finish_reason,
            "open_link_ms": self.open_link_s * 1e3, "open_server_ms": self.open_server_s * 1e3,
            "round_link_ms": self.link_s * 1e3 / max(1, self.rounds),
            "round_server_ms": self.server_s * 1e3 / max(1, self.rounds),
        }

"""Admission control at a target server: take a new request on, or reject it now.

A server asks its admission policy when a request's prompt arrives and again when the
request leaves the server's memory wait queue (just before it would start), with a view of
its backlog. Rejected requests get an error back at once instead of queueing past their
SLO; the engines count them (`requests_rejected`) and they count against SLO attainment.

- `admit-all`: never rejects (the default).
- `queue-cap`: rejects when `max_queue` requests are already waiting at the server to
  start (waiting for KV memory or for their prefill).
- `slo`: rejects a request that can no longer meet its TTFT SLO: time already spent +
  predicted wait for the steps the work ahead of it needs + its own prefill + the first
  token's trip back > the SLO x `slack` (see `AdmissionView.predicted_ttft_s`). The wait
  counts steps, not tokens: a step of short verifies costs about what a step of one costs
  (weights and fixed costs dominate), so a per-token rate misjudges a queue of verifies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from dsd.policies.registry import Registry


@dataclass(frozen=True, slots=True)
class AdmissionView:
    """What a server knows about a request and its own backlog when deciding."""

    now_s: float
    arrival_s: float  # when the user sent the request
    prompt_tokens: int
    waiting_requests: int  # requests ahead of it that have not started (memory or prefill)
    queued_jobs: int  # jobs queued ahead of it for a step (prefills, verifies, decodes)
    queued_tokens: int  # their query tokens
    step_jobs: int  # jobs one step takes at most
    step_tokens: int  # query tokens one step takes at most
    step_s: float  # the server's mean step time so far (0 before its first step)
    step_left_s: float  # what remains of the step running now
    prefill_s: float  # predicted time of its own prefill
    return_s: float  # predicted one-way trip of the first token to the user
    ttft_slo_s: float

    def steps_ahead(self) -> int:
        """Steps the work ahead needs before this request's prefill can run."""
        jobs = self.queued_jobs + self.waiting_requests
        by_jobs = -(-jobs // max(self.step_jobs, 1))
        by_tokens = -(-self.queued_tokens // max(self.step_tokens, 1))
        return max(by_jobs, by_tokens)

    def predicted_ttft_s(self) -> float:
        """Elapsed + the running step's rest + the steps ahead + own prefill + the trip."""
        wait = self.step_left_s + self.steps_ahead() * self.step_s
        return (self.now_s - self.arrival_s) + wait + self.prefill_s + self.return_s


class AdmissionPolicy(Protocol):
    def admit(self, view: AdmissionView) -> bool:
        """True to take the request on, False to reject it now."""
        ...


ADMISSION: Registry[AdmissionPolicy] = Registry("admission")


@ADMISSION.register("admit-all")
class AdmitAll:
    """Every request is taken on (requests wait for memory as long as it takes)."""

    admits_all = True  # engines skip building the view

    def admit(self, view: AdmissionView) -> bool:
        return True


@ADMISSION.register("queue-cap")
class QueueCap:
    """Reject when `max_queue` requests are already waiting to start at this server."""

    admits_all = False

    def __init__(self, max_queue: int = 64) -> None:
        if max_queue < 0:
            raise ValueError("max_queue must be >= 0")
        self.max_queue = max_queue

    def admit(self, view: AdmissionView) -> bool:
        return view.waiting_requests < self.max_queue


@ADMISSION.register("slo")
class SloAdmission:
    """Reject a request whose predicted TTFT already exceeds `slack` x its TTFT SLO."""

    admits_all = False

    def __init__(self, slack: float = 1.0) -> None:
        if slack <= 0:
            raise ValueError("slack must be > 0")
        self.slack = slack

    def admit(self, view: AdmissionView) -> bool:
        return view.predicted_ttft_s() <= self.slack * view.ttft_slo_s

"""WISP's SLO-aware verification batch scheduler.

Each batch is built in two passes over the queue, pricing candidate batches with the
verification time estimator (a function of the batch's sums: jobs, query tokens, context
tokens, attention pairs):

1. Urgent jobs (slack = deadline - now - own cost < `urgent_ms`) join in earliest-deadline-
   first order.
2. The remaining room is filled by value density: expected emitted tokens per second of
   predicted verify time (a verify job's expected tokens come from its acceptance model;
   a prefill's is one token), highest first.

A job is admitted only if every deadline in the batch still holds at the predicted finish
`now + T(batch + job)`. Jobs whose deadline is already unreachable even alone ("late")
do not constrain the others but are still served, in deadline order. Jobs left out wait
for the next batch. Needs an estimator: the simulator calls `bind(step_model)` when it
builds the server; the runtime may pass a fitted `VerifyTimeEstimator`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from dsd.policies.batching import BATCHERS, VerifyJob
from dsd.policies.estimator import VerifyTimeEstimator


@BATCHERS.register("slo")
class SloAwareBatcher:
    wants_expected_tokens = True  # engines set `job.expected_tokens` for verify jobs

    def __init__(self, max_batch: int = 32, max_batch_tokens: int = 8192,
                 max_wait_ms: float = 0.0, urgent_ms: float = 50.0,
                 estimator: VerifyTimeEstimator | None = None) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        self.max_batch = max_batch
        self.max_batch_tokens = max_batch_tokens
        self.max_wait_s = max_wait_ms / 1000.0
        self.urgent_s = urgent_ms / 1000.0
        self.estimator = estimator

    def bind(self, step_model: Any) -> None:
        """Fit the estimator on the verifier's latency model (the profiling stand-in)."""
        if self.estimator is None:
            self.estimator = VerifyTimeEstimator.fit_step(step_model, self.max_batch)

    def select(self, queue: Sequence[VerifyJob], now: float) -> list[VerifyJob]:
        est = self.estimator
        if est is None:
            raise RuntimeError("slo batcher needs an estimator: call bind(step_model) first")
        predict = est.predict_shape
        urgent: list[tuple[float, int, float]] = []
        rest: list[tuple[float, int, float]] = []
        for i, job in enumerate(queue):
            q, c = job.query_tokens, job.context_len
            alone = predict(1, q, c, q * (c + q))
            if job.deadline_s - now - alone < self.urgent_s:
                urgent.append((job.deadline_s, i, alone))
            else:
                value = getattr(job, "expected_tokens", 1.0) or 1.0
                rest.append((-value / max(alone, 1e-9), i, alone))
        urgent.sort()
        rest.sort()
        batch: list[VerifyJob] = []
        n = tokens = context = attn = 0
        tightest = math.inf  # earliest deadline among admitted jobs that can still make it
        for _, i, alone in (*urgent, *rest):
            if n >= self.max_batch:
                break
            job = queue[i]
            q, c = job.query_tokens, job.context_len
            if n and tokens + q > self.max_batch_tokens:
                continue
            finish = now + predict(n + 1, tokens + q, context + c, attn + q * (c + q))
            deadline = job.deadline_s
            feasible = deadline >= now + alone  # could make it if run alone
            if n and (finish > tightest or (feasible and finish > deadline)):
                continue
            batch.append(job)
            n += 1
            tokens += q
            context += c
            attn += q * (c + q)
            if feasible and deadline < tightest:
                tightest = deadline
        return batch

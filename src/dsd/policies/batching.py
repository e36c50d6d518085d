"""Batching at the verifier: which queued jobs form the next target forward pass.

A batcher sees `VerifyJob`-like objects (anything with the attributes below) and returns
the ones to run, in order. When to run (max wait, max batch) is the server's business, so
every batcher's `select` is a pure function of the queue.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

from dsd.policies.registry import Registry


class VerifyJob(Protocol):
    """The view of a queued job that a batcher may use."""

    request_id: int
    context_len: int  # tokens already in the target KV cache for this request
    query_tokens: int  # tokens this job feeds the target (gamma+1 for verify, prompt for prefill)
    arrival_s: float  # when the job reached the target's queue
    deadline_s: float  # TPOT deadline for this job (inf when no SLO)


class Batcher(Protocol):
    max_batch: int
    max_batch_tokens: int
    max_wait_s: float

    def select(self, queue: Sequence[VerifyJob], now: float) -> list[VerifyJob]:
        """Return a non-empty sub-list of `queue` (queue is non-empty)."""
        ...


BATCHERS: Registry[Batcher] = Registry("batcher")


@BATCHERS.register("fifo")
class FifoBatcher:
    """First come, first served, up to `max_batch` jobs and `max_batch_tokens` query tokens."""

    def __init__(
        self, max_batch: int = 32, max_batch_tokens: int = 8192, max_wait_ms: float = 0.0
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        self.max_batch = max_batch
        self.max_batch_tokens = max_batch_tokens
        self.max_wait_s = max_wait_ms / 1000.0

    def select(self, queue: Sequence[VerifyJob], now: float) -> list[VerifyJob]:
        batch: list[VerifyJob] = []
        tokens = 0
        for job in queue:
            if len(batch) >= self.max_batch:
                break
            if batch and tokens + job.query_tokens > self.max_batch_tokens:
                break
            batch.append(job)
            tokens += job.query_tokens
        return batch


@BATCHERS.register("lab")
class LengthAwareBatcher:
    """Length-Aware Batching (LAB): a batch of similar jobs, so no member slows the others.

    The rule: the oldest queued job anchors the batch (so nothing starves). A job is
    compatible with the anchor if its query tokens are within x`query_ratio` of the
    anchor's and its total length (context + query tokens) within x`length_ratio`;
    compatible jobs join closest total length first (ties: oldest first), up to `max_batch`
    jobs and `max_batch_tokens`. So verifies of similar context lengths batch together.

    `prefill` says what happens to the incompatible jobs (prefills next to verifies):
    `separate` (the DSD paper's LAB): they wait for a batch of their own kind, so a
    600-token prefill never rides with 5-token verifies (which then wait behind it in the
    queue instead); `mixed` (Sarathi-style): they join after the compatible jobs, oldest
    first, and the engine runs them in the room its per-step token budget leaves
    (`engine.max_num_batched_tokens`, chunking a prefill that does not fit).
    """

    def __init__(self, max_batch: int = 32, max_batch_tokens: int = 8192,
                 max_wait_ms: float = 0.0, query_ratio: float = 4.0,
                 length_ratio: float = 4.0, prefill: str = "separate") -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        if query_ratio < 1 or length_ratio < 1:
            raise ValueError("query_ratio and length_ratio must be >= 1")
        if prefill not in ("separate", "mixed"):
            raise ValueError(f"prefill must be 'separate' or 'mixed', got {prefill!r}")
        self.max_batch = max_batch
        self.max_batch_tokens = max_batch_tokens
        self.max_wait_s = max_wait_ms / 1000.0
        self.log_q = math.log(query_ratio)
        self.log_len = math.log(length_ratio)
        self.mixed = prefill == "mixed"

    def select(self, queue: Sequence[VerifyJob], now: float) -> list[VerifyJob]:
        anchor = queue[0]
        aq = math.log(anchor.query_tokens or 1)
        alen = math.log(anchor.context_len + anchor.query_tokens or 1)
        scored = []
        others = []  # incompatible jobs, oldest first (mixed only)
        for i in range(1, len(queue)):
            job = queue[i]
            dlen = abs(math.log(job.context_len + job.query_tokens or 1) - alen)
            if dlen <= self.log_len and abs(math.log(job.query_tokens or 1) - aq) <= self.log_q:
                scored.append((dlen, i))
            elif self.mixed:
                others.append(i)
        scored.sort()
        batch = [anchor]
        tokens = anchor.query_tokens
        for i in [i for _, i in scored] + others:
            if len(batch) >= self.max_batch:
                break
            job = queue[i]
            if tokens + job.query_tokens > self.max_batch_tokens:
                continue
            batch.append(job)
            tokens += job.query_tokens
        return batch

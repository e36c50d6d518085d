"""How long a server's forward passes take for a batch of jobs, and what batching costs each
verify job (verification interference), from the server's bound latency model."""

from __future__ import annotations

from typing import Any

from dsd.sim.entities import PREFILL, VERIFY, Request


def target_batch_s(step: Any, batch: list[Request]) -> float:
    """One target forward over every job's query tokens (prefill attention is causal; a
    prefill chunk also attends to the chunks before it). The longest decode/verify sequence
    rides along: ragged batches cost more than their mean twin (see
    dsd.perf.base.StepModel)."""
    query = context = attn = longest = 0
    for r in batch:
        q, c = r.query_tokens, r.context_len
        query += q
        context += c
        if r.kind != PREFILL:
            attn += q * (c + q)
            if c + q > longest:
                longest = c + q
        else:
            attn += q * c + q * (q + 1) // 2
    return step.step_s(len(batch), query, context, attn, longest)


def fused_draft_s(step: Any, batch: list[Request]) -> float:
    """gamma sequential draft steps for the batch; sessions drop out as their gamma ends."""
    total, steps = 0.0, max(r.query_tokens for r in batch)
    for s in range(1, steps + 1):
        live = [r for r in batch if r.query_tokens >= s]
        context = sum(r.context_len for r in live) + len(live) * (s - 1)
        longest = max(r.context_len for r in live) + s
        total += step.step_s(len(live), len(live), context, context + len(live), longest)
    return total


def record_interference(metrics: Any, step: Any, batch: list[Request], batch_s: float) -> None:
    """What batch mates add to each measured verify job's step, T(batch) - T({r}) (the
    engine adds the time verifies wait behind prefills)."""
    if len(batch) == 1:
        if batch[0].kind == VERIFY and batch[0].measured:
            metrics.verify_rounds += 1
        return
    for r in batch:
        if r.kind == VERIFY and r.measured:
            q, c = r.query_tokens, r.context_len
            metrics.interference_s += batch_s - step.step_s(1, q, c, q * (c + q))
            metrics.verify_rounds += 1

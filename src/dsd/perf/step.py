"""The bound step model of the operator-level predictors (`fitted`, `vidur`): a forward step
is the sum of

    linear     the VIDUR operator set over the step's query tokens (embedding + per layer
               norms, QKV, rope, output projection, MLP up/act/down, residual add)
    head       final norm + LM head over the positions that need logits (every query token
               of a decode/verify step; the last position of each prefill)
    attention  `AttentionModel` or a measured attention table, ragged-aware
    comm       the tensor-parallel all-reduces over the query tokens' activations
    overhead   the serving engine's host work per step and per sequence

The linear, comm and head parts of a decode/verify step depend only on its query tokens,
so they are tabulated lazily per token count: after warm-up a call is one dict lookup and
a few float operations of attention.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dsd.perf.attention import AttentionModel
from dsd.perf.base import Deployment

PARTS = ("linear", "head", "attention", "comm", "overhead")


class ComposedStep:
    """A deployment's step cost from its parts; `step_s` is the simulator's hot path, with
    `AttentionModel.seconds` inlined (a test checks that both agree)."""

    __slots__ = ("hw", "validated", "source", "_linear", "_comm", "_head", "_attention",
                 "_base", "_forward", "_heads", "_overhead_s", "_seq_s", "_kv_s", "_pair_s",
                 "_crit_s", "_blocks", "_sm", "_attn_fixed_s")

    def __init__(self, hw: Deployment, linear: Callable[[int], float],
                 comm: Callable[[int], float], head: Callable[[int], float],
                 attention: Any, overhead_s: float, seq_overhead_s: float,
                 validated: bool, source: str) -> None:
        self.hw = hw
        self.validated = validated
        self.source = source
        self._linear, self._comm, self._head = linear, comm, head
        self._attention = attention
        self._base: dict[int, float] = {}  # query tokens -> see _fill
        self._forward: dict[int, float] = {}  # query tokens -> linear + comm
        self._heads: dict[int, float] = {}  # logit positions -> head seconds
        self._overhead_s = overhead_s
        self._seq_s = seq_overhead_s
        # the analytic model's constants (a measured attention table carries its own)
        a = attention if isinstance(attention, AttentionModel) else attention.analytic
        self._kv_s, self._pair_s, self._crit_s = a.kv_s, a.pair_s, a.crit_s
        self._blocks, self._sm, self._attn_fixed_s = a.kv_heads, a.sm_count, a.fixed_s

    def _fill(self, query_tokens: int) -> float:
        """Everything of a decode/verify step that does not depend on its contexts:
        linear + comm + head over `query_tokens` (every query position needs logits), the
        attention kernels' fixed cost and the host's fixed overhead."""
        base = self._base[query_tokens] = (self._forward_s(query_tokens)
                                           + self._head_s(query_tokens)
                                           + self._attn_fixed_s + self._overhead_s)
        return base

    def _forward_s(self, query_tokens: int) -> float:
        forward = self._forward.get(query_tokens)
        if forward is None:
            forward = self._forward[query_tokens] = (self._linear(query_tokens)
                                                     + self._comm(query_tokens))
        return forward

    def _head_s(self, logits: int) -> float:
        head = self._heads.get(logits)
        if head is None:
            head = self._heads[logits] = self._head(logits)
        return head

    def _prefill_base(self, num_seqs: int, query_tokens: int) -> float:
        """As `_fill` for a step of prefills, which needs logits only at each sequence's
        last position."""
        return (self._forward_s(query_tokens) + self._head_s(num_seqs) + self._attn_fixed_s
                + self._overhead_s)

    def step_s(self, num_seqs: int, query_tokens: int, context_tokens: int, attn_pairs: int,
               max_kv: int = 0) -> float:
        if context_tokens:
            try:  # a subscript is cheaper than .get() on the hit path
                base = self._base[query_tokens]
            except KeyError:
                base = self._fill(query_tokens)
        else:
            base = self._prefill_base(num_seqs, query_tokens)
        # AttentionModel.seconds, inlined. The critical path of the longest sequence can
        # only exceed the whole-GPU memory time when that sequence is over twice the mean
        # (splits >= SMs / (2 x blocks)), so uniform batches skip it.
        kv = context_tokens + query_tokens
        memory = kv * self._kv_s
        if max_kv * num_seqs > 2 * kv:
            critical = max_kv * self._crit_s / (self._sm // (num_seqs * self._blocks) or 1)
            if critical > memory:
                memory = critical
        compute = attn_pairs * self._pair_s
        return base + (compute if compute > memory else memory) + self._seq_s * num_seqs

    def breakdown(self, num_seqs: int, query_tokens: int, context_tokens: int,
                  attn_pairs: int, max_kv: int = 0) -> dict[str, float]:
        """Seconds per part (PARTS); they sum to `step_s` of the same arguments."""
        logits = query_tokens if context_tokens else num_seqs
        return {
            "linear": float(self._linear(query_tokens)),
            "head": float(self._head_s(logits)),
            "attention": float(self.attention_s(num_seqs, query_tokens, context_tokens,
                                                attn_pairs, max_kv)),
            "comm": float(self._comm(query_tokens)),
            "overhead": self._overhead_s + self._seq_s * num_seqs,
        }

    def attention_s(self, num_seqs: int, query_tokens: int, context_tokens: int,
                    attn_pairs: int, max_kv: int = 0) -> float:
        return self._attention.seconds(num_seqs, query_tokens, context_tokens, attn_pairs,
                                       max_kv)


class MeasuredAttentionStep(ComposedStep):
    """A ComposedStep whose attention comes from a measured table (`attention.csv`)."""

    __slots__ = ()

    def step_s(self, num_seqs: int, query_tokens: int, context_tokens: int, attn_pairs: int,
               max_kv: int = 0) -> float:
        if context_tokens:
            base = self._base.get(query_tokens)
            if base is None:
                base = self._fill(query_tokens)
        else:
            base = self._prefill_base(num_seqs, query_tokens)
        return (base - self._attn_fixed_s + self._seq_s * num_seqs
                + self._attention.seconds(num_seqs, query_tokens, context_tokens,
                                          attn_pairs, max_kv))


def as_float(fn: Callable[[int], Any]) -> Callable[[int], float]:
    """Wrap a numpy-returning cost function so the tables hold plain floats."""
    return lambda tokens: float(fn(tokens))

"""Attention cost of a forward step, summed over layers, for one GPU's shard.

No attention profile backs this model (VIDUR's attention.csv files are not in dsd's data),
so its error is unmeasured; docs/latency.md says what it assumes:

- memory: every sequence reads its K and V cache once per layer,
      (context + query tokens) * 2 * kv_heads_per_gpu * head_dim * dtype bytes,
  at the GPU's fitted streaming bandwidth (the bandwidth its weight reads achieve);
- compute: 4 * q_heads_per_gpu * head_dim FLOPs per query-key pair (QK^T and PV), at the
  fitted matmul FLOP rate; the caller counts the pairs (causal prefill: q(q+1)/2);
- ragged batches: attention kernels run one block per (sequence, KV head, KV split), and
  FlashDecoding-style kernels choose one split count for the whole batch, enough to give
  every SM a block: splits = max(1, SMs // (sequences * kv_heads_per_gpu)). The longest
  sequence's block reads longest_kv / splits tokens of one head, and one block streams at
  most LONE_BLOCK_SPEEDUP x an SM's fair share of the bandwidth. The memory time is the
  larger of the total bytes over the whole GPU's bandwidth and that critical path, so one
  8k-token sequence among fifteen 100-token ones costs more than sixteen of the mean
  length, which spread evenly over the SMs;
- time per layer = max(compute, memory) + one kernel launch. The smooth max fitted to the
  projections is not carried over: FlashAttention-style kernels overlap their loads with
  their math, and with no attention measurement there is nothing to fit a p to.
"""

from __future__ import annotations

from dsd.catalog.gpu import OpCoefficients
from dsd.perf.base import Deployment

# How much faster than its fair share (bandwidth / SMs) one lone block streams: an SM's
# L2 port moves 64 B/clock (~90 GB/s on an A100, ~6x its HBM share); latency-bound
# blocks reach less. An assumption, not a measurement.
LONE_BLOCK_SPEEDUP = 4.0
# ComposedStep.step_s skips the critical path unless the longest sequence is over twice
# the mean, which is exact only while a lone block gets at least 2x its fair share.
assert LONE_BLOCK_SPEEDUP >= 2.0


class AttentionModel:
    """Per-deployment constants of the attention cost, and the cost itself."""

    __slots__ = ("kv_s", "pair_s", "crit_s", "kv_heads", "sm_count", "fixed_s")

    def __init__(self, hw: Deployment, c: OpCoefficients) -> None:
        model, tp, dtype = hw.model, hw.tp, hw.dtype_bytes
        assert dtype is not None and c.matmul_gbps and c.matmul_tflops
        kv_heads = max(1, model.kv_heads // tp)  # a replicated head when tp > kv_heads
        q_heads = model.heads / tp
        bandwidth = c.matmul_gbps * 1e9
        head_bytes = 2 * model.head_dim * dtype  # K and V of one token, one head
        self.kv_heads = kv_heads
        self.sm_count = hw.gpu.sm_count
        self.kv_s = model.layers * kv_heads * head_bytes / bandwidth
        self.pair_s = model.layers * 4.0 * q_heads * model.head_dim / (c.matmul_tflops * 1e12)
        self.crit_s = (model.layers * head_bytes * hw.gpu.sm_count
                       / (LONE_BLOCK_SPEEDUP * bandwidth))
        self.fixed_s = model.layers * (c.matmul_kernel_us or 0.0) * 1e-6

    def seconds(self, num_seqs: int, query_tokens: int, context_tokens: int, attn_pairs: int,
                max_kv: int = 0) -> float:
        """Attention seconds of one step; max_kv: the longest sequence's KV length after
        the step (0: unknown, taken as the mean)."""
        n = num_seqs if num_seqs > 0 else 1
        kv = context_tokens + query_tokens
        memory = kv * self.kv_s
        if max_kv > 0:  # (uniform batches never reach it: see ComposedStep.step_s)
            splits = self.sm_count // (n * self.kv_heads) or 1
            critical = max_kv * self.crit_s / splits
            if critical > memory:
                memory = critical
        compute = attn_pairs * self.pair_s
        return (compute if compute > memory else memory) + self.fixed_s

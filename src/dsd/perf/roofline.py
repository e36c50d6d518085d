"""Analytic roofline latency model: a forward step costs max(compute, memory) time plus
tensor-parallel all-reduces plus a fixed per-step overhead."""

from __future__ import annotations

from dsd.perf.base import Deployment
from dsd.perf.bound import BoundPredictor
from dsd.perf.memory import kv_capacity_tokens
from dsd.perf.registry import register_predictor

__all__ = ["RooflinePredictor", "RooflineStep", "kv_capacity_tokens"]


class RooflineStep:
    """Roofline costs of one deployment folded into per-unit constants (seconds).

    compute = FLOPs / (tp * peak * compute_eff), FLOPs = 2 * params * q + 4 * L * H * d * pairs
    memory  = (weights + KV read + KV write) / (tp * bandwidth * mem_eff)
    comm    = 2 all-reduces per layer, ring: 2 (tp-1)/tp * q * hidden * bytes / bus bandwidth
    """

    __slots__ = (
        "_flop_s_per_token",
        "_flop_s_per_pair",
        "_weights_s",
        "_kv_s_per_token",
        "_comm_s_per_token",
        "_fixed_s",
        "hw",
    )

    def __init__(self, hw: Deployment) -> None:
        gpu, model, tp = hw.gpu, hw.model, hw.tp
        dtype = hw.dtype_bytes
        assert dtype is not None  # resolved by Deployment
        flops = tp * gpu.effective_flops
        bandwidth = tp * gpu.effective_bw
        self.hw = hw
        self._flop_s_per_token = 2.0 * model.forward_params / flops
        self._flop_s_per_pair = 4.0 * model.layers * model.heads * model.head_dim / flops
        self._weights_s = model.forward_params * dtype / bandwidth
        self._kv_s_per_token = hw.kv_bytes_per_token / bandwidth
        allreduces = 2 * model.layers if tp > 1 else 0
        ring = 2.0 * (tp - 1) / tp
        self._comm_s_per_token = (
            allreduces * ring * model.hidden * dtype / (gpu.interconnect_gbps * 1e9)
        )
        self._fixed_s = allreduces * gpu.allreduce_latency_us * 1e-6 + gpu.step_overhead_ms * 1e-3

    def step_s(
        self, num_seqs: int, query_tokens: int, context_tokens: int, attn_pairs: int,
        max_kv: int = 0,
    ) -> float:
        compute = self._flop_s_per_token * query_tokens + self._flop_s_per_pair * attn_pairs
        memory = self._weights_s + self._kv_s_per_token * (context_tokens + query_tokens)
        return (
            (compute if compute > memory else memory)
            + self._comm_s_per_token * query_tokens
            + self._fixed_s
        )


    def breakdown(self, num_seqs: int, query_tokens: int, context_tokens: int,
                  attn_pairs: int, max_kv: int = 0) -> dict[str, float]:
        """Seconds per part, summing to `step_s`. The roofline takes one max over the whole
        forward, so `linear` is that max without attention and `attention` what attention
        adds to it; the LM head is inside `linear` (its weights are in forward_params)."""
        linear = max(self._flop_s_per_token * query_tokens,
                     self._weights_s + self._kv_s_per_token * query_tokens)
        total = self.step_s(num_seqs, query_tokens, context_tokens, attn_pairs)
        comm = self._comm_s_per_token * query_tokens + self._fixed_s - (
            self.hw.gpu.step_overhead_ms * 1e-3)
        overhead = self.hw.gpu.step_overhead_ms * 1e-3
        return {"linear": linear, "head": 0.0,
                "attention": total - linear - comm - overhead, "comm": comm,
                "overhead": overhead}


@register_predictor("roofline")
class RooflinePredictor(BoundPredictor):
    """The reference predictor (dsd's default before the operator-level model): needs only
    catalog specs; sums of the batch only, so a ragged batch costs its mean twin."""

    def _make(self, hw: Deployment) -> RooflineStep:
        return RooflineStep(hw)

"""Operator-level latency: each operator of a decoder layer costs a smooth roofline of its
FLOPs and bytes plus a fixed kernel cost.

The operator set is the one VIDUR profiles per layer (its `mlp.csv`): the two norms, the
QKV projection, rotary embedding, the output projection, the MLP up (gate+up) projection,
its activation, the down projection and the residual add, plus the embedding lookup once
per forward. Everything is one GPU's shard under tensor parallelism `tp`; the all-reduces
between shards are costed separately (`allreduce_s`).

    matmul (M = tokens, K x N weight shard):
        compute = 2 * M_tiled * K * N / matmul_flops      M_tiled: M rounded up to whole
                                                          `tile_tokens` rows once M > tile
        memory  = dtype * (K*N + M*K + M*N) / matmul_bw   weights + activations in and out
        time    = (compute^p + memory^p)^(1/p) + matmul_kernel
    elementwise (norms, rope, activation, add, embedding): always memory-bound
        time    = tokens * bytes_per_token / elementwise_bw + elementwise_kernel

The p-norm is a smooth max: a hard max(compute, memory) is optimistic where the two are
close (the 64-256 token transition), because neither the weight stream nor the tensor
cores run at their peak while the other is busy. Every function here works on floats and
on numpy arrays alike, so the fit (`dsd.perf.fit`) evaluates thousands of profiled points
in one call and the bound step model tabulates single token counts. numpy is imported only
for arrays: a simulation prices single token counts, and `dsd simulate` need not load it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from dsd.catalog.gpu import OpCoefficients
from dsd.catalog.model import ModelSpec

# VIDUR's per-layer operator names (mlp.csv), in its column order; `emb` runs once per
# forward, the others once per layer.
VIDUR_OPS = ("emb", "input_layernorm", "attn_pre_proj", "attn_rope", "attn_post_proj",
             "post_attention_layernorm", "mlp_up_proj", "mlp_act", "mlp_down_proj", "add")
MATMUL_OPS = ("attn_pre_proj", "attn_post_proj", "mlp_up_proj", "mlp_down_proj")
ELEMENTWISE_OPS = tuple(op for op in VIDUR_OPS if op not in MATMUL_OPS)

Number = Any  # a float or a numpy array of floats


@dataclass(frozen=True)
class LayerShape:
    """One GPU's shard of one decoder layer, plus the layer count of the whole model.

    q_width / kv_width: query and key/value heads on this GPU times the head dimension
    (with fewer KV heads than GPUs each GPU holds one replicated KV head, as vLLM does).
    """

    hidden: int
    q_width: float
    kv_width: float
    mlp_width: float  # intermediate size on this GPU (per branch when gated)
    gated: bool
    post_norm: bool  # false for parallel attention+MLP blocks (one norm per layer)
    layers: int
    dtype_bytes: int = 2

    @classmethod
    def of(cls, model: ModelSpec, tp: int = 1, dtype_bytes: int = 2) -> LayerShape:
        return cls.from_heads(model.hidden, model.heads, model.kv_heads, model.head_dim,
                              model.intermediate, model.gated_mlp, not model.parallel_block,
                              model.layers, tp, dtype_bytes)

    @classmethod
    def from_heads(cls, hidden: int, heads: int, kv_heads: int, head_dim: float,
                   intermediate: int, gated: bool, post_norm: bool, layers: int, tp: int,
                   dtype_bytes: int = 2) -> LayerShape:
        return cls(hidden, heads / tp * head_dim, max(1.0, kv_heads / tp) * head_dim,
                   intermediate / tp, gated, post_norm, layers, dtype_bytes)

    def ops(self) -> tuple[str, ...]:
        """The operators this layer runs (no post-attention norm in parallel blocks)."""
        if self.post_norm:
            return VIDUR_OPS
        return tuple(op for op in VIDUR_OPS if op != "post_attention_layernorm")

    def matmul(self, op: str) -> tuple[float, float]:
        """(K, N) of a projection's weight shard."""
        h = self.hidden
        if op == "attn_pre_proj":
            return h, self.q_width + 2 * self.kv_width
        if op == "attn_post_proj":
            return self.q_width, h
        if op == "mlp_up_proj":
            return h, (2 if self.gated else 1) * self.mlp_width
        if op == "mlp_down_proj":
            return self.mlp_width, h
        raise KeyError(op)

    def elementwise_bytes(self, op: str) -> float:
        """Bytes one token moves through an elementwise operator (reads + writes)."""
        h = self.hidden
        elements = {
            "emb": 2 * h,  # read the table row, write the activation
            "input_layernorm": 2 * h,
            "post_attention_layernorm": 2 * h,
            "attn_rope": 2 * (self.q_width + self.kv_width),  # rotate q and k in place
            "mlp_act": (3 if self.gated else 2) * self.mlp_width,  # act(gate) * up
            "add": 3 * h,  # two inputs, one output
        }[op]
        return elements * self.dtype_bytes


def smooth_max(a: Number, b: Number, p: float) -> Number:
    """(a^p + b^p)^(1/p): max(a, b) for p -> inf, a + b at p = 1."""
    return (a**p + b**p) ** (1.0 / p)


def matmul_s(tokens: Number, k: Number, n: Number, c: OpCoefficients,
             dtype_bytes: int = 2) -> Number:
    """Seconds of one (tokens x K) @ (K x N) projection."""
    tile = c.tile_tokens
    if isinstance(tokens, int | float):
        rows = math.ceil(tokens / tile) * tile if tokens > tile else tokens
    else:
        import numpy as np

        rows = np.where(tokens > tile, np.ceil(tokens / tile) * tile, tokens)
    compute = 2.0 * rows * k * n / (c.matmul_tflops * 1e12)
    memory = dtype_bytes * (k * n + tokens * (k + n)) / (c.matmul_gbps * 1e9)
    return smooth_max(compute, memory, c.smoothness) + c.matmul_kernel_us * 1e-6


def elementwise_s(tokens: Number, bytes_per_token: Number, c: OpCoefficients) -> Number:
    """Seconds of one memory-bound elementwise kernel."""
    return tokens * bytes_per_token / (c.elementwise_gbps * 1e9) + c.elementwise_kernel_us * 1e-6


def op_s(op: str, tokens: Number, shape: LayerShape, c: OpCoefficients) -> Number:
    """Seconds of one operator (one layer's worth; `emb` is once per forward)."""
    if op in MATMUL_OPS:
        k, n = shape.matmul(op)
        return matmul_s(tokens, k, n, c, shape.dtype_bytes)
    return elementwise_s(tokens, shape.elementwise_bytes(op), c)


def linear_s(tokens: Number, shape: LayerShape, c: OpCoefficients) -> Number:
    """The VIDUR operator set over a forward of `tokens` tokens: the embedding once plus
    every other operator once per layer (what a measured mlp.csv row sums to)."""
    per_layer = sum(op_s(op, tokens, shape, c) for op in shape.ops() if op != "emb")
    return op_s("emb", tokens, shape, c) + shape.layers * per_layer


def head_s(tokens: Number, model: ModelSpec, tp: int, c: OpCoefficients,
           dtype_bytes: int = 2) -> Number:
    """Final norm and LM head (vocabulary shard) over the positions that need logits;
    outside VIDUR's operator set but part of every real forward."""
    norm = elementwise_s(tokens, 2 * model.hidden * dtype_bytes, c)
    return norm + matmul_s(tokens, model.hidden, model.vocab / tp, c, dtype_bytes)


def allreduce_s(message_bytes: Number, tp: int, c: OpCoefficients) -> Number:
    """One ring all-reduce of `message_bytes` over `tp` GPUs: a fixed cost plus the bytes
    each GPU sends, 2 (tp-1)/tp times the message, at the bus bandwidth."""
    if tp <= 1:
        return 0.0 * message_bytes
    ring = 2.0 * (tp - 1) / tp
    return c.allreduce_us * 1e-6 + ring * message_bytes / (c.allreduce_gbps * 1e9)


def allreduces_per_layer(model: ModelSpec) -> int:
    """Megatron-style tensor parallelism reduces after attention and after the MLP; a
    parallel block sums both branches first and reduces once."""
    return 1 if model.parallel_block else 2

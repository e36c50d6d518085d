"""GpuSpec: one accelerator's performance figures, as the latency predictors consume them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class OpCoefficients:
    """Coefficients of the operator-level latency model (`dsd.perf.ops`), fitted to measured
    operator profiles by `dsd calibrate latency`. A field left None comes from the rule for
    unprofiled GPUs (`dsd.perf.coefficients`), which derives it from the GPU's specs.

    Units: matmul_tflops in 1e12 FLOP/s; *_gbps in 1e9 bytes/s; *_us in microseconds;
    step_overhead_ms in milliseconds. `validated` says the values were fitted to
    measurements of this GPU; `source` says which.
    """

    matmul_tflops: float | None = None  # achieved FLOP/s of large matmuls
    matmul_gbps: float | None = None  # achieved bandwidth streaming weights (and the KV cache)
    elementwise_gbps: float | None = None  # achieved bandwidth of norms, rope, act, add, emb
    smoothness: float | None = None  # p of the smooth roofline (c^p + m^p)^(1/p)
    matmul_kernel_us: float | None = None  # fixed cost of one matmul kernel
    elementwise_kernel_us: float | None = None  # fixed cost of one elementwise kernel
    tile_tokens: int | None = None  # matmul row tile: compute is paid in whole tiles
    allreduce_us: float | None = None  # fixed cost of one all-reduce
    allreduce_gbps: float | None = None  # all-reduce bus bandwidth (NCCL busbw)
    step_overhead_ms: float | None = None  # host cost of one step (schedule, sample, inputs)
    seq_overhead_us: float | None = None  # host cost per sequence in a step
    validated: bool = False
    source: str | None = None

    def given(self) -> dict[str, Any]:
        """The fields this entry sets (None means: from the spec rule)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if getattr(self, f.name) is not None}


@dataclass(frozen=True, slots=True)
class GpuSpec:
    """Peak figures from spec sheets plus achieved-efficiency and overhead estimates.

    Units: tflops in 1e12 FLOP/s (dense bf16/fp16 tensor), memory_gb in 1e9 bytes,
    mem_bw_gbps and interconnect_gbps in 1e9 bytes/s, step_overhead_ms in milliseconds,
    allreduce_latency_us in microseconds. compute_eff, mem_eff, step_overhead_ms and
    allreduce_latency_us feed the reference roofline; `ops` the operator-level model.
    """

    name: str
    tflops: float
    memory_gb: float
    mem_bw_gbps: float
    interconnect_gbps: float
    compute_eff: float
    mem_eff: float
    step_overhead_ms: float
    allreduce_latency_us: float
    dtype_bytes: int = 2  # default weight/KV element size on this device (cpu runs fp32)
    sm_count: int = 108  # streaming multiprocessors (parallel attention blocks in flight)
    ops: OpCoefficients = OpCoefficients()
    aliases: tuple[str, ...] = ()

    @property
    def memory_bytes(self) -> float:
        return self.memory_gb * 1e9

    @property
    def effective_flops(self) -> float:
        """FLOP/s achieved on compute-bound work."""
        return self.tflops * 1e12 * self.compute_eff

    @property
    def effective_bw(self) -> float:
        """Bytes/s achieved on memory-bound work."""
        return self.mem_bw_gbps * 1e9 * self.mem_eff

    @property
    def validated(self) -> bool:
        """Whether the operator-model coefficients were fitted to this GPU's measurements."""
        return self.ops.validated

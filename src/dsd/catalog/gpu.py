"""GpuSpec: one accelerator's performance figures, as the latency predictors consume them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class GpuSpec:
    """Peak figures from spec sheets plus achieved-efficiency and overhead estimates.

    Units: tflops in 1e12 FLOP/s (dense bf16/fp16 tensor), memory_gb in 1e9 bytes,
    mem_bw_gbps and interconnect_gbps in 1e9 bytes/s, step_overhead_ms in milliseconds,
    allreduce_latency_us in microseconds.
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

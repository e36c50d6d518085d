"""Operator-model coefficients for any catalog GPU: fitted ones where a GPU was profiled,
else the rule that derives them from the GPU's spec sheet.

The rule scales spec figures by what the profiled GPUs achieve (A100, H100 and A40: the
means of their fitted coefficients over spec, printed by `dsd calibrate latency`; a test
checks that these constants match the shipped catalog):

    matmul_tflops    = MATMUL_FLOPS_FRAC    * tflops
    matmul_gbps      = MATMUL_BW_FRAC       * mem_bw_gbps
    elementwise_gbps = ELEMENTWISE_BW_FRAC  * mem_bw_gbps
    allreduce_gbps   = ALLREDUCE_BW_FRAC    * interconnect_gbps
    allreduce_us     = ALLREDUCE_LATENCY_SCALE * allreduce_latency_us
    smoothness, kernel costs, tile: the profiled GPUs' means

The host overhead per step is not a GPU property: it is the serving engine's scheduling,
input preparation, sampling and output processing. The default is vLLM's as VIDUR
measured it on an A100 host at tensor parallelism 1 (`cpu_overheads.csv`, VIDUR commit
6d98aa8: schedule + sampler + prepare inputs + process outputs medians, batch 8-128,
fitted as 0.81 ms + 42 us per sequence, 1.1% error: scripts/vidur_cpu_overhead.py).
Engines that overlap this work with the GPU (async scheduling) hide most of it: set
`ops: {step_overhead_ms: 0, seq_overhead_us: 0}` in a catalog overlay to model that.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from dsd.catalog.gpu import GpuSpec, OpCoefficients

# Means over the GPUs fitted in the shipped catalog (A100, H100, A40); see the module doc.
MATMUL_FLOPS_FRAC = 0.744
MATMUL_BW_FRAC = 0.816
ELEMENTWISE_BW_FRAC = 0.618
ALLREDUCE_BW_FRAC = 0.85  # A100 and H100 (A40 has no all-reduce profile)
ALLREDUCE_LATENCY_SCALE = 4.1
SMOOTHNESS = 2.57
MATMUL_KERNEL_US = 5.71
ELEMENTWISE_KERNEL_US = 2.52
TILE_TOKENS = 128
STEP_OVERHEAD_MS = 0.81
SEQ_OVERHEAD_US = 42.0


def spec_rule(gpu: GpuSpec, means: Mapping[str, float] | None = None) -> OpCoefficients:
    """Coefficients derived from `gpu`'s spec sheet alone (unvalidated). `means` replaces
    the shipped constants with other means of `rule_fractions` (the gpu-fidelity
    experiment derives each profiled GPU from the others this way)."""
    m = {"matmul_flops_frac": MATMUL_FLOPS_FRAC, "matmul_bw_frac": MATMUL_BW_FRAC,
         "elementwise_bw_frac": ELEMENTWISE_BW_FRAC, "smoothness": SMOOTHNESS,
         "matmul_kernel_us": MATMUL_KERNEL_US, "elementwise_kernel_us": ELEMENTWISE_KERNEL_US,
         "allreduce_bw_frac": ALLREDUCE_BW_FRAC,
         "allreduce_latency_scale": ALLREDUCE_LATENCY_SCALE, **(means or {})}
    return OpCoefficients(
        matmul_tflops=m["matmul_flops_frac"] * gpu.tflops,
        matmul_gbps=m["matmul_bw_frac"] * gpu.mem_bw_gbps,
        elementwise_gbps=m["elementwise_bw_frac"] * gpu.mem_bw_gbps,
        smoothness=m["smoothness"],
        matmul_kernel_us=m["matmul_kernel_us"],
        elementwise_kernel_us=m["elementwise_kernel_us"],
        tile_tokens=TILE_TOKENS,
        allreduce_us=m["allreduce_latency_scale"] * gpu.allreduce_latency_us,
        allreduce_gbps=m["allreduce_bw_frac"] * gpu.interconnect_gbps,
        step_overhead_ms=STEP_OVERHEAD_MS,
        seq_overhead_us=SEQ_OVERHEAD_US,
        validated=False,
        source="spec rule",
    )


def resolve(gpu: GpuSpec) -> OpCoefficients:
    """Every coefficient set: the catalog's `ops` fields, the spec rule for the rest."""
    given = gpu.ops.given()
    if "source" not in given and set(given) - {"validated"}:  # some values set by hand
        given["source"] = "catalog" if gpu.ops.validated else "catalog + spec rule"
    return dataclasses.replace(spec_rule(gpu), **given)


def rule_fractions(gpu: GpuSpec, c: OpCoefficients) -> dict[str, float]:
    """What a fitted GPU achieves relative to its spec: the inputs of the rule's means."""
    out = {"matmul_flops_frac": c.matmul_tflops / gpu.tflops,
           "matmul_bw_frac": c.matmul_gbps / gpu.mem_bw_gbps,
           "elementwise_bw_frac": c.elementwise_gbps / gpu.mem_bw_gbps,
           "smoothness": c.smoothness, "matmul_kernel_us": c.matmul_kernel_us,
           "elementwise_kernel_us": c.elementwise_kernel_us}
    if c.allreduce_gbps is not None and c.allreduce_us is not None:
        out["allreduce_bw_frac"] = c.allreduce_gbps / gpu.interconnect_gbps
        out["allreduce_latency_scale"] = c.allreduce_us / gpu.allreduce_latency_us
    return out

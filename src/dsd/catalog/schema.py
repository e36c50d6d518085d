"""Validation of raw catalog entries (package YAML or user files) into GpuSpec / ModelSpec."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from msgspec import Meta, field

from dsd.catalog.gpu import GpuSpec, OpCoefficients
from dsd.catalog.model import ModelSpec
from dsd.config.validation import (
    NonNegative,
    Positive,
    PositiveInt,
    Strict,
    convert,
    required_fields,
    to_builtins,
)
from dsd.errors import ConfigError

Kind = Literal["gpus", "models"]
Efficiency = Annotated[float, Meta(gt=0, le=1)]


class OpsEntry(Strict, kw_only=True):
    """Operator-model coefficients (all optional: missing ones follow the spec rule)."""

    matmul_tflops: Positive | None = None
    matmul_gbps: Positive | None = None
    elementwise_gbps: Positive | None = None
    smoothness: Annotated[float, Meta(ge=1, le=50)] | None = None
    matmul_kernel_us: NonNegative | None = None
    elementwise_kernel_us: NonNegative | None = None
    tile_tokens: PositiveInt | None = None
    allreduce_us: NonNegative | None = None
    allreduce_gbps: Positive | None = None
    step_overhead_ms: NonNegative | None = None
    seq_overhead_us: NonNegative | None = None
    validated: bool = False
    source: str | None = None


class GpuEntry(Strict, kw_only=True):
    aliases: tuple[str, ...] = ()
    tflops: Positive
    memory_gb: Positive
    mem_bw_gbps: Positive
    interconnect_gbps: Positive
    compute_eff: Efficiency
    mem_eff: Efficiency
    step_overhead_ms: NonNegative
    allreduce_latency_us: NonNegative
    dtype_bytes: Literal[1, 2, 4] = 2
    sm_count: PositiveInt = 108
    ops: OpsEntry = field(default_factory=OpsEntry)


class ModelEntry(Strict, kw_only=True):
    aliases: tuple[str, ...] = ()
    family: Annotated[str, Meta(min_length=1)]
    params_b: Positive
    layers: PositiveInt
    hidden: PositiveInt
    heads: PositiveInt
    kv_heads: PositiveInt
    head_dim: PositiveInt
    intermediate: PositiveInt
    vocab: PositiveInt
    tied_embeddings: bool = False
    gated_mlp: bool = True
    parallel_block: bool = False

    def __post_init__(self) -> None:
        if self.heads % self.kv_heads:
            raise ValueError(
                f"heads ({self.heads}) must be a multiple of kv_heads ({self.kv_heads})"
            )


def parse_entry(kind: Kind, name: str, raw: Any, source: str) -> GpuSpec | ModelSpec:
    """Validate one entry; errors name the source file and the entry."""
    where = f"{source}: {kind}.{name}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping of fields, got {type(raw).__name__}")
    schema = GpuEntry if kind == "gpus" else ModelEntry
    missing = [name for name in required_fields(schema) if name not in raw]
    if missing:  # all of them at once: a new entry usually lacks several
        raise ConfigError(f"{where}: missing required field(s): {', '.join(missing)}")
    try:
        entry = convert(raw, schema)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {str(exc).removeprefix('(top level): ')}") from None
    fields = to_builtins(entry)
    fields["aliases"] = tuple(fields["aliases"])
    if kind == "gpus":
        fields["ops"] = OpCoefficients(**fields["ops"])
        return GpuSpec(name=name, **fields)
    return ModelSpec(name=name, **fields)

"""Validation of raw catalog entries (package YAML or user files) into GpuSpec / ModelSpec."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from dsd.catalog.gpu import GpuSpec, OpCoefficients
from dsd.catalog.model import ModelSpec
from dsd.errors import ConfigError

Kind = Literal["gpus", "models"]


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    aliases: tuple[str, ...] = ()


class OpsEntry(BaseModel):
    """Operator-model coefficients (all optional: missing ones follow the spec rule)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    matmul_tflops: float | None = Field(default=None, gt=0)
    matmul_gbps: float | None = Field(default=None, gt=0)
    elementwise_gbps: float | None = Field(default=None, gt=0)
    smoothness: float | None = Field(default=None, ge=1, le=50)
    matmul_kernel_us: float | None = Field(default=None, ge=0)
    elementwise_kernel_us: float | None = Field(default=None, ge=0)
    tile_tokens: int | None = Field(default=None, ge=1)
    allreduce_us: float | None = Field(default=None, ge=0)
    allreduce_gbps: float | None = Field(default=None, gt=0)
    step_overhead_ms: float | None = Field(default=None, ge=0)
    seq_overhead_us: float | None = Field(default=None, ge=0)
    validated: bool = False
    source: str | None = None


class GpuEntry(_Entry):
    tflops: float = Field(gt=0)
    memory_gb: float = Field(gt=0)
    mem_bw_gbps: float = Field(gt=0)
    interconnect_gbps: float = Field(gt=0)
    compute_eff: float = Field(gt=0, le=1)
    mem_eff: float = Field(gt=0, le=1)
    step_overhead_ms: float = Field(ge=0)
    allreduce_latency_us: float = Field(ge=0)
    dtype_bytes: Literal[1, 2, 4] = 2
    sm_count: int = Field(default=108, gt=0)
    ops: OpsEntry = OpsEntry()


class ModelEntry(_Entry):
    family: str = Field(min_length=1)
    params_b: float = Field(gt=0)
    layers: int = Field(gt=0)
    hidden: int = Field(gt=0)
    heads: int = Field(gt=0)
    kv_heads: int = Field(gt=0)
    head_dim: int = Field(gt=0)
    intermediate: int = Field(gt=0)
    vocab: int = Field(gt=0)
    tied_embeddings: bool = False
    gated_mlp: bool = True
    parallel_block: bool = False

    @model_validator(mode="after")
    def _gqa_groups(self) -> ModelEntry:
        if self.heads % self.kv_heads:
            raise ValueError(
                f"heads ({self.heads}) must be a multiple of kv_heads ({self.kv_heads})"
            )
        return self


def _describe(exc: ValidationError) -> str:
    """Pydantic errors as one line: all missing fields, else the first error as 'field: msg'."""
    errors = exc.errors()
    missing = [".".join(map(str, e["loc"])) for e in errors if e["type"] == "missing"]
    if missing:
        return f"missing required field(s): {', '.join(missing)}"
    first = errors[0]
    loc = ".".join(str(p) for p in first["loc"])
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        msg = "unknown field"
    text = f"{loc}: {msg}" if loc else msg
    if len(errors) > 1:
        text += f" (+{len(errors) - 1} more)"
    return text


def parse_entry(kind: Kind, name: str, raw: Any, source: str) -> GpuSpec | ModelSpec:
    """Validate one entry; errors name the source file and the entry."""
    where = f"{source}: {kind}.{name}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping of fields, got {type(raw).__name__}")
    schema = GpuEntry if kind == "gpus" else ModelEntry
    try:
        entry = schema.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{where}: {_describe(exc)}") from None
    fields = entry.model_dump()
    fields["aliases"] = tuple(fields["aliases"])
    if kind == "gpus":
        fields["ops"] = OpCoefficients(**fields["ops"])
        return GpuSpec(name=name, **fields)
    return ModelSpec(name=name, **fields)

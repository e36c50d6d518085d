"""The latency-prediction interface every predictor implements (roofline, profiled tables)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, Protocol, get_args, runtime_checkable

from dsd.catalog.gpu import GpuSpec
from dsd.catalog.model import ModelSpec
from dsd.errors import ConfigError

# The op only labels the shape: every op is one forward pass of `Deployment.model`
# (draft_step = one decode step of a draft model at batch 1).
Op = Literal["prefill", "decode", "verify", "draft_step"]
OPS: tuple[str, ...] = get_args(Op)


@dataclass(frozen=True, slots=True)
class Deployment:
    """A model served on `tp` GPUs of one kind with tensor parallelism.

    `dtype_bytes=None` means the GPU's default (2 for bf16 GPUs, 4 for the fp32 cpu entry);
    it is resolved on construction, so `hw.dtype_bytes` is always an int afterwards.
    """

    gpu: GpuSpec
    model: ModelSpec
    tp: int = 1
    dtype_bytes: int | None = None

    def __post_init__(self) -> None:
        if self.dtype_bytes is None:
            object.__setattr__(self, "dtype_bytes", self.gpu.dtype_bytes)
        if self.dtype_bytes not in (1, 2, 4):
            raise ConfigError(
                f"{self.label}: dtype_bytes must be 1, 2 or 4, got {self.dtype_bytes}"
            )
        if not isinstance(self.tp, int) or self.tp < 1:
            raise ConfigError(f"{self.label}: tp must be a positive integer, got {self.tp!r}")
        if self.model.heads % self.tp:
            raise ConfigError(
                f"{self.label}: tp={self.tp} must divide the model's "
                f"{self.model.heads} attention heads"
            )

    @property
    def label(self) -> str:
        """Human-readable name for error messages, e.g. 'llama-2-70b on 4x A100 (tp=4)'."""
        return f"{self.model.name} on {self.tp}x {self.gpu.name} (tp={self.tp})"

    @property
    def kv_bytes_per_token(self) -> float:
        """KV bytes per token summed over the tp GPUs; with fewer KV heads than GPUs each GPU
        holds a replica of a head, so the total grows."""
        replicas = max(1.0, self.tp / self.model.kv_heads)
        return self.model.kv_bytes_per_token(self.dtype_bytes) * replicas  # type: ignore[arg-type]


@dataclass(slots=True)
class BatchShape:
    """What one forward step processes, summed over the sequences in the batch.

    query_tokens: tokens fed this step (prompt length for prefill, 1 for decode, gamma+1 for
    verify); context_tokens: tokens already in the KV cache before the step; attn_pairs:
    sum of q_i * (ctx_i + q_i), the query-key pairs attention computes.
    """

    num_seqs: int
    query_tokens: int
    context_tokens: int
    attn_pairs: int
    max_kv: int = 0  # longest decode/verify sequence's context + query (0: the mean)

    @classmethod
    def of(cls, pairs: Iterable[tuple[int, int]]) -> BatchShape:
        """Shape of a batch given (query_tokens, context_tokens) per sequence."""
        n = q_sum = ctx_sum = attn = longest = 0
        for q, ctx in pairs:
            n += 1
            q_sum += q
            ctx_sum += ctx
            attn += q * (ctx + q)
            if ctx:  # decode/verify sequences (see StepModel)
                longest = max(longest, ctx + q)
        return cls(n, q_sum, ctx_sum, attn, longest)

    def args(self) -> tuple[int, int, int, int, int]:
        """The positional arguments of `StepModel.step_s`."""
        return (self.num_seqs, self.query_tokens, self.context_tokens, self.attn_pairs,
                self.max_kv)


class StepModel(Protocol):
    """A predictor bound to one deployment: the simulator's hot path (plain floats, no
    allocation), called once per simulated forward step.

    `max_kv` carries what sums cannot: the longest decode/verify sequence's KV length
    after the step (context + query). Batches are ragged (one 8k-token sequence among
    short ones), and decode attention pays for the longest sequence (its block's critical
    path on a GPU, padding in the runtime's padded batches). Prefill sequences do not
    count: their attention also parallelizes over query blocks, and the runtime prefills
    them one by one. 0 means unknown, taken as the mean. A model may ignore it (the
    reference roofline does).
    """

    def step_s(
        self, num_seqs: int, query_tokens: int, context_tokens: int, attn_pairs: int,
        max_kv: int = 0,
    ) -> float:
        """Seconds for one forward step over a batch of this shape."""
        ...


@runtime_checkable
class LatencyPredictor(Protocol):
    """Predicts forward-step latency; implementations register in `dsd.perf.PREDICTORS`."""

    def predict(self, op: Op, shape: BatchShape, hw: Deployment) -> float:
        """Seconds for `op` over `shape` on `hw`; equals `bind(hw).step_s(...)`."""
        ...

    def bind(self, hw: Deployment) -> StepModel:
        """Precompute everything that depends only on the deployment. Raises ConfigError
        when the model does not fit on it."""
        ...

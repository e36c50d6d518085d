"""The scenario schema: what a `dsd simulate` YAML may say. Every struct forbids unknown keys
so a typo is an error that names its field path, not a silently ignored setting.

The schema is msgspec structs rather than pydantic models: validating a scenario is the
first thing every `dsd simulate` does, and pydantic's import and model building cost
~0.15 s of a 0.25 s start-up budget, msgspec's ~0.02 s. `dsd.config.validation` turns
msgspec's errors into dsd's one-line messages. A check in `__post_init__` that concerns one
field says so with a leading "field: " (the message then names `struct.field`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from msgspec import Meta, field

from dsd.config.validation import (
    NonNegative,
    NonNegativeInt,
    Positive,
    PositiveInt,
    Probability,
    Strict,
)
from dsd.policies.mode import Mode

Range = float | tuple[float, float]  # a value, or [low, high] drawn uniformly per device/link


def _check_range(value: Range, name: str, low: float = 0.0) -> None:
    values = value if isinstance(value, tuple) else (value,)
    for v in values:
        if v < low:
            raise ValueError(f"{name}: {name} must be >= {low}, got {v}")
    if isinstance(value, tuple) and value[0] > value[1]:
        raise ValueError(f"{name}: {name} range [{value[0]}, {value[1]}] is reversed")


class LatencySpec(Strict, kw_only=True):
    """Which latency predictor a pool uses: `fitted` (the operator-level model with the
    catalog's per-GPU coefficients, default), `vidur` (VIDUR operator profiles in `path`;
    dsd's shipped subset without one), `table` (a profile measured by `dsd profile`), or
    `roofline` (the reference analytic model)."""

    type: Literal["fitted", "vidur", "table", "roofline"] = "fitted"
    path: str | None = None  # profile file (table) or VIDUR profile folder (vidur)

    def __post_init__(self) -> None:
        if self.type == "table" and not self.path:
            raise ValueError("latency type 'table' needs a 'path' to a measured profile")


class DraftPool(Strict, kw_only=True):
    """`count` edge devices of one kind, each running the draft model."""

    name: str | None = None
    count: PositiveInt
    gpu: str
    model: str
    latency: LatencySpec = field(default_factory=LatencySpec)
    # Host work of one speculation round on the device (event loop, messages, bookkeeping):
    # it occupies the device as drafting does. `dsd experiment sim-vs-real` measures it.
    round_host_ms: NonNegative = 0.0


class TargetPool(Strict, kw_only=True):
    """`count` cloud servers, each with `tp` GPUs serving the target model with tensor
    parallelism. `draft_model` is what fused mode drafts with on the server (default: the
    draft model of the first compatible edge pool)."""

    name: str | None = None
    count: PositiveInt
    gpu: str
    tp: PositiveInt = 1
    model: str
    draft_model: str | None = None
    latency: LatencySpec = field(default_factory=LatencySpec)


class ClusterSpec(Strict, kw_only=True):
    drafts: Annotated[list[DraftPool], Meta(min_length=1)]
    targets: Annotated[list[TargetPool], Meta(min_length=1)]


class NetworkSpec(Strict, kw_only=True):
    """Edge <-> cloud links. Ranges are drawn uniformly per link (device, server)."""

    rtt_ms: Range = 20.0
    jitter_ms: NonNegative = 0.0  # std of the per-message one-way delay noise
    bandwidth_mbps: Positive = 100.0
    loss: Annotated[float, Meta(ge=0, lt=1)] = 0.0  # per-message loss probability
    retransmit_ms: NonNegative = 200.0  # delay added per lost transmission
    bytes_per_token: NonNegativeInt = 4  # payload per token id (ids + draft prob)
    header_bytes: NonNegativeInt = 64
    # One-time cost of opening a session (a new stream or connection), paid by the prompt's
    # message on top of its one-way delay. `dsd experiment sim-vs-real` measures it.
    setup_ms: NonNegative = 0.0

    def __post_init__(self) -> None:
        _check_range(self.rtt_ms, "rtt_ms")


class ArrivalSpec(Strict, kw_only=True):
    """Open loop (poisson, gamma, constant: `rate` in total req/s or `rate_per_device`),
    closed loop (`concurrency` users per device, each thinking `think_time_s` between
    requests), or `trace` replay from a JSONL file."""

    type: Literal["poisson", "gamma", "constant", "closed_loop", "trace"] = "poisson"
    rate: Positive | None = None
    rate_per_device: Positive | None = None
    cv: Positive = 1.0
    concurrency: PositiveInt = 1
    think_time_s: NonNegative = 0.0
    think_dist: Literal["exponential", "constant"] = "exponential"
    path: str | None = None

    def __post_init__(self) -> None:
        if self.type in ("poisson", "gamma", "constant"):
            if (self.rate is None) == (self.rate_per_device is None):
                raise ValueError(f"arrival type {self.type!r} needs exactly one of "
                                 "'rate' or 'rate_per_device'")
        if self.type == "trace" and not self.path:
            raise ValueError("arrival type 'trace' needs 'path'")


class WorkloadSpec(Strict, kw_only=True):
    dataset: str = "gsm8k"
    prompt: dict[str, Any] | None = None  # override, e.g. {p50: 60, p90: 100} or {fixed: 64}
    output: dict[str, Any] | None = None
    arrival: ArrivalSpec = field(default_factory=lambda: ArrivalSpec(rate_per_device=0.5))


class ConfidenceSpec(Strict, kw_only=True):
    """Draft-token confidence (top-1 probability) for early-stopping window policies: Beta
    distributions for tokens the target will accept and for the first rejected one; tokens
    after a rejection are accepted-like with probability `after_accept`."""

    accepted_beta: tuple[float, float] = (6.0, 1.5)
    rejected_beta: tuple[float, float] = (2.0, 3.0)
    after_accept: Probability = 0.5

    def __post_init__(self) -> None:
        for name in ("accepted_beta", "rejected_beta"):
            if min(getattr(self, name)) <= 0:
                raise ValueError(f"{name}: Beta parameters must be > 0")


class AcceptanceSpec(Strict, kw_only=True):
    """Constant `alpha`, or per-position `alphas`; `spread` varies it across sessions;
    `table` entries override it per (draft, target, dataset), then the fitted files in
    `path` (written by `dsd calibrate acceptance`). Default: per-dataset alpha. `replay`
    (a JSON-lines file of request records with `rounds_log`, or the logs inline) makes the
    n-th session accept what the n-th measured request accepted, round by round."""

    alpha: Probability | None = None
    alphas: list[float] | None = None
    spread: NonNegative = 0.0
    table: list[dict[str, Any]] = []
    path: str | list[str] | None = None
    replay: str | list[list[list[int]]] | None = None
    confidence: ConfidenceSpec = field(default_factory=ConfidenceSpec)


class PolicySpec:
    """A registered policy by name, with its parameters as extra keys. In YAML a policy is
    a name (`router: jsq`) or a mapping (`window: {name: static, gamma: 4}`);
    `dsd.config.validation` builds this from either."""

    __slots__ = ("name", "params")

    def __init__(self, name: str, **params: Any) -> None:
        self.name = name
        self.params = params

    @classmethod
    def parse(cls, raw: Any) -> PolicySpec:
        if isinstance(raw, str):
            return cls(raw)
        if not isinstance(raw, dict):
            raise TypeError(f"expected a policy name or a mapping with 'name', got "
                            f"{type(raw).__name__}")
        if not isinstance(raw.get("name"), str):
            raise ValueError("a policy mapping needs a 'name'")
        return cls(**raw)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, **self.params}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PolicySpec) and self.as_dict() == other.as_dict()

    def __repr__(self) -> str:
        return f"PolicySpec({self.as_dict()!r})"


def _policy(default: str, **params: Any) -> Any:
    return field(default_factory=lambda: PolicySpec(default, **params))


class PoliciesSpec(Strict, kw_only=True):
    router: PolicySpec = _policy("jsq")
    batcher: PolicySpec = _policy("fifo", max_batch=32, max_wait_ms=0.0)
    window: PolicySpec = _policy("static", gamma=4)
    mode: PolicySpec = _policy("rtt-load")  # per-device mode selector, used when mode: auto
    admission: PolicySpec = _policy("admit-all")  # accept or reject requests at a server


class EngineSpec(Strict, kw_only=True):
    """The target servers' serving engine, with vLLM's scheduler limits (defaults: vLLM's
    OpenAI server on an A100 or a GPU under 70 GB). Verify batches are further capped by
    the batcher's `max_batch` (`policies.batcher`)."""

    max_num_seqs: PositiveInt = 256  # sequences in one step (decode batch cap)
    max_num_batched_tokens: PositiveInt = 2048  # query tokens in one step
    # Split a prefill that does not fit the step's remaining token budget (vLLM V1, Sarathi);
    # off: it waits for a step with room (alone, it runs whole).
    chunked_prefill: bool = True
    kv_budget_tokens: PositiveInt | None = None  # KV cap below what memory leaves
    # When a step's KV does not fit, the newest session is preempted: `recompute` frees its
    # KV and re-prefills its tokens later; `swap` copies its KV to host memory and back.
    preemption: Literal["recompute", "swap"] = "recompute"
    swap_gbps: Positive = 25.0  # host link per GPU (PCIe 4.0 x16 ~25 GB/s)


class SloSpec(Strict, kw_only=True):
    ttft_ms: Positive = 2000.0
    tpot_ms: Positive = 100.0


class SimulationSpec(Strict, kw_only=True):
    """Arrivals stop at `duration_s` (or after `max_requests`); with `drain` the run goes on
    until every admitted request finishes, else it stops at `duration_s`. Requests that
    arrive before `warmup_s` are served but not measured."""

    duration_s: Positive = 60.0
    warmup_s: NonNegative = 0.0
    max_requests: PositiveInt | None = None
    drain: bool = True
    max_gamma: Annotated[int, Meta(ge=1, le=32)] = 16
    kv_reserve_frac: Annotated[float, Meta(ge=0, lt=1)] = 0.1

    def __post_init__(self) -> None:
        if self.warmup_s >= self.duration_s:
            raise ValueError("warmup_s must be shorter than duration_s")


class ScenarioConfig(Strict, kw_only=True):
    name: str = "scenario"
    seed: int = 0
    mode: Mode | Literal["auto"] = "distributed"  # auto: per request, policies.mode decides
    catalog: list[str] = []  # extra catalog YAML files (GPUs, models)
    cluster: ClusterSpec
    network: NetworkSpec = field(default_factory=NetworkSpec)
    workload: WorkloadSpec = field(default_factory=WorkloadSpec)
    acceptance: AcceptanceSpec = field(default_factory=AcceptanceSpec)
    policies: PoliciesSpec = field(default_factory=PoliciesSpec)
    engine: EngineSpec = field(default_factory=EngineSpec)
    slo: SloSpec = field(default_factory=SloSpec)
    simulation: SimulationSpec = field(default_factory=SimulationSpec)

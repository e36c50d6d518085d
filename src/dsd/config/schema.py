"""The scenario schema: what a `dsd simulate` YAML may say. Every model forbids unknown keys
so a typo is an error that names its field path, not a silently ignored setting."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dsd.policies.mode import Mode


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


Range = float | tuple[float, float]  # a value, or [low, high] drawn uniformly per device/link


def _check_range(value: Range, name: str, low: float = 0.0) -> Range:
    values = value if isinstance(value, tuple) else (value,)
    for v in values:
        if v < low:
            raise ValueError(f"{name} must be >= {low}, got {v}")
    if isinstance(value, tuple) and value[0] > value[1]:
        raise ValueError(f"{name} range [{value[0]}, {value[1]}] is reversed")
    return value


class LatencySpec(Strict):
    """Which latency predictor a pool uses: `fitted` (the operator-level model with the
    catalog's per-GPU coefficients, default), `vidur` (VIDUR operator profiles in `path`;
    dsd's shipped subset without one), `table` (a profile measured by `dsd profile`), or
    `roofline` (the reference analytic model)."""

    type: Literal["fitted", "vidur", "table", "roofline"] = "fitted"
    path: str | None = None  # profile file (table) or VIDUR profile folder (vidur)

    @model_validator(mode="after")
    def _table_needs_path(self) -> LatencySpec:
        if self.type == "table" and not self.path:
            raise ValueError("latency type 'table' needs a 'path' to a measured profile")
        return self


class DraftPool(Strict):
    """`count` edge devices of one kind, each running the draft model."""

    name: str | None = None
    count: int = Field(ge=1)
    gpu: str
    model: str
    latency: LatencySpec = LatencySpec()
    # Host work of one speculation round on the device (event loop, messages, bookkeeping):
    # it occupies the device as drafting does. `dsd experiment sim-vs-real` measures it.
    round_host_ms: float = Field(default=0.0, ge=0)


class TargetPool(Strict):
    """`count` cloud servers, each with `tp` GPUs serving the target model with tensor
    parallelism. `draft_model` is what fused mode drafts with on the server (default: the
    draft model of the first compatible edge pool)."""

    name: str | None = None
    count: int = Field(ge=1)
    gpu: str
    tp: int = Field(default=1, ge=1)
    model: str
    draft_model: str | None = None
    latency: LatencySpec = LatencySpec()


class ClusterSpec(Strict):
    drafts: list[DraftPool] = Field(min_length=1)
    targets: list[TargetPool] = Field(min_length=1)


class NetworkSpec(Strict):
    """Edge <-> cloud links. Ranges are drawn uniformly per link (device, server)."""

    rtt_ms: Range = 20.0
    jitter_ms: float = Field(default=0.0, ge=0)  # std of the per-message one-way delay noise
    bandwidth_mbps: float = Field(default=100.0, gt=0)
    loss: float = Field(default=0.0, ge=0, lt=1)  # per-message loss probability
    retransmit_ms: float = Field(default=200.0, ge=0)  # delay added per lost transmission
    bytes_per_token: int = Field(default=4, ge=0)  # payload per token id (ids + draft prob)
    header_bytes: int = Field(default=64, ge=0)
    # One-time cost of opening a session (a new stream or connection), paid by the prompt's
    # message on top of its one-way delay. `dsd experiment sim-vs-real` measures it.
    setup_ms: float = Field(default=0.0, ge=0)

    @field_validator("rtt_ms")
    @classmethod
    def _rtt(cls, v: Range) -> Range:
        return _check_range(v, "rtt_ms")


class ArrivalSpec(Strict):
    """Open loop (poisson, gamma, constant: `rate` in total req/s or `rate_per_device`),
    closed loop (`concurrency` users per device, each thinking `think_time_s` between
    requests), or `trace` replay from a JSONL file."""

    type: Literal["poisson", "gamma", "constant", "closed_loop", "trace"] = "poisson"
    rate: float | None = Field(default=None, gt=0)
    rate_per_device: float | None = Field(default=None, gt=0)
    cv: float = Field(default=1.0, gt=0)
    concurrency: int = Field(default=1, ge=1)
    think_time_s: float = Field(default=0.0, ge=0)
    think_dist: Literal["exponential", "constant"] = "exponential"
    path: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ArrivalSpec:
        if self.type in ("poisson", "gamma", "constant"):
            if (self.rate is None) == (self.rate_per_device is None):
                raise ValueError(f"arrival type {self.type!r} needs exactly one of "
                                 "'rate' or 'rate_per_device'")
        if self.type == "trace" and not self.path:
            raise ValueError("arrival type 'trace' needs 'path'")
        return self


class WorkloadSpec(Strict):
    dataset: str = "gsm8k"
    prompt: dict[str, Any] | None = None  # override, e.g. {p50: 60, p90: 100} or {fixed: 64}
    output: dict[str, Any] | None = None
    arrival: ArrivalSpec = ArrivalSpec(rate_per_device=0.5)


class ConfidenceSpec(Strict):
    """Draft-token confidence (top-1 probability) for early-stopping window policies: Beta
    distributions for tokens the target will accept and for the first rejected one; tokens
    after a rejection are accepted-like with probability `after_accept`."""

    accepted_beta: tuple[float, float] = (6.0, 1.5)
    rejected_beta: tuple[float, float] = (2.0, 3.0)
    after_accept: float = Field(default=0.5, ge=0, le=1)

    @field_validator("accepted_beta", "rejected_beta")
    @classmethod
    def _positive(cls, v: tuple[float, float]) -> tuple[float, float]:
        if min(v) <= 0:
            raise ValueError("Beta parameters must be > 0")
        return v


class AcceptanceSpec(Strict):
    """Constant `alpha`, or per-position `alphas`; `spread` varies it across sessions;
    `table` entries override it per (draft, target, dataset), then the fitted files in
    `path` (written by `dsd calibrate acceptance`). Default: per-dataset alpha. `replay`
    (a JSON-lines file of request records with `rounds_log`, or the logs inline) makes the
    n-th session accept what the n-th measured request accepted, round by round."""

    alpha: float | None = Field(default=None, ge=0, le=1)
    alphas: list[float] | None = None
    spread: float = Field(default=0.0, ge=0)
    table: list[dict[str, Any]] = []
    path: str | list[str] | None = None
    replay: str | list[list[list[int]]] | None = None
    confidence: ConfidenceSpec = Field(default_factory=lambda: ConfidenceSpec())


class PolicySpec(BaseModel):
    """A registered policy by name, with its parameters as extra keys."""

    model_config = ConfigDict(extra="allow")
    name: str

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


def _policy(default: str, **params: Any) -> Any:
    return Field(default_factory=lambda: PolicySpec(name=default, **params))


class PoliciesSpec(Strict):
    router: PolicySpec = _policy("jsq")
    batcher: PolicySpec = _policy("fifo", max_batch=32, max_wait_ms=0.0)
    window: PolicySpec = _policy("static", gamma=4)
    mode: PolicySpec = _policy("rtt-load")  # per-device mode selector, used when mode: auto
    admission: PolicySpec = _policy("admit-all")  # accept or reject requests at a server

    @field_validator("router", "batcher", "window", "mode", "admission", mode="before")
    @classmethod
    def _name_only(cls, v: Any) -> Any:
        return {"name": v} if isinstance(v, str) else v


class EngineSpec(Strict):
    """The target servers' serving engine, with vLLM's scheduler limits (defaults: vLLM's
    OpenAI server on an A100 or a GPU under 70 GB). Verify batches are further capped by
    the batcher's `max_batch` (`policies.batcher`)."""

    max_num_seqs: int = Field(default=256, ge=1)  # sequences in one step (decode batch cap)
    max_num_batched_tokens: int = Field(default=2048, ge=1)  # query tokens in one step
    # Split a prefill that does not fit the step's remaining token budget (vLLM V1, Sarathi);
    # off: it waits for a step with room (alone, it runs whole).
    chunked_prefill: bool = True
    kv_budget_tokens: int | None = Field(default=None, ge=1)  # KV cap below what memory leaves
    # When a step's KV does not fit, the newest session is preempted: `recompute` frees its
    # KV and re-prefills its tokens later; `swap` copies its KV to host memory and back.
    preemption: Literal["recompute", "swap"] = "recompute"
    swap_gbps: float = Field(default=25.0, gt=0)  # host link per GPU (PCIe 4.0 x16 ~25 GB/s)


class SloSpec(Strict):
    ttft_ms: float = Field(default=2000.0, gt=0)
    tpot_ms: float = Field(default=100.0, gt=0)


class SimulationSpec(Strict):
    """Arrivals stop at `duration_s` (or after `max_requests`); with `drain` the run goes on
    until every admitted request finishes, else it stops at `duration_s`. Requests that
    arrive before `warmup_s` are served but not measured."""

    duration_s: float = Field(default=60.0, gt=0)
    warmup_s: float = Field(default=0.0, ge=0)
    max_requests: int | None = Field(default=None, ge=1)
    drain: bool = True
    max_gamma: int = Field(default=16, ge=1, le=32)
    kv_reserve_frac: float = Field(default=0.1, ge=0, lt=1)

    @model_validator(mode="after")
    def _warmup(self) -> SimulationSpec:
        if self.warmup_s >= self.duration_s:
            raise ValueError("warmup_s must be shorter than duration_s")
        return self


class ScenarioConfig(Strict):
    name: str = "scenario"
    seed: int = 0
    mode: Mode | Literal["auto"] = "distributed"  # auto: per request, policies.mode decides
    catalog: list[str] = []  # extra catalog YAML files (GPUs, models)
    cluster: ClusterSpec
    network: NetworkSpec = NetworkSpec()
    workload: WorkloadSpec = WorkloadSpec()
    acceptance: AcceptanceSpec = AcceptanceSpec()
    policies: PoliciesSpec = PoliciesSpec()
    engine: EngineSpec = EngineSpec()
    slo: SloSpec = SloSpec()
    simulation: SimulationSpec = SimulationSpec()

    @field_validator("mode", mode="before")
    @classmethod
    def _mode_alias(cls, v: Any) -> Any:
        return v.replace("-", "_") if isinstance(v, str) else v

"""Workloads: token-length profiles, arrival processes, and request traces (JSONL)."""

from dsd.workload.arrivals import (
    ArrivalProcess,
    ConstantArrivals,
    GammaArrivals,
    PoissonArrivals,
    ThinkTime,
    make_arrivals,
)
from dsd.workload.datasets import DatasetItem, iter_dataset
from dsd.workload.lengths import (
    ALIASES,
    PROFILES,
    LengthDist,
    LengthProfile,
    canonical_name,
    length_profile,
    parse_length_dist,
)
from dsd.workload.tokens import approx_tokens, make_token_counter
from dsd.workload.trace import (
    TraceRecord,
    build_trace,
    load_prompts,
    read_trace,
    write_trace,
)

__all__ = [
    "ALIASES",
    "PROFILES",
    "ArrivalProcess",
    "ConstantArrivals",
    "DatasetItem",
    "GammaArrivals",
    "LengthDist",
    "LengthProfile",
    "PoissonArrivals",
    "ThinkTime",
    "TraceRecord",
    "approx_tokens",
    "build_trace",
    "canonical_name",
    "iter_dataset",
    "length_profile",
    "load_prompts",
    "make_arrivals",
    "make_token_counter",
    "parse_length_dist",
    "read_trace",
    "write_trace",
]

"""Scenario configuration: schema, loading with overrides, clear errors."""

from dsd.config.load import apply_override, dump_config, load_config, read_yaml
from dsd.config.schema import (
    AcceptanceSpec,
    ArrivalSpec,
    ClusterSpec,
    DraftPool,
    EngineSpec,
    LatencySpec,
    NetworkSpec,
    PoliciesSpec,
    PolicySpec,
    ScenarioConfig,
    SimulationSpec,
    SloSpec,
    TargetPool,
    WorkloadSpec,
)
from dsd.config.validation import to_builtins

__all__ = [
    "apply_override", "dump_config", "load_config", "read_yaml", "to_builtins",
    "AcceptanceSpec", "ArrivalSpec", "ClusterSpec", "DraftPool", "EngineSpec", "LatencySpec",
    "NetworkSpec", "PoliciesSpec", "PolicySpec", "ScenarioConfig", "SimulationSpec", "SloSpec",
    "TargetPool", "WorkloadSpec",
]

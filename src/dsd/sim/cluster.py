"""Expand a validated scenario into simulated devices, servers, links and policies."""

from __future__ import annotations

import random
import warnings
from dataclasses import dataclass
from typing import Any

from dsd.acceptance import AcceptanceModel, fitted_table, resolve_acceptance
from dsd.acceptance.replay import ReplayAcceptance, load_round_logs
from dsd.catalog import load_catalog
from dsd.config import ScenarioConfig, to_builtins
from dsd.errors import ConfigError
from dsd.perf import Deployment, kv_capacity_tokens, make_predictor
from dsd.policies import (
    ADMISSION,
    BATCHERS,
    MODE_SELECTORS,
    ROUTERS,
    WINDOWS,
    ModeSelector,
    Router,
    UnknownPolicyError,
    WindowFactory,
)
from dsd.policies.admission import AdmissionPolicy
from dsd.sim.arrivals import make_driver
from dsd.sim.confidence import DraftConfidence
from dsd.sim.entities import DraftDevice, Network, TargetServer

RNG_STREAMS = ("workload", "network", "acceptance", "session", "routing", "confidence")


def rng_streams(seed: int) -> dict[str, random.Random]:
    """Independent, reproducible random streams per concern, so that changing a policy or a
    mode does not change the workload a run sees."""
    return {name: random.Random(f"dsd:{seed}:{name}") for name in RNG_STREAMS}


@dataclass
class Cluster:
    config: ScenarioConfig
    devices: list[DraftDevice]
    servers: list[TargetServer]
    network: Network
    acceptance: dict[tuple[int, int], AcceptanceModel | ReplayAcceptance]
    router: Router
    window_factory: WindowFactory
    arrivals: Any
    rngs: dict[str, random.Random]
    # One selector per edge device for `mode: auto` (each keeps its device's hysteresis).
    mode_selectors: list[ModeSelector] | None = None
    confidence: DraftConfidence | None = None  # for early-stopping window policies
    admission: AdmissionPolicy | None = None  # None: admit every request


def build_cluster(config: ScenarioConfig) -> Cluster:
    catalog = load_catalog(config.catalog)
    rngs = rng_streams(config.seed)
    policies = config.policies
    servers: list[TargetServer] = []
    target_families: list[str] = []
    for p, pool in enumerate(config.cluster.targets):
        where = f"cluster.targets[{p}]"
        model = catalog.model(pool.model)
        draft_name = pool.draft_model or _default_draft(config, catalog, model.family)
        try:
            predictor = make_predictor(to_builtins(pool.latency))
            hw = Deployment(catalog.gpu(pool.gpu), model, pool.tp)
            step = predictor.bind(hw)
            draft_hw = Deployment(catalog.gpu(pool.gpu), catalog.model(draft_name))
            draft_step = _bind_fused_draft(predictor, draft_hw, where)
            kv_capacity = kv_capacity_tokens(hw, config.simulation.kv_reserve_frac)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        target_families.append(model.family)
        for _ in range(pool.count):
            batcher = BATCHERS.create(policies.batcher.name, **policies.batcher.params)
            if hasattr(batcher, "bind"):  # e.g. the SLO batcher fits its time estimator
                batcher.bind(step)
            servers.append(TargetServer(len(servers), p, step, draft_step, batcher, kv_capacity,
                                        config.engine, hw.kv_bytes_per_token, pool.tp))

    devices: list[DraftDevice] = []
    for p, pool in enumerate(config.cluster.drafts):
        where = f"cluster.drafts[{p}]"
        model = catalog.model(pool.model)
        try:
            step = make_predictor(to_builtins(pool.latency)).bind(
                Deployment(catalog.gpu(pool.gpu), model))
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        targets = [s for s in servers if target_families[s.pool] == model.family]
        for _ in range(pool.count):
            devices.append(DraftDevice(len(devices), p, step, targets,
                                       pool.round_host_ms / 1000.0))

    net_cfg = config.network
    low, high = (net_cfg.rtt_ms if isinstance(net_cfg.rtt_ms, tuple)
                 else (net_cfg.rtt_ms, net_cfg.rtt_ms))
    uniform = rngs["network"].uniform
    rtt = [uniform(low, high) / 1000.0 for _ in range(len(devices) * len(servers))]
    network = Network(rtt, len(servers), net_cfg.jitter_ms / 1000.0, net_cfg.bandwidth_mbps,
                      net_cfg.loss, net_cfg.retransmit_ms / 1000.0, net_cfg.header_bytes,
                      net_cfg.bytes_per_token, rngs["network"], net_cfg.setup_ms / 1000.0)

    dataset = config.workload.dataset
    spec = to_builtins(config.acceptance, drop_none=True)
    if "path" in spec:  # fitted files act as table entries after the inline ones
        spec["table"] = [*spec.get("table", []), *fitted_table(spec.pop("path"))]
    replay = spec.pop("replay", None)
    logs = load_round_logs(replay) if replay is not None else None
    acceptance: dict[tuple[int, int], AcceptanceModel | ReplayAcceptance] = {}
    for d, dpool in enumerate(config.cluster.drafts):
        for t, tpool in enumerate(config.cluster.targets):
            acceptance[d, t] = resolve_acceptance(spec, catalog.model(dpool.model).name,
                                                  catalog.model(tpool.model).name, dataset)
            if logs is not None:
                acceptance[d, t] = ReplayAcceptance(logs, acceptance[d, t])

    router = ROUTERS.create(policies.router.name, seed=rngs["routing"].randrange(2**31),
                            **policies.router.params)
    window = WINDOWS.create(policies.window.name, **policies.window.params)
    arrivals = make_driver(config, devices, rngs["workload"])
    selectors = None
    if config.mode == "auto":
        try:
            selectors = [MODE_SELECTORS.create(policies.mode.name, **policies.mode.params)
                         for _ in devices]
        except (UnknownPolicyError, ValueError) as exc:
            raise ConfigError(f"policies.mode: {exc}") from None
    admission = ADMISSION.create(policies.admission.name, **policies.admission.params)
    conf = config.acceptance.confidence
    confidence = DraftConfidence(conf.accepted_beta, conf.rejected_beta, conf.after_accept,
                                 rngs["confidence"])
    return Cluster(config, devices, servers, network, acceptance, router, window, arrivals, rngs,
                   selectors, confidence,
                   None if getattr(admission, "admits_all", False) else admission)


def _bind_fused_draft(predictor: Any, hw: Deployment, where: str) -> Any:
    """The step model of fused-mode drafting on a server. A measured predictor (table,
    vidur) need not cover the draft model; the default model stands in, with a warning."""
    try:
        return predictor.bind(hw)
    except ConfigError as exc:
        fallback = make_predictor()
        if isinstance(predictor, type(fallback)):
            raise
        warnings.warn(f"{where}: fused drafting with {hw.model.name} uses the default "
                      f"latency model ({exc})", RuntimeWarning, stacklevel=3)
        return fallback.bind(hw)


def _default_draft(config: ScenarioConfig, catalog: Any, family: str) -> str:
    """Fused mode drafts on the server with the first edge draft model of the same family."""
    for pool in config.cluster.drafts:
        if catalog.model(pool.model).family == family:
            return pool.model
    return config.cluster.drafts[0].model

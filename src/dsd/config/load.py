"""Load a scenario: YAML -> `--set` overrides -> schema -> semantic checks.

Every failure is a `ConfigError` whose one line names the field path, e.g.
`cluster.drafts[0].gpu: unknown GPU 'A41' (known: A100, ...)`.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from dsd.config.schema import PolicySpec, ScenarioConfig
from dsd.config.validation import convert, to_builtins
from dsd.errors import ConfigError

UNKNOWN_KEY_HINT = " (check the spelling; see examples/ for valid keys)"


# libyaml's loader when PyYAML has it: several times faster on the files every run reads.
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        data = yaml.load(path.read_text(), Loader=YAML_LOADER)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder; give a scenario YAML file, e.g. "
                          "examples/quickstart.yaml") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read ({getattr(exc, 'strerror', None) or exc})"
                          ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}{where}: invalid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a scenario must be a YAML mapping")
    return data


def apply_override(data: dict[str, Any], assignment: str) -> None:
    """Apply one `dotted.path=value` (value parsed as YAML; list items by index)."""
    if "=" not in assignment:
        raise ConfigError(f"--set {assignment!r}: expected dotted.path=value")
    path, raw = assignment.split("=", 1)
    keys = path.strip().split(".")
    value = yaml.safe_load(raw) if raw.strip() else ""
    if _switches_policy(data, keys, value):
        _switch_policy(data["policies"], keys[1], value)
        return
    node: Any = data
    for i, key in enumerate(keys):
        last = i == len(keys) - 1
        where = ".".join(keys[: i + 1])
        if isinstance(node, list):
            if not key.isdigit() or int(key) >= len(node):
                raise ConfigError(f"--set {path}: {where} is not a valid list index")
            if last:
                node[int(key)] = value
            else:
                node = node[int(key)]
        elif isinstance(node, dict):
            if last:
                node[key] = value
            else:
                node = node.setdefault(key, {})
        else:
            raise ConfigError(f"--set {path}: {'.'.join(keys[:i])} is not a mapping or list")


def _switches_policy(data: dict[str, Any], keys: list[str], value: Any) -> bool:
    """`--set policies.FAMILY.name=NEW` where the config names another policy there."""
    if len(keys) != 3 or keys[0] != "policies" or keys[2] != "name":
        return False
    policies = data.get("policies")
    if not isinstance(policies, dict):
        return False
    current = policies.get(keys[1])
    name = current.get("name") if isinstance(current, dict) else current
    return name is not None and name != value


def _switch_policy(policies: dict[str, Any], family: str, name: str) -> None:
    """Name another policy, keeping only the parameters it takes (`gamma` of a static window
    means nothing to `awc`; `max_batch` means the same to every batcher)."""
    from dsd.policies import BATCHERS, MODE_SELECTORS, ROUTERS, WINDOWS

    registry = {"router": ROUTERS, "batcher": BATCHERS, "window": WINDOWS,
                "mode": MODE_SELECTORS}.get(family)
    current = policies[family]
    params = {k: v for k, v in current.items() if k != "name"} if isinstance(current, dict) \
        else {}
    takes = registry.parameters(name) if registry is not None else None
    policies[family] = {"name": name, **{k: v for k, v in params.items()
                                          if takes is None or k in takes}}


def load_config(
    source: str | Path | dict[str, Any] | ScenarioConfig,
    overrides: list[str] | tuple[str, ...] = (),
    seed: int | None = None,
) -> ScenarioConfig:
    """Validated scenario from a YAML path, a dict or a config, with overrides applied."""
    if isinstance(source, ScenarioConfig):
        data = to_builtins(source)
        base_dir = Path.cwd()
    elif isinstance(source, dict):
        data, base_dir = copy.deepcopy(source), Path.cwd()
    else:
        data, base_dir = read_yaml(source), Path(source).resolve().parent
    for assignment in overrides:
        apply_override(data, assignment)
    if seed is not None:
        data["seed"] = seed
    if isinstance(data.get("mode"), str):  # `cloud-only` reads as `cloud_only`
        data["mode"] = data["mode"].replace("-", "_")
    try:
        config = convert(data, ScenarioConfig)
    except ConfigError as exc:
        hint = UNKNOWN_KEY_HINT if str(exc).endswith(": unknown key") else ""
        raise ConfigError(f"{exc}{hint}") from None
    _resolve_paths(config, base_dir)
    check_semantics(config)
    return config


def _resolve_paths(config: ScenarioConfig, base_dir: Path) -> None:
    """Relative file paths in a config are relative to the config file."""

    def fix(p: str | None) -> str | None:
        if p is None or Path(p).is_absolute():
            return p
        candidate = base_dir / p
        return str(candidate) if candidate.exists() or not Path(p).exists() else p

    config.catalog = [fix(p) or p for p in config.catalog]
    config.workload.arrival.path = fix(config.workload.arrival.path)
    fitted = config.acceptance.path
    if fitted is not None:
        config.acceptance.path = (fix(fitted) if isinstance(fitted, str)
                                  else [fix(p) or p for p in fitted])
    for pool in [*config.cluster.drafts, *config.cluster.targets]:
        pool.latency.path = fix(pool.latency.path)


def check_semantics(config: ScenarioConfig) -> None:
    """Checks that need the catalog and the policy registries."""
    from dsd.catalog import load_catalog
    from dsd.policies import ADMISSION, BATCHERS, ROUTERS, WINDOWS, UnknownPolicyError
    from dsd.workload import length_profile

    try:
        catalog = load_catalog(config.catalog)
    except ConfigError as exc:
        raise ConfigError(f"catalog: {exc}") from None

    def lookup(kind: str, name: str, where: str) -> Any:
        try:
            return catalog.gpu(name) if kind == "gpu" else catalog.model(name)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None

    draft_families = {}
    for i, pool in enumerate(config.cluster.drafts):
        lookup("gpu", pool.gpu, f"cluster.drafts[{i}].gpu")
        draft_families[i] = lookup("model", pool.model, f"cluster.drafts[{i}].model").family
    target_families = set()
    for i, pool in enumerate(config.cluster.targets):
        lookup("gpu", pool.gpu, f"cluster.targets[{i}].gpu")
        target_families.add(lookup("model", pool.model, f"cluster.targets[{i}].model").family)
        if pool.draft_model:
            lookup("model", pool.draft_model, f"cluster.targets[{i}].draft_model")
    for i, family in draft_families.items():
        if family not in target_families:
            raise ConfigError(
                f"cluster.drafts[{i}].model: no target pool serves a model of tokenizer family "
                f"{family!r}; drafts and targets must share a tokenizer"
            )
    policies = (("router", ROUTERS), ("batcher", BATCHERS), ("window", WINDOWS),
                ("admission", ADMISSION))
    for field, registry in policies:
        spec: PolicySpec = getattr(config.policies, field)
        try:
            registry.create(spec.name, **spec.params)
        except (UnknownPolicyError, ValueError) as exc:
            raise ConfigError(f"policies.{field}: {exc}") from None
    try:
        length_profile(config.workload.dataset, config.workload.prompt, config.workload.output)
    except ConfigError as exc:
        raise ConfigError(f"workload: {exc}") from None
    arrival = config.workload.arrival
    fitted = config.acceptance.path
    for p in [fitted] if isinstance(fitted, str) else fitted or []:
        if not Path(p).is_file():
            raise ConfigError(f"acceptance.path: fitted acceptance file {p!r} not found")
    if arrival.type == "trace":
        _check_trace(arrival.path)
    gamma = config.policies.window.params.get("gamma")
    if isinstance(gamma, int) and gamma > config.simulation.max_gamma:
        raise ConfigError(f"policies.window.gamma: {gamma} exceeds simulation.max_gamma "
                          f"({config.simulation.max_gamma})")
    window = config.simulation.max_gamma + 1
    if config.engine.max_num_batched_tokens < window:
        raise ConfigError(f"engine.max_num_batched_tokens: {config.engine.max_num_batched_tokens}"
                          f" cannot hold one verify of simulation.max_gamma + 1 = {window} "
                          "tokens")


def _check_trace(path: str | None) -> None:
    """The trace exists and has a first valid record (an empty trace simulates nothing)."""
    from dsd.errors import DataError
    from dsd.workload import read_trace

    if not Path(path or "").is_file():
        raise ConfigError(f"workload.arrival.path: trace file {path!r} not found")
    try:
        first = next(read_trace(path), None)  # type: ignore[arg-type]
    except DataError as exc:
        raise ConfigError(f"workload.arrival.path: {exc}") from None
    if first is None:
        raise ConfigError(f"workload.arrival.path: trace file {path!r} has no requests")


def dump_config(config: ScenarioConfig) -> str:
    return yaml.safe_dump(to_builtins(config), sort_keys=False)

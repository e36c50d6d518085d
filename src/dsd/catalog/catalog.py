"""The catalog: GPUs and models looked up by name, from package YAML plus user files."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from dsd.catalog.gpu import GpuSpec
from dsd.catalog.model import ModelSpec
from dsd.catalog.schema import Kind, parse_entry
from dsd.config.load import YAML_LOADER
from dsd.errors import ConfigError

_KINDS: tuple[Kind, ...] = ("gpus", "models")
_LABEL = {"gpus": "GPU", "models": "model"}


def _norm(name: str) -> str:
    """Lookup key: case, spaces and underscores do not matter ('Llama_2 70B' == 'llama-2-70b')."""
    return name.strip().lower().replace("_", "-").replace(" ", "-")


class Catalog:
    """An immutable set of GpuSpec and ModelSpec entries; `extend` returns a new catalog."""

    def __init__(self, gpus: Iterable[GpuSpec] = (), models: Iterable[ModelSpec] = ()) -> None:
        self._entries: dict[Kind, dict[str, Any]] = {
            "gpus": {g.name: g for g in gpus},
            "models": {m.name: m for m in models},
        }
        self._index: dict[Kind, dict[str, str]] = {k: self._build_index(k) for k in _KINDS}

    def _build_index(self, kind: Kind) -> dict[str, str]:
        index: dict[str, str] = {}
        for name, spec in self._entries[kind].items():
            for key in (name, *spec.aliases):
                owner = index.setdefault(_norm(key), name)
                if owner != name:
                    raise ConfigError(
                        f"{_LABEL[kind]} name or alias {key!r} is used by both "
                        f"{owner!r} and {name!r}; rename one of them"
                    )
        return index

    def _lookup(self, kind: Kind, name: str) -> Any:
        canonical = self._index[kind].get(_norm(str(name)))
        if canonical is None:
            known = ", ".join(sorted(self._entries[kind], key=str.lower))
            raise ConfigError(f"unknown {_LABEL[kind]} {name!r} (known: {known})")
        return self._entries[kind][canonical]

    def gpu(self, name: str) -> GpuSpec:
        return self._lookup("gpus", name)

    def model(self, name: str) -> ModelSpec:
        return self._lookup("models", name)

    def gpu_names(self) -> list[str]:
        return sorted(self._entries["gpus"], key=str.lower)

    def model_names(self) -> list[str]:
        return sorted(self._entries["models"], key=str.lower)

    def gpus(self) -> list[GpuSpec]:
        return [self._entries["gpus"][n] for n in self.gpu_names()]

    def models(self) -> list[ModelSpec]:
        return [self._entries["models"][n] for n in self.model_names()]

    def extend(self, data: Mapping[str, Any], source: str = "user catalog") -> Catalog:
        """New catalog with `data` ({gpus: {NAME: {...}}, models: {NAME: {...}}}) added.

        An entry whose name or alias matches an existing one overrides only the fields it
        gives (so `{gpus: {A100: {mem_eff: 0.8}}}` works); a new entry must be complete.
        """
        if not isinstance(data, Mapping):
            raise ConfigError(f"{source}: expected a mapping with 'gpus' and/or 'models'")
        unknown = sorted(set(data) - set(_KINDS))
        if unknown:
            raise ConfigError(
                f"{source}: unknown section {unknown[0]!r} (expected 'gpus' and/or 'models')"
            )
        entries = {k: dict(self._entries[k]) for k in _KINDS}
        for kind in _KINDS:
            section = data.get(kind) or {}
            if not isinstance(section, Mapping):
                raise ConfigError(f"{source}: {kind}: expected a mapping of NAME -> fields")
            for raw_name, raw in section.items():
                name = str(raw_name)
                canonical = self._index[kind].get(_norm(name))
                if canonical is not None and isinstance(raw, Mapping):
                    base = self._entries[kind][canonical]
                    merged = {f.name: getattr(base, f.name) for f in dataclasses.fields(base)}
                    del merged["name"]
                    if "ops" in merged:  # nested coefficients override field by field too
                        merged["ops"] = merged["ops"].given()
                        if isinstance(raw.get("ops"), Mapping):
                            raw = {**raw, "ops": {**merged["ops"], **raw["ops"]}}
                    merged.update(raw)
                    merged["aliases"] = _union(base.aliases, raw.get("aliases") or ())
                    entries[kind][canonical] = parse_entry(kind, canonical, merged, source)
                else:
                    entries[kind][name] = parse_entry(kind, name, raw, source)
        return Catalog(entries["gpus"].values(), entries["models"].values())


def _union(old: Iterable[str], new: Any) -> Any:
    if isinstance(new, str) or not isinstance(new, Iterable):
        return new  # let the schema reject it with a named error
    return tuple(dict.fromkeys([*old, *new]))


def _read_yaml(text: str, source: str) -> Any:
    try:
        return yaml.load(text, Loader=YAML_LOADER) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(
            f"{source}:{where} invalid YAML ({getattr(exc, 'problem', exc)})"
        ) from None


@lru_cache(maxsize=1)
def builtin_catalog() -> Catalog:
    """The catalog shipped with dsd (read once per process)."""
    catalog = Catalog()
    package = resources.files("dsd.catalog")
    for kind in _KINDS:
        source = f"{kind}.yaml"
        data = _read_yaml(package.joinpath(source).read_text(encoding="utf-8"), source)
        catalog = catalog.extend(data, source=f"dsd/catalog/{source}")
    return catalog


def load_catalog(extra_paths: Iterable[str | Path] = ()) -> Catalog:
    """The built-in catalog extended by user YAML files, later files overriding earlier ones."""
    catalog = builtin_catalog()
    for path in map(Path, extra_paths):
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read catalog file {path}: {exc.strerror or exc}") from None
        catalog = catalog.extend(_read_yaml(text, str(path)), source=str(path))
    return catalog

"""Catalog entries for models the built-in catalog lacks (tiny test models, user models),
derived from a transformers `config.json`, so the simulator can cost them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dsd.catalog.model import ModelSpec
from dsd.errors import DataError


def _config(path: str | Path) -> dict[str, Any]:
    cfg_path = Path(path).expanduser() / "config.json"
    try:
        return json.loads(cfg_path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {cfg_path}: {exc}") from None


def catalog_entry(path: str | Path, family: str = "custom") -> dict[str, Any]:
    """The fields of a `models:` catalog entry (see dsd/catalog/models.yaml)."""
    cfg = _config(path)
    try:
        hidden = int(cfg["hidden_size"])
        heads = int(cfg["num_attention_heads"])
        layers = int(cfg["num_hidden_layers"])
        vocab = int(cfg["vocab_size"])
        inter = int(cfg["intermediate_size"])
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{path}/config.json: missing or bad field {exc}") from None
    kv_heads = int(cfg.get("num_key_value_heads") or heads)
    head_dim = int(cfg.get("head_dim") or hidden // heads)
    tied = bool(cfg.get("tie_word_embeddings", False))
    spec = ModelSpec("x", family, 1.0, layers, hidden, heads, kv_heads, head_dim, inter, vocab,
                     tied)
    # Parameter count from the shapes (the catalog's official counts are not known here);
    # at least 1e-6 B so tiny models still validate.
    params_b = max(spec.estimated_params() / 1e9, 1e-6)
    return {"family": family, "params_b": round(params_b, 9), "layers": layers,
            "hidden": hidden, "heads": heads, "kv_heads": kv_heads, "head_dim": head_dim,
            "intermediate": inter, "vocab": vocab, "tied_embeddings": tied}


def model_spec(path: str | Path, name: str, family: str = "custom") -> ModelSpec:
    return ModelSpec(name=name, **catalog_entry(path, family))


def resolve_model_spec(name: str, path: str | Path | None = None,
                       extra_catalogs: tuple[str, ...] = ()) -> ModelSpec:
    """The catalog's spec for `name`, else one derived from the model's config.json."""
    from dsd.catalog import load_catalog
    from dsd.errors import ConfigError

    try:
        return load_catalog(extra_catalogs).model(name)
    except ConfigError:
        if path is None:
            raise
        return model_spec(path, name)

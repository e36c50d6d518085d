"""GPU memory budget of a deployment: does the model fit, and how many KV tokens remain."""

from __future__ import annotations

from dsd.errors import ConfigError
from dsd.perf.base import Deployment

# A deployment that cannot hold even this much KV cache is useless for serving.
MIN_KV_TOKENS = 512


def kv_capacity_tokens(hw: Deployment, reserve_frac: float = 0.1) -> int:
    """KV-cache tokens that fit after the weights and a reserve for activations (0 if none)."""
    if not 0.0 <= reserve_frac < 1.0:
        raise ConfigError(f"{hw.label}: reserve_frac must be in [0, 1), got {reserve_frac}")
    usable = hw.tp * hw.gpu.memory_bytes * (1.0 - reserve_frac)
    free = usable - hw.model.weight_bytes(hw.dtype_bytes)  # type: ignore[arg-type]
    return max(0, int(free // hw.kv_bytes_per_token))


def check_fits(
    hw: Deployment, reserve_frac: float = 0.1, min_kv_tokens: int = MIN_KV_TOKENS
) -> None:
    """Raise ConfigError unless weights + `min_kv_tokens` of KV fit after the reserve."""
    if kv_capacity_tokens(hw, reserve_frac) >= min_kv_tokens:
        return
    weights_gb = hw.model.weight_bytes(hw.dtype_bytes) / 1e9  # type: ignore[arg-type]
    kv_gb = min_kv_tokens * hw.kv_bytes_per_token / 1e9
    usable_gb = hw.tp * hw.gpu.memory_gb * (1.0 - reserve_frac)
    raise ConfigError(
        f"{hw.label} does not fit: needs {weights_gb:.1f} GB of weights + {kv_gb:.2f} GB of KV "
        f"but has {usable_gb:.1f} GB after a {reserve_frac:.0%} reserve; raise tp or use a "
        "GPU with more memory"
    )

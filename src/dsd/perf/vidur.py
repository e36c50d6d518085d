"""`latency: {type: vidur, path: DIR}`: predict steps from VIDUR operator profiles, the way
VIDUR does.

- linear part: each operator of the model's mlp.csv at the deployment's tensor-parallel
  degree, interpolated linearly over token counts, summed over layers, plus the embedding;
- all-reduces: 2 per layer (1 for parallel blocks), message = tokens x hidden x 2 bytes,
  from the node's all_reduce.csv (the catalog's fitted model when the folder has none);
- attention: the model's attention.csv when the folder has one (decode: batch size x mean
  KV length, prefill: KV length x chunk, as VIDUR reads it, plus the analytic model's
  ragged-batch excess), else the analytic attention model (dsd.perf.attention);
- LM head and the per-step host overhead: as the fitted model (neither is in the profiles).

Without `path`, dsd's shipped subset of VIDUR's profiles is used (A100, H100, A40). A GPU,
model or tensor-parallel degree the folder lacks is an error that lists what it has.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from dsd.errors import ConfigError, DataError
from dsd.perf.attention import AttentionModel
from dsd.perf.base import Deployment
from dsd.perf.bound import BoundPredictor
from dsd.perf.coefficients import resolve
from dsd.perf.fitted import fitted_step
from dsd.perf.memory import MIN_KV_TOKENS
from dsd.perf.ops import allreduces_per_layer
from dsd.perf.registry import register_predictor
from dsd.perf.step import ComposedStep
from dsd.perf.vidur_data import AttentionProfile, MlpProfile, VidurFolder, builtin_profiles

if TYPE_CHECKING:
    import numpy as np


class VidurWarning(RuntimeWarning):
    """A VIDUR folder lacks a part (all-reduces) and the fitted model stands in."""


def linear_ms(profile: MlpProfile, tp: int, tokens: float | np.ndarray, layers: int):
    """Milliseconds of VIDUR's operator set over a forward of `tokens` tokens."""
    total = profile.op_ms("emb", tp, tokens) if "emb" in profile.ops else 0.0
    per_layer = sum(profile.op_ms(op, tp, tokens) for op in profile.ops if op != "emb")
    return total + layers * per_layer


class MeasuredAttention:
    """Attention from a VIDUR attention.csv, as VIDUR reads it: decode at batch size x
    mean KV length, prefill per sequence at its chunk length; plus the analytic model's
    ragged-batch excess (the profile measures uniform batches)."""

    def __init__(self, profile: AttentionProfile, layers: int,
                 analytic: AttentionModel) -> None:
        self.profile = profile
        self.scale = layers / 1000.0  # per-layer milliseconds -> seconds per forward
        self.analytic = analytic

    def seconds(self, num_seqs: int, query_tokens: int, context_tokens: int,
                attn_pairs: int, max_kv: int = 0) -> float:
        n = max(1, num_seqs)
        if not context_tokens:  # prefills from an empty cache, one chunk per sequence
            return n * self.profile.prefill_ms(0.0, query_tokens / n) * self.scale
        measured = self.profile.decode_ms(n, (context_tokens + query_tokens) / n) * self.scale
        a = self.analytic
        ragged = (a.seconds(num_seqs, query_tokens, context_tokens, attn_pairs, max_kv)
                  - a.seconds(num_seqs, query_tokens, context_tokens, attn_pairs, 0))
        return measured + max(0.0, ragged)


@register_predictor("vidur")
class VidurPredictor(BoundPredictor):
    """VIDUR-format measured operator profiles (`latency: {type: vidur, path: DIR}`)."""

    def __init__(self, path: str | Path | None = None, reserve_frac: float = 0.1,
                 min_kv_tokens: int = MIN_KV_TOKENS) -> None:
        super().__init__(reserve_frac, min_kv_tokens)
        self.path = Path(path) if path is not None else builtin_profiles()

    def _make(self, hw: Deployment) -> ComposedStep:
        folder = VidurFolder(self.path)
        try:
            gpu_folder = folder.gpu_folder(hw.gpu)
            key = folder.model_key(gpu_folder, hw.model)
            profile = folder.mlp(gpu_folder, key)
            profile.check_tp(hw.tp)
        except DataError as exc:
            raise ConfigError(str(exc)) from None
        model, tp = hw.model, hw.tp

        def linear(tokens: int) -> float:
            return float(linear_ms(profile, tp, tokens, model.layers)) / 1000.0

        comm = None
        if tp > 1:
            allreduce = folder.allreduce(gpu_folder)
            if allreduce is not None and tp in allreduce.sizes:
                reduces = allreduces_per_layer(model) * model.layers
                message = model.hidden * 2  # VIDUR profiles fp16 activations

                def comm(tokens: int) -> float:
                    return reduces * allreduce.allreduce_ms(tp, tokens * message) / 1000.0
            else:
                _warn(f"{self.path}: no all-reduce profile over {tp} {hw.gpu.name} GPUs; "
                      "using the catalog's fitted all-reduce model")
        analytic = AttentionModel(hw, resolve(hw.gpu))
        measured = folder.attention(gpu_folder, key, tp)
        source = f"VIDUR profiles {self.path}/compute/{gpu_folder}/{key}"
        attention = (analytic if measured is None
                     else MeasuredAttention(measured, model.layers, analytic))
        return fitted_step(hw, linear, comm, attention, validated=True, source=source)


_WARNED: set[str] = set()


def _warn(msg: str) -> None:
    if msg not in _WARNED:
        _WARNED.add(msg)
        warnings.warn(msg, VidurWarning, stacklevel=4)  # one line (cli/main formats it)

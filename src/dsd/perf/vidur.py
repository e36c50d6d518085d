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

import logging
import warnings
from pathlib import Path

import numpy as np

from dsd.errors import ConfigError, DataError
from dsd.perf.attention import AttentionModel
from dsd.perf.base import OPS, BatchShape, Deployment, Op
from dsd.perf.coefficients import resolve
from dsd.perf.fitted import fitted_step
from dsd.perf.memory import MIN_KV_TOKENS, check_fits
from dsd.perf.ops import allreduces_per_layer
from dsd.perf.registry import register_predictor
from dsd.perf.step import ComposedStep
from dsd.perf.vidur_data import (
    MlpProfile,
    VidurFolder,
    _columns,
    _number,
    _open_csv,
    builtin_profiles,
)

log = logging.getLogger("dsd.perf.vidur")


class VidurWarning(RuntimeWarning):
    """A VIDUR folder lacks a part (all-reduces) and the fitted model stands in."""


def linear_ms(profile: MlpProfile, tp: int, tokens: float | np.ndarray, layers: int):
    """Milliseconds of VIDUR's operator set over a forward of `tokens` tokens."""
    total = profile.op_ms("emb", tp, tokens) if "emb" in profile.ops else 0.0
    per_layer = sum(profile.op_ms(op, tp, tokens) for op in profile.ops if op != "emb")
    return total + layers * per_layer


class MeasuredAttention:
    """Attention from a VIDUR attention.csv (milliseconds per layer):
    decode rows (is_prefill false): batch_size x kv_cache_size -> attn_decode;
    prefill rows: kv_cache_size x prefill_chunk_size -> attn_prefill."""

    def __init__(self, path: Path, tp: int, layers: int, analytic: AttentionModel) -> None:
        header, rows = _open_csv(path)
        cols = ("batch_size", "kv_cache_size", "prefill_chunk_size", "is_prefill",
                "num_tensor_parallel_workers")
        index = _columns(path, header, cols)
        decode: dict[float, dict[float, float]] = {}
        prefill: dict[float, dict[float, float]] = {}
        for line, row in enumerate(rows, start=2):
            if not row or int(_number(path, line, "tp",
                                      row[index["num_tensor_parallel_workers"]])) != tp:
                continue
            is_prefill = row[index["is_prefill"]].strip().lower() == "true"
            op = "attn_prefill" if is_prefill else "attn_decode"
            col = f"time_stats.{op}.median"
            if col not in header:
                raise DataError(f"{path}: missing column {col}")
            kv = _number(path, line, "kv_cache_size", row[index["kv_cache_size"]])
            ms = _number(path, line, col, row[header.index(col)])
            if is_prefill:
                chunk = _number(path, line, "prefill_chunk_size",
                                row[index["prefill_chunk_size"]])
                prefill.setdefault(kv, {})[chunk] = ms
            else:
                batch = _number(path, line, "batch_size", row[index["batch_size"]])
                decode.setdefault(batch, {})[kv] = ms
        if not decode or not prefill:
            raise DataError(f"{path}: needs decode and prefill rows at tp={tp}")
        self.decode, self.prefill = _grid(decode), _grid(prefill)
        self.scale = layers / 1000.0
        self.analytic = analytic

    def seconds(self, num_seqs: int, query_tokens: int, context_tokens: int,
                attn_pairs: int, max_kv: int = 0) -> float:
        n = max(1, num_seqs)
        if not context_tokens:  # prefills, one chunk per sequence from an empty cache
            return n * _interp2(self.prefill, 0.0, query_tokens / n) * self.scale
        mean_kv = (context_tokens + query_tokens) / n
        measured = _interp2(self.decode, n, mean_kv) * self.scale
        a = self.analytic
        ragged = (a.seconds(num_seqs, query_tokens, context_tokens, attn_pairs, max_kv)
                  - a.seconds(num_seqs, query_tokens, context_tokens, attn_pairs, 0))
        return measured + max(0.0, ragged)


def _grid(points: dict[float, dict[float, float]]):
    return [(x, np.array(sorted(ys)), np.array([ys[y] for y in sorted(ys)]))
            for x, ys in sorted(points.items())]


def _interp2(grid, x: float, y: float) -> float:
    """Linear in y within each profiled x, then linear in x (clamped at x's ends; beyond
    the largest y the value scales in proportion, as attention work does)."""
    def along(ys: np.ndarray, vs: np.ndarray) -> float:
        if y > ys[-1]:
            return float(vs[-1] * y / ys[-1])
        return float(np.interp(y, ys, vs))

    xs = [g[0] for g in grid]
    i = int(np.searchsorted(xs, x))
    if i == 0:
        return along(*grid[0][1:])
    if i >= len(grid):
        return along(*grid[-1][1:])
    (x0, y0s, v0s), (x1, y1s, v1s) = grid[i - 1], grid[i]
    w = (x - x0) / (x1 - x0)
    return (1 - w) * along(y0s, v0s) + w * along(y1s, v1s)


@register_predictor("vidur")
class VidurPredictor:
    """VIDUR-format measured operator profiles (`latency: {type: vidur, path: DIR}`)."""

    def __init__(self, path: str | Path | None = None, reserve_frac: float = 0.1,
                 min_kv_tokens: int = MIN_KV_TOKENS) -> None:
        self.path = Path(path) if path is not None else builtin_profiles()
        self.reserve_frac = reserve_frac
        self.min_kv_tokens = min_kv_tokens
        self._bound: dict[Deployment, ComposedStep] = {}

    def bind(self, hw: Deployment) -> ComposedStep:
        step = self._bound.get(hw)
        if step is None:
            check_fits(hw, self.reserve_frac, self.min_kv_tokens)
            step = self._bound[hw] = self._make(hw)
        return step

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
        attention_csv = folder.attention_path(gpu_folder, key)
        source = f"VIDUR profiles {self.path}/compute/{gpu_folder}/{key}"
        attention = (analytic if attention_csv is None
                     else MeasuredAttention(attention_csv, tp, model.layers, analytic))
        return fitted_step(hw, linear, comm, attention, validated=True, source=source)

    def predict(self, op: Op, shape: BatchShape, hw: Deployment) -> float:
        if op not in OPS:
            raise ConfigError(f"unknown op {op!r} (known: {', '.join(OPS)})")
        return self.bind(hw).step_s(*shape.args())


_WARNED: set[str] = set()


def _warn(msg: str) -> None:
    if msg not in _WARNED:
        _WARNED.add(msg)
        warnings.warn(msg, VidurWarning, stacklevel=4)
        log.warning("%s", msg)

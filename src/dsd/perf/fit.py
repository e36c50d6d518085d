"""Fitting the operator model's coefficients to VIDUR operator profiles, per GPU.

Least squares (scipy.optimize.least_squares, deterministic) on log residuals, so every
point weighs by its relative error whatever its size:

- the forward's non-attention sum (embedding + layers x the other operators), the figure
  `dsd experiment gpu-fidelity` scores, weight 1;
- each of the four projections on its own, and the per-layer sum of the elementwise
  operators, weight 0.3: these pin the matmul and elementwise coefficients separately
  (the sum alone trades one kernel's fixed cost for another's) without moving the sum.

Six coefficients are fitted per GPU: matmul FLOP/s and bandwidth, elementwise bandwidth,
the smoothness p, and the two per-kernel fixed costs. The row tile is not fitted (it is
discrete): 128 rows beat 64 and 256 on every profiled GPU (docs/latency.md). All-reduce
latency and bus bandwidth are fitted separately to the node's collectives profile.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from dsd.catalog import Catalog
from dsd.catalog.gpu import GpuSpec, OpCoefficients
from dsd.errors import ConfigError, DataError
from dsd.perf.coefficients import TILE_TOKENS
from dsd.perf.ops import (
    ELEMENTWISE_OPS,
    MATMUL_OPS,
    VIDUR_OPS,
    LayerShape,
    elementwise_s,
    matmul_s,
)
from dsd.perf.vidur_data import AllReduceProfile, VidurFolder

OP_WEIGHT = 0.3  # weight of the per-projection and elementwise-sum residuals
_PER_LAYER_EW = tuple(op for op in ELEMENTWISE_OPS if op != "emb")


@dataclass
class ProfilePoints:
    """Every profiled (model, tp, tokens) point of one GPU, as parallel arrays.

    `measured[op]` is seconds (per layer; `emb` per forward), NaN where a model's file
    lacks the operator; `shapes` gives each point's layer shard.
    """

    gpu: str
    model: np.ndarray
    tp: np.ndarray
    tokens: np.ndarray
    layers: np.ndarray
    shapes: list[LayerShape]
    measured: dict[str, np.ndarray]
    # per operator, every point's (K, N) or bytes per token (filled on first use)
    dims: dict[str, tuple[np.ndarray, ...]] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.tokens)

    def subset(self, mask: np.ndarray) -> ProfilePoints:
        idx = np.flatnonzero(mask)
        return ProfilePoints(self.gpu, self.model[idx], self.tp[idx], self.tokens[idx],
                             self.layers[idx], [self.shapes[i] for i in idx],
                             {op: v[idx] for op, v in self.measured.items()})

    def linear(self, per_op: dict[str, np.ndarray]) -> np.ndarray:
        """emb + layers x the per-layer operators, over the operators each file profiles."""
        total = np.zeros(len(self))
        for op in VIDUR_OPS:
            present = ~np.isnan(self.measured[op])
            value = np.where(present, per_op[op], 0.0)
            total += value if op == "emb" else self.layers * value
        return total

    def measured_linear(self) -> np.ndarray:
        return self.linear(self.measured)


def load_points(folder: VidurFolder, gpu_folder: str, catalog: Catalog,
                skipped: list[str] | None = None) -> ProfilePoints:
    """All mlp.csv points of one GPU folder whose model the catalog knows (for its layer
    count); other models are listed in `skipped`."""
    cols: dict[str, list] = {"model": [], "tp": [], "tokens": [], "layers": [], "shapes": []}
    measured: dict[str, list[np.ndarray]] = {op: [] for op in VIDUR_OPS}
    known = {m.name: m for m in catalog.models()}
    for key in folder.models[gpu_folder]:
        model = None
        for m in known.values():
            try:
                if folder.model_key(gpu_folder, m) == key:
                    model = m
                    break
            except DataError:
                continue
        if model is None:
            if skipped is not None:
                skipped.append(f"{gpu_folder}/{key} (not in the catalog: layer count unknown)")
            continue
        prof = folder.mlp(gpu_folder, key)
        for tp in prof.tps():
            tokens = prof.tokens[tp]
            n = len(tokens)
            shape = LayerShape.from_heads(prof.n_embd, prof.n_head, prof.n_kv_head,
                                          prof.n_embd / prof.n_head, prof.n_expanded_embd,
                                          prof.gated, "post_attention_layernorm" in prof.ops,
                                          model.layers, tp)
            cols["model"] += [model.name] * n
            cols["tp"].append(np.full(n, tp))
            cols["tokens"].append(tokens)
            cols["layers"].append(np.full(n, model.layers))
            cols["shapes"] += [shape] * n
            for op in VIDUR_OPS:
                ms = prof.ms[tp].get(op)
                measured[op].append(ms / 1000.0 if ms is not None else np.full(n, np.nan))
    if not cols["model"]:
        raise DataError(f"{folder.root}/compute/{gpu_folder}: no profile of a catalog model")
    return ProfilePoints(gpu_folder, np.array(cols["model"]), np.concatenate(cols["tp"]),
                         np.concatenate(cols["tokens"]), np.concatenate(cols["layers"]),
                         cols["shapes"], {op: np.concatenate(v) for op, v in measured.items()})


def _dims(points: ProfilePoints) -> dict[str, tuple[np.ndarray, ...]]:
    """Per operator, each point's (K, N) or bytes per token: shapes as arrays, computed
    once per point set so the fit evaluates every operator in one vectorized call."""
    if points.dims is not None:
        return points.dims
    dims: dict[str, tuple[np.ndarray, ...]] = {}
    by_shape = {shape: None for shape in points.shapes}
    for op in VIDUR_OPS:
        if op in MATMUL_OPS:
            kn = {shape: shape.matmul(op) for shape in by_shape}
            dims[op] = (np.array([kn[s][0] for s in points.shapes]),
                        np.array([kn[s][1] for s in points.shapes]))
        else:
            b = {shape: shape.elementwise_bytes(op) for shape in by_shape}
            dims[op] = (np.array([b[s] for s in points.shapes]),)
    points.dims = dims
    return dims


def predict_ops(points: ProfilePoints, c: OpCoefficients) -> dict[str, np.ndarray]:
    """Seconds of every operator at every point."""
    dims = _dims(points)
    tokens = points.tokens
    out = {}
    for op in VIDUR_OPS:
        if op in MATMUL_OPS:
            out[op] = matmul_s(tokens, *dims[op], c)
        else:
            out[op] = elementwise_s(tokens, dims[op][0], c)
    return out


def predict_linear(points: ProfilePoints, c: OpCoefficients) -> np.ndarray:
    return points.linear(predict_ops(points, c))


def _coefficients(x: np.ndarray, tile_tokens: int = TILE_TOKENS) -> OpCoefficients:
    return OpCoefficients(matmul_tflops=x[0], matmul_gbps=x[1], elementwise_gbps=x[2],
                          smoothness=x[3], matmul_kernel_us=x[4], elementwise_kernel_us=x[5],
                          tile_tokens=tile_tokens)


def fit_operators(points: ProfilePoints, gpu: GpuSpec | None = None,
                  tile_tokens: int = TILE_TOKENS) -> OpCoefficients:
    """The six operator coefficients that best fit `points` (see the module doc), for a
    given row tile (`scripts/latency_tile_choice.py` compares tiles)."""
    from scipy.optimize import least_squares

    meas_linear = points.measured_linear()
    meas_ew = sum(np.nan_to_num(points.measured[op]) for op in _PER_LAYER_EW)
    present = {op: ~np.isnan(points.measured[op]) for op in MATMUL_OPS}

    def residuals(x: np.ndarray) -> np.ndarray:
        ops = predict_ops(points, _coefficients(x, tile_tokens))
        parts = [np.log(points.linear(ops) / meas_linear)]
        for op in MATMUL_OPS:
            m = present[op]
            parts.append(OP_WEIGHT * np.log(ops[op][m] / points.measured[op][m]))
        pred_ew = sum(np.where(np.isnan(points.measured[op]), 0.0, ops[op])
                      for op in _PER_LAYER_EW)
        parts.append(OP_WEIGHT * np.log(pred_ew / meas_ew))
        return np.concatenate(parts)

    if gpu is not None:
        x0 = [0.7 * gpu.tflops, 0.75 * gpu.mem_bw_gbps, 0.55 * gpu.mem_bw_gbps, 3.0, 5.0, 2.0]
    else:
        x0 = [200.0, 1500.0, 1000.0, 3.0, 5.0, 2.0]
    lower = [1e-3, 1e-2, 1e-2, 1.0, 0.0, 0.0]
    upper = [1e5, 1e5, 1e5, 20.0, 200.0, 200.0]
    sol = least_squares(residuals, np.array(x0), bounds=(lower, upper), x_scale="jac")
    return _coefficients(sol.x, tile_tokens)


def fit_allreduce(profile: AllReduceProfile) -> tuple[float, float]:
    """(allreduce_us, allreduce_gbps) of the ring model t = a + 2 (n-1)/n * bytes / busbw,
    fitted over every GPU count and message size on log residuals with a soft-L1 loss
    (small-message timings scatter by 2x)."""
    from scipy.optimize import least_squares

    ring, size, ms = [], [], []
    for n in profile.tps():
        ring.append(np.full(len(profile.sizes[n]), 2.0 * (n - 1) / n))
        size.append(profile.sizes[n])
        ms.append(profile.ms[n])
    r, s, t = np.concatenate(ring), np.concatenate(size), np.concatenate(ms) / 1000.0

    def residuals(x: np.ndarray) -> np.ndarray:
        return np.log((x[0] * 1e-6 + r * s / (x[1] * 1e9)) / t)

    sol = least_squares(residuals, np.array([20.0, 100.0]), bounds=([0.0, 1e-3], [1e4, 1e5]),
                        loss="soft_l1", f_scale=0.1, x_scale="jac")
    return float(sol.x[0]), float(sol.x[1])


def round_coefficients(c: OpCoefficients) -> OpCoefficients:
    """Four significant digits: what the catalog stores."""
    def r(v):
        return float(f"{v:.4g}") if isinstance(v, float) else v
    return dataclasses.replace(c, **{k: r(v) for k, v in c.given().items()})


def calibrate(folders: Iterable[str], catalog: Catalog, notes: list[str] | None = None,
              errors: dict[str, float] | None = None) -> dict[str, OpCoefficients]:
    """Fitted coefficients per catalog GPU over every GPU the folders profile (a GPU in
    several folders is fitted on all its points together). `errors` receives each GPU's
    in-sample MAPE of the forward's non-attention time, `notes` what was skipped."""
    points: dict[str, list[ProfilePoints]] = {}
    comm: dict[str, tuple[float, float]] = {}
    sources: dict[str, list[str]] = {}
    for root in folders:
        folder = VidurFolder(root)
        for gpu_folder in folder.models:
            try:
                gpu = catalog.gpu(gpu_folder)
            except ConfigError:
                if notes is not None:
                    notes.append(f"skipped {folder.root}/compute/{gpu_folder}: not a catalog GPU")
                continue
            points.setdefault(gpu.name, []).append(load_points(folder, gpu_folder, catalog,
                                                               notes))
            sources.setdefault(gpu.name, []).append(f"{folder.root.name}/{gpu_folder}")
            allreduce = folder.allreduce(gpu_folder)
            if allreduce is not None and gpu.name not in comm:
                comm[gpu.name] = fit_allreduce(allreduce)
    out = {}
    for name, parts in points.items():
        merged = _concat(parts)
        fitted = fit_operators(merged, catalog.gpu(name))
        if errors is not None:
            errors[name] = float(np.mean(np.abs(predict_linear(merged, fitted)
                                                / merged.measured_linear() - 1)))
        if name in comm:
            fitted = dataclasses.replace(fitted, allreduce_us=comm[name][0],
                                         allreduce_gbps=comm[name][1])
        source = (f"VIDUR operator profiles ({', '.join(sources[name])}; {len(merged)} points"
                  f"{'; all-reduce from the node profile' if name in comm else ''})")
        out[name] = round_coefficients(dataclasses.replace(fitted, validated=True,
                                                           source=source))
    return out


def _concat(parts: list[ProfilePoints]) -> ProfilePoints:
    if len(parts) == 1:
        return parts[0]
    return ProfilePoints(parts[0].gpu, np.concatenate([p.model for p in parts]),
                         np.concatenate([p.tp for p in parts]),
                         np.concatenate([p.tokens for p in parts]),
                         np.concatenate([p.layers for p in parts]),
                         [s for p in parts for s in p.shapes],
                         {op: np.concatenate([p.measured[op] for p in parts])
                          for op in VIDUR_OPS})

"""`dsd experiment gpu-fidelity`: latency models against real GPU measurements, the analogue
of the DSD paper's Fig. 4.

Every point of VIDUR's operator profiles (A100, H100, A40; six models; tensor parallelism
1-8; 1-4096 tokens per forward) gives a measured non-attention forward time: the embedding
plus the layers times the per-layer operators. Four predictions are scored against it:

(a) roofline  the reference roofline's non-attention time (no step overhead, no comm);
(b) fitted    the operator model with coefficients fitted to all of the GPU's points;
(c) lomo      the same fitted leaving one model out, predicting the left-out model;
(d) interp    the vidur predictor's interpolation over token counts, each held-out point
              (every other profiled token count) predicted from its neighbours;
(e) rule      the spec rule for unprofiled GPUs, leave-one-GPU-out: each GPU predicted
              from its spec sheet with the mean achieved fractions of the other GPUs, the
              check of how well dsd does on hardware nobody profiled.

MAPE per GPU, per tensor-parallel degree and per token range; parity plots. `--quick` scores
a sparse token subset (a few seconds); `--profiles DIR` reads another VIDUR folder.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from dsd.catalog import load_catalog
from dsd.errors import ConfigError, DataError
from dsd.experiments.registry import ExperimentContext, ExperimentResult, register_experiment
from dsd.perf.base import Deployment
from dsd.perf.coefficients import resolve, rule_fractions, spec_rule
from dsd.perf.fit import ProfilePoints, fit_operators, load_points, predict_linear
from dsd.perf.roofline import RooflineStep
from dsd.perf.vidur_data import VidurFolder, builtin_profiles

METHODS = ("roofline", "fitted", "lomo", "interp", "rule")
RANGES = (("tokens<=64", 1, 64), ("tokens 65-512", 65, 512), (">512", 513, 1 << 30),
          ("verify regime <=128", 1, 128))
QUICK_TOKENS = (1, 2, 4, 8, 16, 32, 64, 96, 128, 192, 256, 384, 512, 1024, 2048, 4096)
GOALS = {"interp": 0.03, "fitted": 0.05, "lomo": 0.08}  # MAPE per GPU (lomo: and per TP)
PLOT_POINTS = 1500  # drawn per GPU and panel (every point is scored; legends say MAPE)


def roofline_linear(points: ProfilePoints, gpu_name: str, catalog: Any) -> np.ndarray:
    """The reference roofline's non-attention time at every point (seconds): its
    max(compute, memory) without attention, all-reduces or step overhead."""
    out = np.empty(len(points))
    gpu = catalog.gpu(gpu_name)
    for (model, tp) in {(m, int(t)) for m, t in zip(points.model, points.tp, strict=True)}:
        step = RooflineStep(Deployment(gpu, catalog.model(model), tp))
        for i in np.flatnonzero((points.model == model) & (points.tp == tp)):
            out[i] = step.breakdown(1, int(points.tokens[i]), 0, 0)["linear"]
    return out


def interpolated(folder: VidurFolder, gpu_folder: str, catalog: Any) -> list[dict[str, Any]]:
    """Hold out every other profiled token count of each (model, tp) and interpolate it from
    the remaining ones, operator by operator, as the vidur predictor does."""
    rows = []
    for model in catalog.models():
        try:
            key = folder.model_key(gpu_folder, model)
        except DataError:  # a catalog model this GPU was not profiled with
            continue
        prof = folder.mlp(gpu_folder, key)
        for tp in prof.tps():
            xs = prof.tokens[tp]
            keep = np.zeros(len(xs), bool)
            keep[::2] = True
            keep[-1] = True
            held = ~keep
            measured = np.zeros(held.sum())
            predicted = np.zeros(held.sum())
            for op in prof.ops:
                ys = prof.ms[tp][op]
                weight = 1.0 if op == "emb" else model.layers
                measured += weight * ys[held]
                predicted += weight * np.interp(xs[held], xs[keep], ys[keep])
            for t, m, p in zip(xs[held], measured, predicted, strict=True):
                rows.append({"model": model.name, "tp": tp, "tokens": int(t),
                             "measured_ms": float(m), "interp_ms": float(p)})
    return rows


def _mape(pred: np.ndarray, meas: np.ndarray) -> float:
    ok = ~np.isnan(pred)
    return float(np.mean(np.abs(pred[ok] / meas[ok] - 1))) if ok.any() else float("nan")


@register_experiment("gpu-fidelity", "latency models vs VIDUR's A100/H100/A40 measurements "
                                     "(roofline, fitted, model/GPU left out, interpolation)")
def gpu_fidelity(ctx: ExperimentContext) -> ExperimentResult:
    root = Path(ctx.options.get("profiles") or builtin_profiles())
    folder = VidurFolder(root)
    catalog = load_catalog()
    notes: list[str] = []
    points_rows: list[dict[str, Any]] = []
    fractions: dict[str, dict[str, float]] = {}  # GPU -> achieved fractions of its specs
    held_points: dict[str, tuple[Any, int]] = {}  # GPU -> (its points, first row)
    for gpu_folder in folder.models:
        try:
            gpu = catalog.gpu(gpu_folder).name
        except ConfigError:
            notes.append(f"skipped compute/{gpu_folder}: not a catalog GPU")
            continue
        pts = load_points(folder, gpu_folder, catalog, notes)
        if ctx.quick:
            pts = pts.subset(np.isin(pts.tokens, QUICK_TOKENS))
        measured = pts.measured_linear()
        roof = roofline_linear(pts, gpu, catalog)
        coef = fit_operators(pts, catalog.gpu(gpu))
        fractions[gpu] = rule_fractions(catalog.gpu(gpu), coef)
        held_points[gpu] = (pts, len(points_rows))
        fitted = predict_linear(pts, coef)
        shipped = predict_linear(pts, resolve(catalog.gpu(gpu)))
        lomo = np.full(len(pts), np.nan)
        for model in np.unique(pts.model):
            held = pts.model == model
            coef = fit_operators(pts.subset(~held), catalog.gpu(gpu))
            lomo[held] = predict_linear(pts.subset(held), coef)
        for i in range(len(pts)):
            points_rows.append({
                "gpu": gpu, "model": str(pts.model[i]), "tp": int(pts.tp[i]),
                "tokens": int(pts.tokens[i]), "measured_ms": measured[i] * 1e3,
                "roofline_ms": roof[i] * 1e3, "fitted_ms": fitted[i] * 1e3,
                "catalog_ms": shipped[i] * 1e3, "lomo_ms": lomo[i] * 1e3})
        for row in interpolated(folder, gpu_folder, catalog):
            points_rows.append({"gpu": gpu, **row})
    for gpu, (pts, first) in held_points.items():
        others = [f for g, f in fractions.items() if g != gpu]
        if not others:
            notes.append("one profiled GPU: no leave-one-GPU-out check of the spec rule")
            break
        keys = set.intersection(*(set(f) for f in others))
        means = {k: float(np.mean([f[k] for f in others])) for k in keys}
        rule = predict_linear(pts, spec_rule(catalog.gpu(gpu), means))
        for i in range(len(pts)):
            points_rows[first + i]["rule_ms"] = rule[i] * 1e3
    if not points_rows:
        raise DataError(f"{root}: no profile of a catalog GPU and model")
    return _report(ctx, points_rows, notes, root)


def _column(rows: list[dict[str, Any]], key: str) -> np.ndarray:
    return np.array([r.get(key, np.nan) for r in rows], dtype=float)


def _report(ctx: ExperimentContext, points: list[dict[str, Any]], notes: list[str],
            root: Path) -> ExperimentResult:
    _write_points(ctx.out / "points.csv", points)
    gpus = sorted({r["gpu"] for r in points})
    meas = _column(points, "measured_ms")
    pred = {m: _column(points, f"{m}_ms") for m in METHODS}
    gpu_of = np.array([r["gpu"] for r in points])
    tp_of = _column(points, "tp")
    tok_of = _column(points, "tokens")
    groups: list[tuple[str, str, str, np.ndarray]] = []  # (gpu, kind, group, mask)
    for gpu in gpus:
        g = gpu_of == gpu
        groups.append((gpu, "gpu", "all", g))
        groups += [(gpu, "tp", f"tp={tp}", g & (tp_of == tp)) for tp in (1, 2, 4, 8)
                   if (g & (tp_of == tp)).any()]
        groups += [(gpu, "tokens", name, g & (tok_of >= lo) & (tok_of <= hi))
                   for name, lo, hi in RANGES]
    groups.append(("all", "all", "all", np.ones(len(points), bool)))
    rows = []
    for gpu, kind, group, mask in groups:
        row: dict[str, Any] = {"gpu": gpu, "group": group, "kind": kind,
                               "points": int((mask & ~np.isnan(pred["fitted"])).sum())}
        for m in METHODS:
            row[f"mape_{m}"] = _mape(pred[m][mask], meas[mask])
        rows.append(row)
    summary: dict[str, Any] = {f"mape_{m}": _mape(pred[m], meas) for m in METHODS}
    summary["mape_catalog"] = _mape(_column(points, "catalog_ms"), meas)
    summary["profiles"] = str(root)
    for key, kind in (("per_gpu", "gpu"), ("per_gpu_tp", "tp"), ("per_gpu_tokens", "tokens")):
        summary[key] = {(r["gpu"] if kind == "gpu" else f"{r['gpu']} {r['group']}"):
                        {m: r[f"mape_{m}"] for m in METHODS} for r in rows if r["kind"] == kind}
    summary["goals_met"] = _goals(rows)
    plots = [_parity_plot(ctx.out / "gpu-fidelity.png", points, meas, pred, gpus)]
    notes.append(f"points.csv: every scored point; profiles: {root}")
    columns = ["gpu", "group", "points", *(f"mape_{m}" for m in METHODS)]
    return ExperimentResult(rows, summary, plots, table_columns=columns, notes=notes)


def _goals(rows: list[dict[str, Any]]) -> dict[str, bool]:
    per_gpu = [r for r in rows if r["kind"] == "gpu"]
    per_tp = [r for r in rows if r["kind"] == "tp"]
    return {
        "interp<=3%": all(r["mape_interp"] <= GOALS["interp"] for r in per_gpu),
        "fitted<=5% per GPU": all(r["mape_fitted"] <= GOALS["fitted"] for r in per_gpu),
        "lomo<=8% per GPU and TP": all(r["mape_lomo"] <= GOALS["lomo"]
                                       for r in per_gpu + per_tp),
    }


def _write_points(path: Path, points: list[dict[str, Any]]) -> None:
    keys = ["gpu", "model", "tp", "tokens", "measured_ms", "roofline_ms", "fitted_ms",
            "catalog_ms", "lomo_ms", "interp_ms", "rule_ms"]
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys, extrasaction="ignore")
        writer.writeheader()
        for r in points:
            writer.writerow({k: (f"{v:.5g}" if isinstance(v, float) else v)
                             for k, v in r.items()})


def _parity_plot(path: Path, points: list[dict[str, Any]], meas: np.ndarray,
                 pred: dict[str, np.ndarray], gpus: list[str]) -> Path:
    """Top: predicted vs measured (log-log, grey band +-10%). Bottom: relative error
    against tokens per forward, where the models differ most."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dsd.experiments.common import _save

    gpu_of = np.array([r["gpu"] for r in points])
    tokens = _column(points, "tokens")
    titles = {"roofline": "(a) roofline (reference)", "fitted": "(b) fitted, in sample",
              "lomo": "(c) fitted, model left out", "interp": "(d) vidur, held-out tokens",
              "rule": "(e) spec rule, GPU left out"}
    methods = [m for m in METHODS if not np.isnan(pred[m]).all()]  # rule needs 2+ GPUs
    fig, axes = plt.subplots(2, len(methods), figsize=(3.9 * len(methods), 7.6),
                             squeeze=False)
    lo, hi = np.nanmin(meas) * 0.7, np.nanmax(meas) * 1.4
    line = np.array([lo, hi])
    for col, m in enumerate(methods):
        top, bottom = axes[0][col], axes[1][col]
        for gpu in gpus:
            sel = (gpu_of == gpu) & ~np.isnan(pred[m])
            label = f"{gpu} ({_mape(pred[m][sel], meas[sel]):.1%})"
            shown = np.flatnonzero(sel)[::max(1, int(sel.sum()) // PLOT_POINTS)]
            top.scatter(meas[shown], pred[m][shown], s=3, alpha=0.35, label=label,
                        rasterized=True)
            bottom.scatter(tokens[shown], 100 * (pred[m][shown] / meas[shown] - 1), s=3,
                           alpha=0.35, rasterized=True)
        top.plot(line, line, color="black", lw=0.8)
        top.fill_between(line, line * 0.9, line * 1.1, color="grey", alpha=0.2, lw=0)
        top.set(xscale="log", yscale="log", xlim=(lo, hi), ylim=(lo, hi),
                xlabel="measured non-attention forward (ms)", ylabel="predicted (ms)")
        top.set_title(f"{titles[m]}: {_mape(pred[m], meas):.1%}", fontsize=9)
        top.grid(alpha=0.3, lw=0.3)
        top.legend(fontsize=7, markerscale=3, loc="upper left")
        bottom.axhline(0, color="black", lw=0.8)
        bottom.axhspan(-10, 10, color="grey", alpha=0.2, lw=0)
        bottom.set(xscale="log", ylim=(-60, 60), xlabel="tokens per forward",
                   ylabel="error (%)")
        bottom.grid(alpha=0.3, lw=0.3)
    return _save(fig, path, "VIDUR operator profiles: predicted vs measured")

"""`dsd awc train`: fit the WC-DNN (PyTorch, CPU) on an oracle-labelled dataset.

Targets are soft: p(gamma) ~ exp(-regret(gamma) / temperature) with regret(gamma) =
1 - J(gamma) / max J over the scenario's candidates. Near-ties between windows (common:
the objective is often flat around its peak) then cost little, while a gamma that loses
10% is strongly pushed down - the loss follows regret rather than hard label accuracy.

Split: by scenario (never by row, which would leak a scenario into validation), stratified
by (dataset, hardware) so every mix is in every split. Early stopping on validation regret.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import torch
from torch import nn

from dsd.errors import DataError
from dsd.policies.awc import FEATURE_NAMES, WcDnnWeights, floor_std


@dataclass
class TrainConfig:
    hidden: int = 16
    blocks: int = 1
    epochs: int = 80
    patience: int = 10
    batch_size: int = 512
    lr: float = 3e-3
    weight_decay: float = 1e-4
    temperature: float = 0.02
    val_frac: float = 0.15
    test_frac: float = 0.15
    seed: int = 0


@dataclass
class Split:
    x: np.ndarray  # (n, n_features) raw features
    obj: np.ndarray  # (n, n_gammas) objective of each candidate gamma in the row's scenario
    oracle: np.ndarray  # (n,) index of the oracle gamma
    sids: np.ndarray

    def regret(self) -> np.ndarray:
        best = self.obj.max(axis=1, keepdims=True)
        return 1.0 - self.obj / np.where(best > 0, best, 1.0)


@dataclass
class TrainReport:
    gammas: tuple[int, ...]
    rows: dict[str, int]
    scenarios: dict[str, int]
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    epochs_run: int = 0
    best_epoch: int = 0

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=2)


def load_dataset(path: str | Path) -> tuple[Any, tuple[int, ...]]:
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such dataset (make one with `dsd awc dataset`)")
    table = pq.read_table(path).to_pandas()
    gammas = tuple(sorted(int(c[5:]) for c in table.columns if c.startswith("obj_g")))
    missing = [c for c in ("sid", "dataset", "hardware", *FEATURE_NAMES) if c not in table]
    if missing or not gammas:
        raise DataError(f"{path}: not an AWC dataset (missing columns {missing or 'obj_g*'})")
    return table, gammas


def split_by_scenario(df: Any, cfg: TrainConfig) -> dict[str, list[str]]:
    """Scenario ids per split, stratified by (dataset, hardware)."""
    rng = random.Random(cfg.seed)
    out: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    strata = df.groupby(["dataset", "hardware"])["sid"].unique()
    for sids in strata:
        sids = sorted(sids)
        rng.shuffle(sids)
        n = len(sids)
        n_val = max(1, round(cfg.val_frac * n)) if n >= 3 else 0
        n_test = max(1, round(cfg.test_frac * n)) if n >= 3 else 0
        out["val"] += sids[:n_val]
        out["test"] += sids[n_val:n_val + n_test]
        out["train"] += sids[n_val + n_test:]
    return out


def _make_split(df: Any, sids: list[str], gammas: tuple[int, ...]) -> Split:
    part = df[df["sid"].isin(set(sids))]
    obj = part[[f"obj_g{g}" for g in gammas]].to_numpy(float)
    return Split(part[list(FEATURE_NAMES)].to_numpy(float), obj, obj.argmax(axis=1),
                 part["sid"].to_numpy())


def evaluate(predicted: np.ndarray, split: Split, gammas: tuple[int, ...]) -> dict[str, float]:
    """Accuracy vs the oracle, mean regret, and the regret of static baselines."""
    regret = split.regret()
    rows = np.arange(len(predicted))
    out = {
        "accuracy": float((predicted == split.oracle).mean()),
        "within_one": float((np.abs(predicted - split.oracle) <= 1).mean()),
        "mean_regret": float(regret[rows, predicted].mean()),
        "p95_regret": float(np.quantile(regret[rows, predicted], 0.95)),
    }
    if 4 in gammas:
        out["static4_regret"] = float(regret[:, gammas.index(4)].mean())
    out["best_single_static_regret"] = float(regret.mean(axis=0).min())
    return out


def train(dataset: str | Path, out: str | Path, cfg: TrainConfig | None = None,
          log: Any = print) -> TrainReport:
    """Train, early-stop on validation regret, write weights (.npz) and a report (.json)."""
    cfg = cfg or TrainConfig()
    torch.manual_seed(cfg.seed)
    df, gammas = load_dataset(dataset)
    sids = split_by_scenario(df, cfg)
    splits = {k: _make_split(df, v, gammas) for k, v in sids.items()}
    tr = splits["train"]
    if len(tr.x) == 0:
        raise DataError(f"{dataset}: no training rows")
    # Floored std (FEATURE_STD_FLOOR): a feature nearly constant in training must not
    # turn a plausible but unseen value at inference into an enormous z-score.
    mean, std = tr.x.mean(axis=0), floor_std(tr.x.std(axis=0))

    def tensor(split: Split) -> Any:
        return torch.tensor((split.x - mean) / std, dtype=torch.float32)

    def soft(split: Split) -> Any:
        logits = -split.regret() / cfg.temperature
        return torch.softmax(torch.tensor(logits, dtype=torch.float32), dim=1)

    model = _WcDnnModule(len(FEATURE_NAMES), cfg.hidden, cfg.blocks, len(gammas))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    x_tr, y_tr = tensor(tr), soft(tr)
    val = splits["val"] if len(splits["val"].x) else tr
    stop_on = "val regret" if val is not tr else "train regret"
    if val is tr:  # say so, rather than print the training regret as "val regret"
        log("warning: no validation or test scenarios (each (dataset, hardware) group needs "
            ">= 3 scenarios to split): early stopping uses the training regret and no "
            "held-out metrics are reported")
    x_val = tensor(val)
    best = (float("inf"), 0, None)
    report = TrainReport(gammas, {k: len(s.x) for k, s in splits.items()},
                         {k: len(v) for k, v in sids.items()})
    gen = torch.Generator().manual_seed(cfg.seed)
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        perm = torch.randperm(len(x_tr), generator=gen)
        for i in range(0, len(perm), cfg.batch_size):
            idx = perm[i:i + cfg.batch_size]
            loss = nn.functional.cross_entropy(model(x_tr[idx]), y_tr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            pred = model(x_val).argmax(dim=1).numpy()
        val_regret = evaluate(pred, val, gammas)["mean_regret"]
        if val_regret < best[0] - 1e-6:
            best = (val_regret, epoch, {k: v.clone() for k, v in model.state_dict().items()})
        if epoch % 10 == 0 or epoch == 1:
            log(f"epoch {epoch:3d}  loss {loss.item():.4f}  {stop_on} {val_regret:.4f}")
        report.epochs_run = epoch
        if epoch - best[1] >= cfg.patience:
            break
    model.load_state_dict(best[2])  # type: ignore[arg-type]
    report.best_epoch = best[1]
    model.eval()
    with torch.no_grad():
        for name, split in splits.items():
            if len(split.x):
                pred = model(tensor(split)).argmax(dim=1).numpy()
                report.metrics[name] = evaluate(pred, split, gammas)
    weights = model.export(mean, std, gammas)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    weights.save(out, report=np.array(report.to_json()))
    out.with_suffix(".json").write_text(report.to_json() + "\n")
    return report


class _WcDnnModule(nn.Module):
    """The WC-DNN: SiLU MLP with residual blocks; mirrors `dsd.policies.awc.WcDnn`."""

    def __init__(self, n_in: int, hidden: int, blocks: int, n_out: int) -> None:
        super().__init__()
        self.inp = nn.Linear(n_in, hidden)
        self.blocks = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(blocks))
        self.out = nn.Linear(hidden, n_out)

    def forward(self, x: Any) -> Any:
        silu = nn.functional.silu
        h = silu(self.inp(x))
        for blk in self.blocks:
            h = h + silu(blk(h))
        return self.out(h)

    def export(self, mean: np.ndarray, std: np.ndarray, gammas: tuple[int, ...]) -> WcDnnWeights:
        def arr(t: Any) -> np.ndarray:
            return t.detach().numpy().astype(np.float64)

        return WcDnnWeights(
            mean.astype(np.float64), std.astype(np.float64), arr(self.inp.weight),
            arr(self.inp.bias), [arr(b.weight) for b in self.blocks],
            [arr(b.bias) for b in self.blocks], arr(self.out.weight), arr(self.out.bias),
            tuple(gammas), has_fused=False)

"""AWC: adaptive window control with a learned WC-DNN, registered as window policy "awc".

It shares the WINDOWS registry and the WindowState/RoundResult protocol with the baseline
controllers of policies/window.py, one concept per file. Training is in `dsd.awc`
(PyTorch); this module is pure Python + NumPy (only to read the .npz, imported when weights
are loaded), so the simulator and the runtime run the very same object without torch.

Per decision: 7 raw features from WindowState -> WC-DNN logits over the allowed gammas ->
argmax -> stabilizer (clamp, EMA smoothing, quantization to allowed gammas) -> gamma. An
optional "fused" output drives a mode recommendation through hysteresis with minimum dwell.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import dataclass
from importlib import resources
from operator import mul
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dsd.errors import ConfigError
from dsd.policies.window import WINDOWS, RoundResult, WindowController, WindowState

if TYPE_CHECKING:
    import numpy as np

# The 5 AWC feature groups as 7 raw numbers; times in ms and log1p-compressed because RTTs
# span 1-100+ ms and a linear scale would let the largest dominate the normalization.
FEATURE_NAMES = ("queue_util", "acceptance_ema", "log_rtt_mean_ms", "log_rtt_std_ms",
                 "log_tpot_mean_ms", "log_tpot_std_ms", "prev_gamma")
N_FEATURES = len(FEATURE_NAMES)

# Floor on each feature's normalization std (same order as FEATURE_NAMES), in the feature's
# own units: 0.05 for the fractions (queue, acceptance), 0.1 for the log1p-ms times (a ~10%
# change of a time), 0.5 for prev_gamma (half a window step). A feature that was (near)
# constant in training - e.g. RTT jitter when every training link was jitter-free - would
# otherwise get std ~ 0 and turn an ordinary value at inference into a z-score of millions.
# `dsd awc train` writes floored stds; `WcDnn` applies the same floor to any weights file.
FEATURE_STD_FLOOR = (0.05, 0.05, 0.1, 0.1, 0.1, 0.1, 0.5)


def floor_std(std: np.ndarray) -> np.ndarray:
    """`std` raised to FEATURE_STD_FLOOR per feature (to a tiny epsilon if the layout differs)."""
    import numpy as np

    std = np.asarray(std, dtype=float)
    floor = np.asarray(FEATURE_STD_FLOOR) if std.shape == (N_FEATURES,) else 1e-6
    return np.maximum(np.nan_to_num(std, nan=1.0), floor)


def raw_features(state: WindowState) -> list[float]:
    """The network's input, identical in the simulator and the runtime."""
    return [
        state.queue_util,
        state.acceptance_ema,
        math.log1p(state.rtt_mean_s * 1000.0),
        math.log1p(state.rtt_std_s * 1000.0),
        math.log1p(state.tpot_mean_s * 1000.0),
        math.log1p(state.tpot_std_s * 1000.0),
        float(state.prev_gamma),
    ]


@dataclass
class WcDnnWeights:
    """Residual MLP: h = silu(W1 z + b1); h = h + silu(W2 h + b2) per block; logits = W3 h + b3.
    z = (x - mean) / std. Outputs: one logit per allowed gamma, plus "fused" if `has_fused`."""

    mean: np.ndarray
    std: np.ndarray
    w_in: np.ndarray  # (hidden, n_features)
    b_in: np.ndarray
    w_blocks: list[np.ndarray]  # each (hidden, hidden)
    b_blocks: list[np.ndarray]
    w_out: np.ndarray  # (n_out, hidden)
    b_out: np.ndarray
    gammas: tuple[int, ...]
    has_fused: bool = False

    @classmethod
    def load(cls, path: str | Path | None = None) -> WcDnnWeights:
        """Read a weights file written by `dsd awc train`; None -> the packaged default."""
        import numpy as np

        try:
            if path is None:
                with resources.files("dsd.awc").joinpath("default_weights.npz").open("rb") as fh:
                    return cls._from_npz(np.load(fh))
            return cls._from_npz(np.load(Path(path)))
        except (OSError, KeyError, ValueError) as exc:
            where = path or "packaged default_weights.npz"
            raise ConfigError(f"policies.window.weights: cannot read AWC weights {where}: "
                              f"{exc}") from None

    @classmethod
    def _from_npz(cls, data: Any) -> WcDnnWeights:
        n_blocks = int(data["n_blocks"])
        return cls(
            data["mean"].astype(float), data["std"].astype(float),
            data["w_in"].astype(float), data["b_in"].astype(float),
            [data[f"w_block{i}"].astype(float) for i in range(n_blocks)],
            [data[f"b_block{i}"].astype(float) for i in range(n_blocks)],
            data["w_out"].astype(float), data["b_out"].astype(float),
            tuple(int(g) for g in data["gammas"]), bool(data["has_fused"]),
        )

    def save(self, path: str | Path, **extra: Any) -> None:
        import numpy as np

        arrays = {f"w_block{i}": w for i, w in enumerate(self.w_blocks)}
        arrays.update({f"b_block{i}": b for i, b in enumerate(self.b_blocks)})
        np.savez(path, mean=self.mean, std=self.std, w_in=self.w_in, b_in=self.b_in,
                 w_out=self.w_out, b_out=self.b_out, gammas=np.array(self.gammas),
                 has_fused=np.array(self.has_fused), n_blocks=np.array(len(self.w_blocks)),
                 **arrays, **extra)


class WcDnn:
    """Inference without torch, rewritten for speed on a 7-input, ~16-wide network:

    - the input normalization and the first bias fold into one matrix applied to [x, 1];
    - silu(p) = p * sigmoid(p) = u * (1 + tanh(u)) with u = p / 2, so hidden layers store
      W/2 and b/2 and need no exp() (which also cannot overflow, unlike 1 / (1 + exp(-p)));
    - only the argmax is needed, so no softmax.

    Backends: `compiled` (default) generates one straight-line Python function with the
    weights as literal constants - no loops, lists or array calls, just ~200 float
    multiply-adds; `numpy` runs a handful of array ops per layer (each costs ~1 us of call
    overhead on 8-16 element arrays); `python` loops over float lists. `dsd awc bench`
    reports all three."""

    def __init__(self, weights: WcDnnWeights, backend: str = "compiled") -> None:
        if backend not in BACKENDS:
            raise ConfigError(f"policies.window.backend: unknown {backend!r} "
                              f"({', '.join(BACKENDS)})")
        import numpy as np

        self.weights = weights
        self.gammas = weights.gammas
        std = floor_std(weights.std)  # a near-constant training feature cannot blow up
        w_in = weights.w_in / std  # W (x - m)/s + b = (W/s) x + (b - (W/s) m)
        b_in = weights.b_in - w_in @ weights.mean
        first = np.ascontiguousarray(0.5 * np.hstack([w_in, b_in[:, None]]))
        blocks = [(np.ascontiguousarray(0.5 * w), 0.5 * b)
                  for w, b in zip(weights.w_blocks, weights.b_blocks, strict=True)]
        self._np = (first, blocks, np.ascontiguousarray(weights.w_out), weights.b_out.copy())
        self._x = np.ones(first.shape[1])  # input buffer; the last slot stays 1 (the bias)
        self._tanh = np.tanh
        self._py = (first.tolist(), [(w.tolist(), b.tolist()) for w, b in blocks],
                    weights.w_out.tolist(), weights.b_out.tolist())
        self.logits = {"python": self._logits_py, "numpy": self._logits_np,
                       "compiled": _compile(*self._py)}[backend]

    def _logits_py(self, x: list[float]) -> list[float]:
        first, blocks, w_out, b_out = self._py
        x = [*x, 1.0]
        tanh = math.tanh
        h = []
        for row in first:
            u = sum(map(mul, row, x))
            h.append(u * (1.0 + tanh(u)))
        for w, bias in blocks:
            nxt = []
            for hi, row, b in zip(h, w, bias, strict=True):
                u = sum(map(mul, row, h)) + b
                nxt.append(hi + u * (1.0 + tanh(u)))
            h = nxt
        return [sum(map(mul, row, h)) + b for row, b in zip(w_out, b_out, strict=True)]

    def _logits_np(self, x: list[float]) -> list[float]:
        first, blocks, w_out, b_out = self._np
        buf = self._x
        buf[:-1] = x
        tanh = self._tanh
        u = first @ buf
        h = u * (1.0 + tanh(u))
        for w, b in blocks:
            u = w @ h + b
            h = h + u * (1.0 + tanh(u))
        return (w_out @ h + b_out).tolist()

    def predict_gamma(self, x: list[float]) -> int:
        logits = self.logits(x)
        return self.gammas[max(range(len(self.gammas)), key=logits.__getitem__)]


BACKENDS = ("compiled", "numpy", "python")


def _compile(first: list[list[float]], blocks: list[tuple[list[list[float]], list[float]]],
             w_out: list[list[float]], b_out: list[float]) -> Any:
    """Straight-line source for the network (same math as `WcDnn._logits_py`), built from
    float literals only (repr round-trips exactly), then exec'd once at load time."""

    def dot(row: list[float], names: list[str], bias: float | None = None) -> str:
        terms = [f"{w!r}*{n}" for w, n in zip(row, names, strict=True)]
        if bias is not None:
            terms.append(repr(bias))
        return " + ".join(terms).replace("+ -", "- ")

    n_in = len(first[0]) - 1
    xs = [f"x{i}" for i in range(n_in)]
    src = ["def logits(x):", f"    {', '.join(xs)}, = x"]
    h = []
    for j, row in enumerate(first):
        src += [f"    u = {dot(row[:-1], xs, row[-1])}", f"    a{j} = u * (1.0 + tanh(u))"]
        h.append(f"a{j}")
    for k, (w, bias) in enumerate(blocks):
        nxt = []
        for j, (row, b) in enumerate(zip(w, bias, strict=True)):
            src += [f"    u = {dot(row, h, b)}", f"    b{k}_{j} = {h[j]} + u * (1.0 + tanh(u))"]
            nxt.append(f"b{k}_{j}")
        h = nxt
    src.append("    return [" + ", ".join(dot(row, h, b) for row, b in
                                        zip(w_out, b_out, strict=True)) + "]")
    namespace: dict[str, Any] = {"tanh": math.tanh}
    exec(compile("\n".join(src), "<wc-dnn>", "exec"), namespace)  # noqa: S102 - our own floats
    return namespace["logits"]


class GammaStabilizer:
    """Clamp -> EMA smoothing -> quantization to the allowed gammas. Smoothing works on the
    continuous level so one noisy prediction moves gamma by a fraction of the jump."""

    def __init__(self, allowed: tuple[int, ...], gamma_min: int, gamma_max: int,
                 smoothing: float) -> None:
        if not 0.0 < smoothing <= 1.0:
            raise ConfigError("policies.window.smoothing must be in (0, 1]")
        if gamma_min > gamma_max:
            raise ConfigError("policies.window: gamma_min must be <= gamma_max")
        self.allowed = tuple(sorted(g for g in allowed if gamma_min <= g <= gamma_max)) \
            or (gamma_min,)
        self.gamma_min, self.gamma_max = gamma_min, gamma_max
        self.smoothing = smoothing
        self.level: float | None = None

    def reset(self, gamma: float) -> None:
        self.level = float(min(max(gamma, self.gamma_min), self.gamma_max))

    def update(self, raw: float) -> int:
        raw = min(max(raw, self.gamma_min), self.gamma_max)
        if self.level is None:
            self.level = raw
        else:
            self.level += self.smoothing * (raw - self.level)
        return self.quantize(self.level)

    def quantize(self, level: float) -> int:
        """Nearest allowed gamma; a tie goes to the smaller window (less waste)."""
        allowed = self.allowed
        i = bisect_left(allowed, level)
        if i == 0:
            return allowed[0]
        if i == len(allowed):
            return allowed[-1]
        lo, hi = allowed[i - 1], allowed[i]
        return lo if level - lo <= hi - level else hi


class ModeHysteresis:
    """Fused <-> distributed switch with two thresholds and a minimum dwell (in decisions),
    so a score hovering at one threshold cannot make the session flap between modes."""

    def __init__(self, enter_fused: float = 1.0, exit_fused: float = -1.0,
                 min_dwell: int = 8, initial: str = "distributed") -> None:
        if exit_fused > enter_fused:
            raise ConfigError("policies.window: exit_fused must be <= enter_fused")
        self.enter, self.exit, self.min_dwell = enter_fused, exit_fused, min_dwell
        self.mode = initial
        self.dwell = 0

    def update(self, fused_score: float) -> str:
        self.dwell += 1
        if self.dwell >= self.min_dwell:
            if self.mode == "distributed" and fused_score >= self.enter:
                self.mode, self.dwell = "fused", 0
            elif self.mode == "fused" and fused_score <= self.exit:
                self.mode, self.dwell = "distributed", 0
        return self.mode


class AwcController:
    """One session's AWC. `mode` is a recommendation for the engine (the simulator's mode is
    global and ignores it; a runtime may act on it)."""

    def __init__(self, net: WcDnn, stabilizer: GammaStabilizer, hysteresis: ModeHysteresis,
                 cold_start_gamma: int) -> None:
        self.net, self.stab, self.hyst = net, stabilizer, hysteresis
        self.cold_start = cold_start_gamma
        self.mode = hysteresis.mode
        self.has_fused = net.weights.has_fused

    def next_gamma(self, state: WindowState) -> int:
        if state.prev_gamma <= 0:  # no verdict yet: the features are still empty
            self.stab.reset(self.cold_start)
            return self.stab.quantize(self.cold_start)
        logits = self.net.logits(raw_features(state))
        gammas = self.net.gammas
        k = len(gammas)
        best = max(range(k), key=logits.__getitem__)
        if self.has_fused:
            self.mode = self.hyst.update(logits[k] - logits[best])
        return self.stab.update(gammas[best])

    def observe(self, result: RoundResult) -> None:
        pass  # the engine keeps the feature statistics in WindowState


@WINDOWS.register("awc")
class AwcWindow:
    """Learned window control. Params: `weights` (.npz from `dsd awc train`; default: the
    packaged one), `gamma_min`/`gamma_max` (clamp), `smoothing` (EMA weight of the newest
    prediction, 1 = none), `cold_start_gamma`, `backend` (compiled | numpy | python), and the mode
    hysteresis `enter_fused`/`exit_fused`/`min_dwell`."""

    def __init__(self, weights: str | None = None, gamma_min: int = 1, gamma_max: int = 8,
                 smoothing: float = 0.5, cold_start_gamma: int = 4, backend: str = "compiled",
                 enter_fused: float = 1.0, exit_fused: float = -1.0, min_dwell: int = 8) -> None:
        self.fixed_gamma = None  # per-round decisions: the engine must call next_gamma
        self.net = WcDnn(WcDnnWeights.load(weights), backend)
        self._stab_args = (self.net.gammas, gamma_min, gamma_max, smoothing)
        GammaStabilizer(*self._stab_args)  # validate once, at config time
        self._hyst_args = (enter_fused, exit_fused, min_dwell)
        ModeHysteresis(*self._hyst_args)
        self.cold_start = cold_start_gamma

    def __call__(self) -> WindowController:
        return AwcController(self.net, GammaStabilizer(*self._stab_args),
                             ModeHysteresis(*self._hyst_args), self.cold_start)

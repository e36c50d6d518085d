"""VIDUR-format operator profiles: reading a folder, mapping it to catalog names.

A VIDUR profile folder (microsoft/vidur `data/profiling/`, MIT) holds

    compute/<gpu>/<org>/<model>/mlp.csv        per-layer non-attention operators
    compute/<gpu>/<org>/<model>/attention.csv  attention kernels (optional)
    network/<node>/all_reduce.csv              collectives (send_recv.csv is not used)

Any of these may also be gzip-compressed (`mlp.csv.gz`), as dsd's shipped subset is.
Times are milliseconds; only the `time_stats.<op>.median` columns are read.

Folder names map to the catalog as follows: `<gpu>` is a catalog GPU name or alias
compared without case (`a100` -> A100); `<org>/<model>` matches when `<model>` (or
`<org>-<model>`) is a catalog model name or alias (`meta-llama/Llama-2-70b-hf` ->
llama-2-70b through its alias `llama-2-70b-hf`); a node `<gpu>_dgx` (all GPUs of one
server on NVSwitch) is preferred over `<gpu>_pairwise_nvlink` for all-reduces.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from dsd.catalog.gpu import GpuSpec
from dsd.catalog.model import ModelSpec
from dsd.errors import DataError
from dsd.perf.ops import VIDUR_OPS

if TYPE_CHECKING:
    import numpy as np

SHAPE_COLUMNS = ("n_head", "n_kv_head", "n_embd", "n_expanded_embd", "use_gated_mlp",
                 "num_tokens", "num_tensor_parallel_workers")


def builtin_profiles() -> Path:
    """The subset of VIDUR's profiles shipped with dsd (medians only; LICENSE inside)."""
    return Path(str(resources.files("dsd.catalog").joinpath("vidur")))


def _norm(name: str) -> str:
    return name.strip().lower().replace("_", "-").replace(" ", "-")


def open_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a CSV or CSV.gz; a broken file is a one-line DataError."""
    try:
        raw = path.read_bytes()
        text = gzip.decompress(raw).decode() if path.suffix == ".gz" else raw.decode()
        rows = list(csv.reader(io.StringIO(text)))
    except (OSError, UnicodeDecodeError, EOFError, gzip.BadGzipFile, csv.Error) as exc:
        raise DataError(f"{path}: not a readable CSV ({exc})") from None
    if not rows:
        raise DataError(f"{path}: empty file")
    return rows[0], rows[1:]


def columns(path: Path, header: list[str], wanted: Iterable[str]) -> dict[str, int]:
    index = {name: i for i, name in enumerate(header)}
    missing = [c for c in wanted if c not in index]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}")
    return index


def number(path: Path, line: int, column: str, value: str) -> float:
    try:
        out = float(value)
    except ValueError:
        raise DataError(f"{path}:{line}: non-numeric {column} {value!r}") from None
    if not math.isfinite(out) or out < 0:
        raise DataError(f"{path}:{line}: {column} must be a finite number >= 0, got {value}")
    return out


@dataclass
class MlpProfile:
    """One model's mlp.csv: per tensor-parallel degree, the sorted token counts and per
    operator the median milliseconds (duplicate rows of a point are merged by median)."""

    path: Path
    n_head: int
    n_kv_head: int
    n_embd: int
    n_expanded_embd: int
    gated: bool
    ops: tuple[str, ...]  # the operators this file profiles
    tokens: dict[int, np.ndarray] = field(default_factory=dict)
    ms: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)

    def tps(self) -> list[int]:
        return sorted(self.tokens)

    def check_tp(self, tp: int) -> None:
        if tp not in self.tokens:
            have = ", ".join(map(str, self.tps()))
            raise DataError(f"{self.path} has no rows for tp={tp} (tp there: {have})")

    def op_ms(self, op: str, tp: int, tokens: float | np.ndarray) -> float | np.ndarray:
        """An operator's per-layer milliseconds at `tokens`, linear between profiled
        token counts, clamped below the first and extrapolated along the last segment."""
        import numpy as np

        self.check_tp(tp)
        xs, ys = self.tokens[tp], self.ms[tp][op]
        out = np.interp(tokens, xs, ys)
        if len(xs) > 1:
            slope = (ys[-1] - ys[-2]) / (xs[-1] - xs[-2])
            out = np.where(tokens > xs[-1], ys[-1] + slope * (tokens - xs[-1]), out)
        return out


def read_mlp(path: Path) -> MlpProfile:
    import numpy as np

    header, rows = open_csv(path)
    ops = tuple(op for op in VIDUR_OPS if f"time_stats.{op}.median" in header)
    if not ops:
        raise DataError(f"{path}: no time_stats.<op>.median column of any VIDUR operator")
    index = columns(path, header, (*SHAPE_COLUMNS, *(f"time_stats.{op}.median" for op in ops)))
    points: dict[tuple[int, int], list[list[float]]] = {}
    shape = None
    for line, row in enumerate(rows, start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise DataError(f"{path}:{line}: {len(row)} fields, the header has {len(header)}")
        this = tuple(row[index[c]] for c in SHAPE_COLUMNS[:5])
        if shape is None:
            shape = this
        elif this != shape:
            raise DataError(f"{path}:{line}: model shape changes within the file")
        tokens = number(path, line, "num_tokens", row[index["num_tokens"]])
        tp = number(path, line, "num_tensor_parallel_workers",
                     row[index["num_tensor_parallel_workers"]])
        if tokens < 1 or tp < 1:
            raise DataError(f"{path}:{line}: num_tokens and tp must be >= 1")
        values = [number(path, line, f"{op} median", row[index[f"time_stats.{op}.median"]])
                  for op in ops]
        points.setdefault((int(tp), int(tokens)), []).append(values)
    if shape is None:
        raise DataError(f"{path}: no data rows")
    try:
        n_head, n_kv, n_embd, n_exp = (int(float(v)) for v in shape[:4])
    except ValueError:
        raise DataError(f"{path}:2: non-numeric model shape") from None
    profile = MlpProfile(path, n_head, n_kv, n_embd, n_exp, shape[4].strip().lower() == "true",
                         ops)
    for tp in sorted({tp for tp, _ in points}):
        tokens = sorted(t for t2, t in points if t2 == tp)
        medians = np.array([np.median(points[tp, t], axis=0) for t in tokens])
        profile.tokens[tp] = np.array(tokens, dtype=float)
        profile.ms[tp] = {op: medians[:, i] for i, op in enumerate(ops)}
    return profile


@dataclass
class AllReduceProfile:
    """Intra-node all-reduce medians per GPU count: message bytes -> milliseconds, made
    non-decreasing in size (isotonic regression: small-message timings are noisy)."""

    path: Path
    sizes: dict[int, np.ndarray]
    ms: dict[int, np.ndarray]

    def tps(self) -> list[int]:
        return sorted(self.sizes)

    def allreduce_ms(self, tp: int, message_bytes: float) -> float:
        import numpy as np

        if tp not in self.sizes:
            have = ", ".join(map(str, self.tps()))
            raise DataError(f"{self.path} has no intra-node all-reduce over {tp} GPUs "
                            f"(GPU counts there: {have})")
        xs, ys = self.sizes[tp], self.ms[tp]
        if message_bytes > xs[-1]:  # bandwidth-bound beyond the largest message
            return float(ys[-1] * message_bytes / xs[-1])
        return float(np.interp(message_bytes, xs, ys))


def read_allreduce(path: Path) -> AllReduceProfile:
    import numpy as np
    from scipy.optimize import isotonic_regression

    header, rows = open_csv(path)
    wanted = ("time_stats.all_reduce.median", "num_workers", "size", "devices_per_node")
    index = columns(path, header, wanted)
    points: dict[int, dict[float, list[float]]] = {}
    for line, row in enumerate(rows, start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise DataError(f"{path}:{line}: {len(row)} fields, the header has {len(header)}")
        n, per_node, size, ms = (number(path, line, c, row[index[c]]) for c in
                                 ("num_workers", "devices_per_node", "size",
                                  "time_stats.all_reduce.median"))
        if n == per_node:  # tensor parallelism stays inside one server
            points.setdefault(int(n), {}).setdefault(size, []).append(ms)
    if not points:
        raise DataError(f"{path}: no intra-node rows (num_workers == devices_per_node)")
    sizes, times = {}, {}
    for n, by_size in points.items():
        xs = np.array(sorted(by_size))
        ys = np.array([np.median(by_size[x]) for x in xs])
        sizes[n], times[n] = xs, isotonic_regression(ys).x
    return AllReduceProfile(path, sizes, times)


def _find(folder: Path, stem: str) -> Path | None:
    for name in (stem, f"{stem}.gz"):
        if (folder / name).is_file():
            return folder / name
    return None


class VidurFolder:
    """A VIDUR profile folder: what it holds, and its files parsed on demand (cached)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser()
        compute = self.root / "compute"
        if not compute.is_dir():
            raise DataError(f"{self.root}: not a VIDUR profile folder (no compute/ inside)")
        self.models: dict[str, dict[str, Path]] = {}  # gpu folder -> "org/model" -> dir
        for gpu_dir in sorted(p for p in compute.iterdir() if p.is_dir()):
            found = {f"{d.parent.name}/{d.name}": d
                     for d in sorted(gpu_dir.glob("*/*")) if _find(d, "mlp.csv")}
            if found:
                self.models[gpu_dir.name] = found
        if not self.models:
            raise DataError(f"{compute}: no <gpu>/<org>/<model>/mlp.csv inside")
        network = self.root / "network"
        self.nodes = sorted(p.name for p in network.iterdir() if p.is_dir()) \
            if network.is_dir() else []

    def gpu_folder(self, gpu: GpuSpec) -> str:
        names = {_norm(n) for n in (gpu.name, *gpu.aliases)}
        for folder in self.models:
            if _norm(folder) in names:
                return folder
        raise DataError(f"{self.root}/compute has no profiles of GPU {gpu.name!r} "
                        f"(GPUs there: {', '.join(self.models)})")

    def model_key(self, gpu_folder: str, model: ModelSpec) -> str:
        names = {_norm(n) for n in (model.name, *model.aliases)}
        for key in self.models[gpu_folder]:
            org, name = key.split("/")
            if _norm(name) in names or _norm(f"{org}-{name}") in names:
                return key
        raise DataError(f"{self.root}/compute/{gpu_folder} has no profile of model "
                        f"{model.name!r} (models there: {', '.join(self.models[gpu_folder])})")

    def mlp(self, gpu_folder: str, key: str) -> MlpProfile:
        path = _find(self.models[gpu_folder][key], "mlp.csv")
        assert path is not None  # listed only when present
        return _read_mlp_cached(path, path.stat().st_mtime)

    def attention(self, gpu_folder: str, key: str, tp: int) -> AttentionProfile | None:
        """The model's attention.csv at `tp`, or None when the folder has none."""
        path = _find(self.models[gpu_folder][key], "attention.csv")
        return read_attention(path, tp) if path is not None else None

    def allreduce(self, gpu_folder: str) -> AllReduceProfile | None:
        """The all-reduce profile of the GPU's node (`<gpu>_dgx` first), or None."""
        prefix = gpu_folder.lower() + "_"
        nodes = sorted((n for n in self.nodes if n.lower().startswith(prefix)),
                       key=lambda n: (not n.lower().endswith("_dgx"), n))
        for node in nodes:
            path = _find(self.root / "network" / node, "all_reduce.csv")
            if path is not None:
                return _read_allreduce_cached(path, path.stat().st_mtime)
        return None


@lru_cache(maxsize=64)
def _read_mlp_cached(path: Path, mtime: float) -> MlpProfile:
    return read_mlp(path)


@lru_cache(maxsize=16)
def _read_allreduce_cached(path: Path, mtime: float) -> AllReduceProfile:
    return read_allreduce(path)


Grid = list[tuple[float, "np.ndarray", "np.ndarray"]]  # (x, sorted ys, values at ys)


@dataclass
class AttentionProfile:
    """VIDUR attention.csv at one tensor-parallel degree, milliseconds per layer:
    decode rows (is_prefill false) over batch_size x kv_cache_size (attn_decode), prefill
    rows over kv_cache_size x prefill_chunk_size (attn_prefill)."""

    path: Path
    decode: Grid
    prefill: Grid

    def decode_ms(self, batch: float, mean_kv: float) -> float:
        return _interp2(self.decode, batch, mean_kv)

    def prefill_ms(self, cached: float, chunk: float) -> float:
        return _interp2(self.prefill, cached, chunk)


def read_attention(path: Path, tp: int) -> AttentionProfile:
    header, rows = open_csv(path)
    index = columns(path, header, ("batch_size", "kv_cache_size", "prefill_chunk_size",
                                   "is_prefill", "num_tensor_parallel_workers"))
    decode: dict[float, dict[float, float]] = {}
    prefill: dict[float, dict[float, float]] = {}
    for line, row in enumerate(rows, start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise DataError(f"{path}:{line}: {len(row)} fields, the header has {len(header)}")
        if number(path, line, "tp", row[index["num_tensor_parallel_workers"]]) != tp:
            continue
        is_prefill = row[index["is_prefill"]].strip().lower() == "true"
        col = f"time_stats.{'attn_prefill' if is_prefill else 'attn_decode'}.median"
        if col not in header:
            raise DataError(f"{path}: missing column(s) {col}")
        kv = number(path, line, "kv_cache_size", row[index["kv_cache_size"]])
        ms = number(path, line, col, row[header.index(col)])
        if is_prefill:
            chunk = number(path, line, "prefill_chunk_size", row[index["prefill_chunk_size"]])
            prefill.setdefault(kv, {})[chunk] = ms
        else:
            batch = number(path, line, "batch_size", row[index["batch_size"]])
            decode.setdefault(batch, {})[kv] = ms
    if not decode or not prefill:
        raise DataError(f"{path}: needs decode and prefill rows at tp={tp}")
    return AttentionProfile(path, _grid(decode), _grid(prefill))


def _grid(points: dict[float, dict[float, float]]) -> Grid:
    import numpy as np

    return [(x, np.array(sorted(ys)), np.array([ys[y] for y in sorted(ys)]))
            for x, ys in sorted(points.items())]


def _interp2(grid: Grid, x: float, y: float) -> float:
    """Linear in y within each profiled x, then linear in x (clamped at x's ends; beyond
    the largest y the value scales in proportion, as attention work does)."""
    import numpy as np

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

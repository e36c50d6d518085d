"""Measured latency profiles and the table predictor that interpolates them.

A profile is a table of forward-step latencies measured on real hardware (`dsd profile`),
one row per (model, op, batch_size, context_len, query_tokens) grid point:

    model, op, batch_size, context_len, query_tokens, latency_ms, p10_ms, p90_ms, repeats

`op` is `prefill` (context_len 0, query_tokens = prompt length), `decode` (query 1) or
`verify` (query gamma+1). Metadata (device, dtype, torch version, date, cpu, threads, ...)
rides along: `# key: value` lines at the top of a CSV, schema metadata in Parquet.

`TablePredictor(path).bind(hw)` picks the rows of `hw.model` and returns a `TableStep`:
a step with context 0 reads the prefill grid (batch, prompt length), any other step the
decode/verify grid (batch, query tokens per sequence, mean context per sequence), by
multilinear interpolation. A ragged batch (`max_kv` above the mean) reads the grid at the
longest sequence's context: the runtime pads every cache to the longest. Below an axis'
smallest point the value is clamped (latency only grows with each axis, and these are tiny
inputs). Above the grid the roofline takes over, scaled to agree with the table at the
grid's edge so the prediction stays continuous; that is warned about once per deployment.
A model's `idle_wake.<model>` metadata line (perf/idle_wake.py) becomes the step's `wake`:
what a step pays on top when its executor sat idle before it.
"""

from __future__ import annotations

import csv
import warnings
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dsd.errors import DataError
from dsd.perf.base import Deployment
from dsd.perf.bound import BoundPredictor
from dsd.perf.idle_wake import IdleWake, wake_from_metadata
from dsd.perf.memory import MIN_KV_TOKENS
from dsd.perf.registry import register_predictor
from dsd.perf.roofline import RooflineStep

PROFILE_FORMAT = "dsd-profile/1"
PROFILE_COLUMNS = ("model", "op", "batch_size", "context_len", "query_tokens", "latency_ms",
                   "p10_ms", "p90_ms", "repeats")
PROFILE_OPS = ("prefill", "decode", "verify")
_INT_COLUMNS = ("batch_size", "context_len", "query_tokens", "repeats")
_FLOAT_COLUMNS = ("latency_ms", "p10_ms", "p90_ms")
_CACHE_MAX = 65536  # memoized step shapes per deployment; the sim repeats shapes a lot


class TableWarning(RuntimeWarning):
    """A table prediction left the measured grid, or the profile does not fit the pool."""


@dataclass
class Profile:
    """Rows (dicts keyed by PROFILE_COLUMNS) plus free-form string metadata."""

    rows: list[dict[str, Any]]
    metadata: dict[str, str] = field(default_factory=dict)
    source: str = "<memory>"

    def models(self) -> list[str]:
        return sorted({r["model"] for r in self.rows})

    def rows_for(self, model: str) -> list[dict[str, Any]]:
        key = _norm(model)
        return [r for r in self.rows if _norm(r["model"]) == key]


def _norm(name: str) -> str:
    """Model names match ignoring case, '_' vs '-' and an '-instruct' suffix."""
    key = name.strip().lower().replace("_", "-").replace(" ", "-")
    return key.removesuffix("-instruct")


# ---------------------------------------------------------------------------- file format


def write_profile(path: str | Path, rows: Iterable[Mapping[str, Any]],
                  metadata: Mapping[str, Any]) -> Path:
    """Write a profile as CSV (default) or Parquet (by suffix) with its metadata."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"format": PROFILE_FORMAT, **{k: str(v) for k, v in metadata.items()}}
    rows = [dict(r) for r in rows]
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table({c: [r[c] for r in rows] for c in PROFILE_COLUMNS})
        table = table.replace_schema_metadata({k: v for k, v in meta.items()})
        pq.write_table(table, str(path))
        return path
    with path.open("w", newline="") as fh:
        for key, value in meta.items():
            fh.write(f"# {key}: {' '.join(value.split())}\n")
        writer = csv.DictWriter(fh, fieldnames=PROFILE_COLUMNS, extrasaction="ignore",
                                lineterminator="\n")
        writer.writeheader()
        for r in rows:
            writer.writerow({c: (f"{r[c]:.4f}" if c in _FLOAT_COLUMNS else r[c])
                             for c in PROFILE_COLUMNS})
    return path


def read_profile(path: str | Path) -> Profile:
    """Read and validate a profile file; errors name the file and the row."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"latency profile {path} does not exist (write one with `dsd profile`)")
    meta: dict[str, str] = {}
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(str(path))
        raw = table.schema.metadata or {}
        meta = {k.decode(): v.decode() for k, v in raw.items() if not k.startswith(b"pandas")}
        missing = [c for c in PROFILE_COLUMNS if c not in table.column_names]
        if missing:
            raise DataError(f"{path}: missing column(s) {', '.join(missing)}")
        raw_rows = table.select(list(PROFILE_COLUMNS)).to_pylist()
        first_line = 1
    else:
        lines = path.read_text().splitlines()
        body_start = 0
        for i, line in enumerate(lines):
            if not line.startswith("#"):
                body_start = i
                break
            key, _, value = line[1:].partition(":")
            meta[key.strip()] = value.strip()
        else:
            body_start = len(lines)
        reader = csv.DictReader(lines[body_start:])
        missing = [c for c in PROFILE_COLUMNS if c not in (reader.fieldnames or ())]
        if missing:
            raise DataError(f"{path}: missing column(s) {', '.join(missing)}")
        raw_rows = list(reader)
        first_line = body_start + 2
    rows = [_parse_row(r, path, first_line + i) for i, r in enumerate(raw_rows)]
    if not rows:
        raise DataError(f"{path}: the profile has no rows")
    return Profile(rows, meta, str(path))


def _parse_row(raw: Mapping[str, Any], path: Path, line: int) -> dict[str, Any]:
    where = f"{path}:{line}"
    row: dict[str, Any] = {"model": str(raw["model"]), "op": str(raw["op"])}
    if row["op"] not in PROFILE_OPS:
        raise DataError(f"{where}: unknown op {row['op']!r} (known: {', '.join(PROFILE_OPS)})")
    try:
        for c in _INT_COLUMNS:
            row[c] = int(raw[c])
        for c in _FLOAT_COLUMNS:
            row[c] = float(raw[c])
    except (TypeError, ValueError):
        raise DataError(f"{where}: non-numeric value in a numeric column") from None
    if row["batch_size"] < 1 or row["query_tokens"] < 1 or row["context_len"] < 0:
        raise DataError(f"{where}: batch_size and query_tokens must be >= 1, context_len >= 0")
    if not row["latency_ms"] > 0:
        raise DataError(f"{where}: latency_ms must be > 0")
    if row["op"] != "prefill" and row["context_len"] < 1:
        raise DataError(f"{where}: {row['op']} rows need context_len >= 1")
    return row


_PROFILES: dict[tuple[str, float], Profile] = {}


def load_profile(path: str | Path) -> Profile:
    """read_profile, cached by (resolved path, mtime): many pools share one file."""
    p = Path(path).expanduser().resolve()
    try:
        key = (str(p), p.stat().st_mtime)
    except OSError:
        return read_profile(p)  # raises the one-line "does not exist"
    prof = _PROFILES.get(key)
    if prof is None:
        prof = _PROFILES[key] = read_profile(p)
    return prof


# ---------------------------------------------------------------------------- grids


class Grid:
    """Values on a full rectilinear grid, multilinear interpolation by hand (no numpy in
    the hot path: a few bisects and at most 8 corner reads beat array dispatch here)."""

    def __init__(self, axes: Sequence[Sequence[float]], values: dict[tuple, float]) -> None:
        self.axes = [tuple(float(v) for v in a) for a in axes]
        self.values = values
        self.upper = [a[-1] for a in self.axes]

    @classmethod
    def from_rows(cls, rows: list[dict[str, Any]], keys: Sequence[str], what: str) -> Grid:
        axes = [sorted({r[k] for r in rows}) for k in keys]
        values: dict[tuple, float] = {}
        for r in rows:
            values[tuple(float(r[k]) for k in keys)] = r["latency_ms"] / 1000.0
        expected = 1
        for a in axes:
            expected *= len(a)
        if len(values) != expected:
            missing = _first_missing(axes, values)
            raise DataError(f"{what}: not a full grid over {', '.join(keys)} "
                            f"(missing e.g. {dict(zip(keys, missing, strict=True))})")
        return cls(axes, values)

    def outside(self, point: Sequence[float]) -> bool:
        return any(x > hi for x, hi in zip(point, self.upper, strict=True))

    def clamp(self, point: Sequence[float]) -> tuple[float, ...]:
        return tuple(min(x, hi) for x, hi in zip(point, self.upper, strict=True))

    def __call__(self, point: Sequence[float]) -> float:
        """Interpolated value; points below an axis clamp to its first value."""
        corners: list[tuple[tuple[float, ...], float]] = [((), 1.0)]
        for x, axis in zip(point, self.axes, strict=True):
            i = bisect_right(axis, x) - 1
            if i < 0:
                lo, hi, w = axis[0], axis[0], 0.0
            elif i >= len(axis) - 1:
                lo, hi, w = axis[-1], axis[-1], 0.0
            else:
                lo, hi = axis[i], axis[i + 1]
                w = (x - lo) / (hi - lo)
            nxt = []
            for key, weight in corners:
                nxt.append(((*key, lo), weight * (1.0 - w)))
                if w > 0.0:
                    nxt.append(((*key, hi), weight * w))
            corners = nxt
        values = self.values
        return sum(values[k] * wt for k, wt in corners)


def _first_missing(axes: list[list], values: dict[tuple, float]) -> tuple:
    from itertools import product

    for combo in product(*axes):
        if tuple(float(v) for v in combo) not in values:
            return combo
    return ()


# ---------------------------------------------------------------------------- predictor


class TableStep:
    """A profile bound to one deployment: the simulator's per-step cost function."""

    def __init__(self, hw: Deployment, rows: list[dict[str, Any]], source: str,
                 wake: IdleWake | None = None) -> None:
        self.hw = hw
        self.source = source
        self.wake = wake  # what a step pays after its executor idled (perf/idle_wake.py)
        self.roofline = RooflineStep(hw)
        prefill = [r for r in rows if r["op"] == "prefill"]
        steps = [r for r in rows if r["op"] != "prefill"]
        label = f"{source} ({hw.model.name})"
        self.prefill = (Grid.from_rows(prefill, ("batch_size", "query_tokens"),
                                       f"{label} prefill") if prefill else None)
        self.step = (Grid.from_rows(steps, ("batch_size", "query_tokens", "context_len"),
                                    f"{label} decode/verify") if steps else None)
        if self.prefill is None and self.step is None:
            raise DataError(f"{label}: no rows")
        self._cache: dict[tuple[int, int, int], float] = {}
        self.fallbacks = 0
        self._warned = False

    def step_s(
        self, num_seqs: int, query_tokens: int, context_tokens: int, attn_pairs: int,
        max_kv: int = 0,
    ) -> float:
        if max_kv and context_tokens and num_seqs > 1:
            context_tokens = self._padded_context(num_seqs, query_tokens, context_tokens,
                                                  max_kv)
        key = (num_seqs, query_tokens, context_tokens)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        value = self._compute(num_seqs, query_tokens, context_tokens)
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[key] = value
        return value

    def _padded_context(self, n: int, query: int, context: int, max_kv: int) -> int:
        """A profile measures the runtime's padded batches: every cache is left-padded to
        the longest, so a ragged decode/verify batch costs the uniform batch at the longest
        context (prefills run one by one and are not padded)."""
        q_each = query / n
        if self.step is not None:
            q_each = min(q_each, self.step.upper[1])  # prefill surplus rides separately
        longest = max_kv - q_each
        return round(longest * n) if longest * n > context else context

    def _compute(self, n: int, query: int, context: int) -> float:
        n = max(n, 1)
        q, c = query / n, context / n
        if context <= 0:
            return self._lookup(self.prefill, (n, q), n, query, 0)
        step = self.step
        if step is not None and q > step.upper[1] and self.prefill is not None:
            # A mixed batch (prefills with verifies) has more query tokens per sequence than
            # any verify point: charge the verify-shaped part from the step grid and the
            # surplus as one batch-1 prefill (a CPU engine is compute-bound: one ragged
            # forward costs about the sum of its parts).
            qmax = step.upper[1]
            surplus = query - n * qmax
            return (self._lookup(step, (n, qmax, c), n, int(n * qmax), context)
                    + self._lookup(self.prefill, (1, surplus), 1, int(surplus), 0))
        return self._lookup(step, (n, q, c), n, query, context)

    def _lookup(self, grid: Grid | None, point: tuple[float, ...], n: int, query: int,
                context: int) -> float:
        if grid is None:
            self._warn("the profile has no rows for this kind of step")
            return self._roof(n, query, context)
        if not grid.outside(point):
            return grid(point)
        self._warn(f"a step {point} is outside the measured grid (max {tuple(grid.upper)})")
        # Scale the roofline to the table at the grid's edge: continuous, and the roofline
        # contributes only the growth beyond the measured range.
        edge = grid.clamp(point)
        n_e = max(1, round(edge[0]))
        q_e = max(1, round(edge[1] * n_e))
        c_e = round(edge[2] * n_e) if len(edge) > 2 else 0
        ratio = self._roof(n, query, context) / self._roof(n_e, q_e, c_e)
        return grid(edge) * ratio

    def _roof(self, n: int, query: int, context: int) -> float:
        pairs = query * (context // max(n, 1) + query) if context else query * (query + 1) // 2
        return self.roofline.step_s(n, query, context, pairs)

    def _warn(self, why: str) -> None:
        self.fallbacks += 1
        if not self._warned:
            self._warned = True
            msg = (f"latency table {self.source} for {self.hw.model.name}: {why}; using the "
                   "roofline model scaled to the table there (warned once)")
            warnings.warn(msg, TableWarning, stacklevel=4)


@register_predictor("table")
class TablePredictor(BoundPredictor):
    """Interpolates a measured profile (`latency: {type: table, path: PROFILE}`).

    A deployment whose model has no rows in the profile falls back to the roofline with a
    warning, so a target pool's profile need not cover the fused-mode draft model.
    """

    def __init__(self, path: str | Path, reserve_frac: float = 0.1,
                 min_kv_tokens: int = MIN_KV_TOKENS) -> None:
        super().__init__(reserve_frac, min_kv_tokens)
        self.path = str(path)

    def _make(self, hw: Deployment) -> TableStep | RooflineStep:
        profile = load_profile(self.path)
        rows = []
        for name in (hw.model.name, *hw.model.aliases):
            rows = profile.rows_for(name)
            if rows:
                break
        if not rows:
            _warn_once(f"latency table {self.path} has no rows for model {hw.model.name!r} "
                       f"(it has: {', '.join(profile.models())}); using the roofline model")
            return RooflineStep(hw)
        device = profile.metadata.get("device", "")
        if device and (device == "cpu") != (hw.gpu.name.lower() == "cpu"):
            _warn_once(f"latency table {self.path} was measured on {device!r} but the pool "
                       f"runs on {hw.gpu.name!r}")
        tp = profile.metadata.get("tp", "1")
        if tp.isdigit() and int(tp) != hw.tp:
            _warn_once(f"latency table {self.path} was measured at tp={tp}, the pool uses "
                       f"tp={hw.tp}")
        return TableStep(hw, rows, self.path,
                         wake_from_metadata(profile.metadata, rows[0]["model"], self.path))


_WARNED: set[str] = set()


def _warn_once(msg: str) -> None:
    if msg not in _WARNED:
        _WARNED.add(msg)
        warnings.warn(msg, TableWarning, stacklevel=4)

"""Measure a model's forward-step latencies on the local hardware (`dsd profile`).

Every point runs exactly the runtime's code path, the engine seam
(`dsd.runtime.backends.Backend`, HF transformers or llama.cpp): prefill = ONE
`forward_batch` of b fresh sessions with `query_tokens` prompt tokens each (logits of the
last position only, as the verifier's prefill steps); decode and verify = `forward_batch`
over b sessions with `context_len` cached tokens each and `query_tokens` new tokens, the
ragged step the verifier runs. Caches are cropped back after each repeat (prefill sessions
released), so every repeat sees the same shape. Warm-up repeats are dropped; the median,
p10 and p90 are kept.
"""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dsd.calibrate.grid import ProfileGrid
from dsd.errors import DsdError
from dsd.perf.idle_wake import IDLE_MAX_S, IDLE_MIN_S, META_PREFIX, WAKE_GAPS_MS, IdleWake

WAKE_ROUNDS = 3  # timings of the wake-up curve per gap and pass


@dataclass
class ModelToProfile:
    """A model directory (or GGUF) and the catalog name its rows are stored under."""

    path: str
    name: str | None = None
    gguf_file: str | None = None
    grid: ProfileGrid | None = None  # overrides the profile's default grid


def configure_cpu(threads: int | None = None, cpus: Iterable[int] | None = None) -> None:
    """Pin torch's intra-op threads and this process' CPU affinity. Profiles and the runs
    they predict must use the same settings: on 2 cores a 1-thread model is ~1.6x slower.
    (A llama.cpp model runs on as many threads as the CPUs this process may use.)"""
    import torch

    if cpus is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, set(cpus))
    if threads is not None:
        torch.set_num_threads(threads)


def environment(device: str) -> dict[str, str]:
    """Hardware and software metadata recorded with a profile."""
    import torch
    import transformers

    import dsd

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    meta = {
        "device": device,
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "threads": str(torch.get_num_threads()),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        **_llama_version(),
        "python": platform.python_version(),
        "dsd": dsd.__version__,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "tp": "1",
        # Other processes skew timings on a shared machine: keep the evidence.
        "loadavg_1m": f"{os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "",
    }
    if hasattr(os, "sched_getaffinity"):
        meta["cpus"] = ",".join(str(c) for c in sorted(os.sched_getaffinity(0)))
    if device.startswith("cuda") and torch.cuda.is_available():
        meta["gpu"] = torch.cuda.get_device_name()
    return meta


def _llama_version() -> dict[str, str]:
    try:
        from importlib.metadata import version

        return {"llama_cpp_python": version("llama_cpp_python")}
    except Exception:  # noqa: BLE001 - not installed
        return {}


class Profiler:
    """Times forward steps of one loaded runner."""

    def __init__(self, runner: Any, warmup: int = 2, repeats: int = 5, seed: int = 0) -> None:
        import torch

        self.runner = runner
        self.warmup = warmup
        self.repeats = max(1, repeats)
        self.gen = torch.Generator().manual_seed(seed)
        # Stay clear of special tokens at the top of small vocabularies.
        self.vocab = max(2, runner.vocab_size - 3)
        device = getattr(runner, "device", None)
        self.cuda = device is not None and device.type == "cuda"
        self._last_s = 0.0

    def _ids(self, n: int) -> list[int]:
        import torch

        return torch.randint(0, self.vocab, (n,), generator=self.gen).tolist()

    def _time(self, fn: Callable[[], None], reset: Callable[[], None]) -> list[float]:
        import torch

        samples = []
        for i in range(self.warmup + self.repeats):
            reset()
            # Idle as long as the last step took (2-50 ms) before each timed step, as a
            # serving loop does while it waits on the network or its peer. On a shared
            # machine the scheduler preempts a process that never sleeps far more often
            # than one that does, so a busy-looping profiler would overstate step costs.
            time.sleep(min(max(self._last_s, IDLE_MIN_S), IDLE_MAX_S))
            if self.cuda:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            fn()
            if self.cuda:
                torch.cuda.synchronize()
            self._last_s = time.perf_counter() - t0
            if i >= self.warmup:
                samples.append(self._last_s * 1000.0)
        return samples

    def after_gaps(self, fn: Callable[[], None], reset: Callable[[], None],
                   gaps_ms: Iterable[float]) -> dict[float, float]:
        """One timing of `fn` per gap: run it, sleep `gap` ms, time it again (ms)."""
        out = {}
        for gap in gaps_ms:
            reset()
            fn()  # the previous step, as a serving loop ran it
            reset()
            if gap:
                time.sleep(gap / 1000.0)
            t0 = time.perf_counter()
            fn()
            out[gap] = (time.perf_counter() - t0) * 1000.0
        return out

    def prefill(self, batch: int, prompt: int) -> list[float]:
        from dsd.runtime.backends import Step

        prompts = [self._ids(prompt) for _ in range(batch)]
        kvs: list[Any] = []

        def reset() -> None:
            for kv in kvs:
                kv.release()
            kvs[:] = [self.runner.new_kv() for _ in prompts]

        def run() -> None:
            self.runner.forward_batch([Step(kv, ids, 1) for kv, ids in zip(kvs, prompts,
                                                                             strict=True)])

        try:
            return self._time(run, reset)
        finally:
            for kv in kvs:
                kv.release()

    def step(self, kvs: list[Any], context: int, query: int, burst: int = 1) -> list[float]:
        """One decode/verify step over the given caches (each holding `context` tokens).
        `burst` > 1 (one sequence, one token): that many decode steps back to back, as a
        draft model drafts its window, timed per step."""
        run, reset, steps = self._step_job(kvs, context, query, burst)
        return [ms / steps for ms in self._time(run, reset)]

    def step_after_gaps(self, kvs: list[Any], context: int, query: int, burst: int,
                        gaps_ms: Iterable[float]) -> dict[float, float]:
        """`step`'s whole job (a burst, for a one-token decode with `burst` > 1) timed once
        after each idle gap, in ms."""
        run, reset, _ = self._step_job(kvs, context, query, burst)
        return self.after_gaps(run, reset, gaps_ms)

    def _step_job(self, kvs: list[Any], context: int, query: int,
                  burst: int) -> tuple[Callable[[], None], Callable[[], None], int]:
        """(run, reset, forward steps in it) of the job `step` times."""
        def reset() -> None:
            for kv in kvs:
                kv.crop(context)

        if burst > 1 and len(kvs) == 1 and query == 1:
            kv, ids = kvs[0], self._ids(burst)

            def run() -> None:
                for tok in ids:
                    self.runner.forward(kv, [tok], keep=1)

            return run, reset, burst
        items = [(kv, self._ids(query)) for kv in kvs]
        return (lambda: self.runner.forward_batch(items)), reset, 1

    def caches(self, batch: int, context: int) -> list[Any]:
        """`batch` fresh caches holding `context` random tokens each."""
        kvs = [self.runner.new_kv() for _ in range(batch)]
        for kv in kvs:
            self.runner.forward(kv, self._ids(context), keep=1)
        return kvs


class GridSession:
    """Round-robin passes over a set of points; samples accumulate across passes, so a
    caller can spread passes over time (sim-vs-real interleaves them with its runs).

    The caches of each context length, and the prefills, live in engines of their own
    (`Backend.isolated`): in llama.cpp's shared KV pool every query attends over all used
    cells, so caches kept for other points would slow each measured step.

    With `wake`, each pass also times the idle wake-up curve (perf/idle_wake.py) on the
    cheapest verify (else decode) point: `wake_metadata()` gives it for the profile."""

    def __init__(self, runner: Any, name: str, points: Iterable[tuple[str, int, int, int]],
                 decode_burst: int = 1, wake: bool = True):
        self.name = name
        # A draft model's decode steps come in bursts (its window): time them that way.
        self.decode_burst = decode_burst
        self.points = list(points)
        limit = runner.max_context
        too_long = [p for p in self.points if p[2] + p[3] > limit]
        if too_long:
            op, b, c, q = too_long[0]
            raise DsdError(f"profile point {op} context={c} query={q} exceeds the model's "
                           f"{limit}-token context; lower --contexts/--prompts")
        need: dict[int, int] = {}
        query: dict[int, int] = {}
        for op, b, c, q in self.points:
            if op != "prefill":
                need[c] = max(b, need.get(c, 0))
                query[c] = max(q, decode_burst, query.get(c, 0))
        prefills = [(b, q) for op, b, _, q in self.points if op == "prefill"] or [(1, 1)]
        pb, pq = max(b for b, _ in prefills), max(q for _, q in prefills)
        self.engines = [runner]  # those made here are closed by close()
        self.prof = self._profiler(runner, pb * pq, pb, pq)
        self.profs: dict[int, Profiler] = {}
        self.caches: dict[int, list[Any]] = {}
        for c, b in sorted(need.items()):
            self.profs[c] = self._profiler(runner, b * (c + query[c]), b, max(c, query[c]))
            self.caches[c] = self.profs[c].caches(b, c)
        self.samples: dict[tuple[str, int, int, int], list[float]] = {
            p: [] for p in self.points}
        # The idle wake-up curve is timed on the cheapest verify (else decode) job:
        # smallest batch, then context, then query.
        steps = [p for p in self.points if p[0] != "prefill"]
        verifies = [p for p in steps if p[0] == "verify"]
        self.wake_point = (min(verifies or steps, key=lambda p: (p[1], p[2], p[3]),
                               default=None) if wake else None)
        self.wake_samples: dict[float, list[float]] = {g: [] for g in WAKE_GAPS_MS}

    def _profiler(self, runner: Any, tokens: int, sessions: int, longest: int) -> Profiler:
        engine = runner.isolated(tokens + 64, sessions, max(longest, sessions, 32))
        if engine is not runner:
            self.engines.append(engine)
        return Profiler(engine, warmup=0, repeats=1)

    def close(self) -> None:
        """Free the engines made for profiling (not the runner given)."""
        for engine in self.engines[1:]:
            engine.close()
        self.engines = self.engines[:1]

    def run_pass(self, keep: bool = True) -> None:
        """Time every point once (`keep=False`: a warm-up pass)."""
        for point in self.points:
            op, b, c, q = point
            took = (self.prof.prefill(b, q) if op == "prefill"
                    else self.profs[c].step(self.caches[c][:b], c, q,
                                            self.decode_burst if op == "decode" else 1))
            if keep:
                self.samples[point] += took
        if self.wake_point is not None:
            op, b, c, q = self.wake_point
            burst = self.decode_burst if op == "decode" else 1
            for _ in range(WAKE_ROUNDS):
                took_after = self.profs[c].step_after_gaps(self.caches[c][:b], c, q, burst,
                                                           WAKE_GAPS_MS)
                if keep:
                    for gap, ms in took_after.items():
                        self.wake_samples[gap].append(ms)

    def wake(self) -> IdleWake | None:
        """The measured idle wake-up curve (medians, extra over back to back)."""
        if not all(self.wake_samples.values()):
            return None
        med = {g: statistics.median(v) for g, v in self.wake_samples.items()}
        base = med[0.0]
        return IdleWake([(g / 1000.0, max(0.0, ms - base) / 1000.0) for g, ms in med.items()])

    def wake_metadata(self) -> dict[str, str]:
        """`{idle_wake.<model>: curve}` for the profile's metadata (empty if unmeasured)."""
        wake = self.wake()
        return {META_PREFIX + self.name: wake.format()} if wake is not None else {}

    def rows(self, stat: str = "median") -> list[dict[str, Any]]:
        return [_row(self.name, *p, self.samples[p], stat) for p in self.points
                if self.samples[p]]


def profile_model(
    runner: Any,
    name: str,
    grid: ProfileGrid,
    warmup: int = 2,
    repeats: int = 5,
    points: Iterable[tuple[str, int, int, int]] | None = None,
    progress: Callable[[str], None] | None = None,
    stat: str = "median",
    meta: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Measure every grid point (or the given points) of one runner; returns profile rows
    (and puts its idle wake-up curve into `meta`, when given).

    Repeats go round-robin over the points (one timing of each point per pass) rather than
    all repeats of one point back to back: a burst of load from another process then
    perturbs one sample of many points instead of every sample of a few, and the table
    stays smooth across the grid.
    """
    session = GridSession(runner, name, points if points is not None else grid.points(),
                          wake=meta is not None)
    total = warmup + max(1, repeats)
    for rep in range(total):
        session.run_pass(keep=rep >= warmup)
        if progress:
            progress(f"{name}: pass {rep + 1}/{total} over {len(session.points)} points"
                     + (" (warm-up)" if rep < warmup else ""))
    rows = session.rows(stat)
    if meta is not None:
        meta.update(session.wake_metadata())
    session.close()
    if progress:
        for r in rows:
            progress(f"{name} {r['op']:7s} batch={r['batch_size']:<3d} "
                     f"context={r['context_len']:<5d} query={r['query_tokens']:<5d} "
                     f"{r['latency_ms']:9.2f} ms")
    return rows


STATS = ("median", "mean")


def _row(model: str, op: str, b: int, c: int, q: int, samples: list[float],
         stat: str = "median") -> dict[str, Any]:
    ordered = sorted(samples)
    center = statistics.fmean(ordered) if stat == "mean" else statistics.median(ordered)
    return {
        "model": model, "op": op, "batch_size": b, "context_len": c, "query_tokens": q,
        "latency_ms": center,
        "p10_ms": _quantile(ordered, 0.1), "p90_ms": _quantile(ordered, 0.9),
        "repeats": len(samples),
    }


def _quantile(ordered: list[float], p: float) -> float:
    """Linear-interpolated quantile of sorted samples."""
    if len(ordered) == 1:
        return ordered[0]
    pos = p * (len(ordered) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def load_runner(spec: ModelToProfile, device: str, dtype: str = "auto",
                backend: str = "auto", serving: tuple[int, int] = (0, 0)) -> tuple[Any, str]:
    """Load through the runtime's engine seam; returns (backend, row name). A .gguf file
    runs on llama.cpp unless `backend="hf"` (then transformers dequantizes it), sized for
    `serving` = (sessions, KV tokens) when the process also serves beside its profile."""
    from dsd.runtime.backends import load_backend, resolve_backend

    path = model_path(spec)
    kind = resolve_backend(path, backend)
    if kind == "llamacpp":
        import torch

        threads = _threads()
        torch.set_num_threads(1)  # torch only samples; llama.cpp's threads do the work
        from dsd.runtime.backends.llamacpp import MAX_SEQUENCES

        # Profiling runs in engines of its own (GridSession): this one only serves.
        runner = load_backend(path, kind, n_threads=threads, name=spec.name,
                              max_sessions=min(MAX_SEQUENCES, max(1, serving[0])),
                              kv_tokens=max(512, serving[1]))
    else:
        runner = load_backend(path, kind, device=device, dtype=dtype, name=spec.name)
    return runner, row_name(spec)


def model_path(spec: ModelToProfile) -> Path:
    path = Path(spec.path).expanduser()
    return path / spec.gguf_file if spec.gguf_file else path


def row_name(spec: ModelToProfile) -> str:
    """The model name a profile's rows are stored under."""
    return spec.name or model_path(spec).resolve().name.removesuffix(".gguf")


def _threads() -> int:
    """llama.cpp threads: torch's intra-op count (`configure_cpu`), at most the CPUs this
    process may use."""
    import torch

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1 << 10
    return max(1, min(torch.get_num_threads(), cpus))


def backend_dtype(runner: Any) -> str:
    """The weights' type as the profile metadata records it."""
    model = getattr(runner, "model", None)
    if model is not None and hasattr(model, "parameters"):
        return str(next(model.parameters()).dtype).removeprefix("torch.")
    return f"gguf ({getattr(runner, 'name', 'llama.cpp')})"


def run_profile(
    models: list[ModelToProfile],
    grid: ProfileGrid,
    out: str | Path,
    device: str = "cpu",
    dtype: str = "auto",
    warmup: int = 2,
    repeats: int = 5,
    progress: Callable[[str], None] | None = None,
    stat: str = "median",
    backend: str = "auto",
) -> Path:
    """Profile each model (one after another, so they never share the CPU) into one file."""
    from dsd.perf.table import write_profile

    rows: list[dict[str, Any]] = []
    meta: dict[str, str] = {}
    for spec in models:
        runner, name = load_runner(spec, device, dtype, backend)
        meta.setdefault("dtype", backend_dtype(runner))
        meta.setdefault("engine", _engine(runner))
        meta[f"model.{name}"] = str(spec.path) + (f" ({spec.gguf_file})" if spec.gguf_file
                                                   else "")
        rows += profile_model(runner, name, spec.grid or grid, warmup, repeats,
                              progress=progress, stat=stat, meta=meta)
        runner.close()
        del runner
    meta.update(environment(device if device != "auto" else _auto_device()))
    meta["warmup"] = str(warmup)
    meta["statistic"] = stat
    meta["columns"] = (f"latency_ms = {stat} of `repeats` timed forward steps; p10_ms/p90_ms "
                       "their 10th/90th percentiles; prefill at batch b = one ragged step "
                       "of b prompts (as the runtime's verifier runs them)")
    return write_profile(out, rows, meta)


def _engine(runner: Any) -> str:
    return "llama.cpp" if type(runner).__name__ == "LlamaCppBackend" else "transformers"


def _auto_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"

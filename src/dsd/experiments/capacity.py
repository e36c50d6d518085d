"""Capacity search: the largest load (edge devices, or arrival rate) whose SLO attainment
still reaches a target, by bracketing and then bisecting on the load.

Attainment is assumed to fall as load grows. Each step evaluates `width` candidate loads
at once (one per executor worker; plain bisection with width 1), each over all seeds, and
keeps the largest passing load below the smallest failing one. Requests left unfinished by
a run (`simulation.drain: false`) count as missing their SLO, which biases attainment low
by the share of requests in flight at the end: prefer draining runs (the default).

    from dsd.experiments.capacity import capacity_search
    res = capacity_search("examples/wisp.yaml", slo={"ttft_ms": 1000, "tpot_ms": 100})
    res.capacity, res.points
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from dsd.config import ScenarioConfig, load_config, to_builtins
from dsd.errors import ConfigError
from dsd.experiments.executors import executor_width
from dsd.experiments.registry import Executor, InProcessExecutor

Over = Literal["drafts", "rate"]


@dataclass
class CapacityResult:
    over: str
    capacity: float  # largest passing load (0 when even the smallest tried fails)
    attainment_target: float
    points: list[dict[str, Any]] = field(default_factory=list)  # every evaluated load
    at_capacity: dict[str, Any] = field(default_factory=dict)  # the passing point's metrics
    key: str = "cluster.drafts"  # the config key the load sets

    @property
    def unit(self) -> str:
        """What the capacity counts, e.g. "req/s per device (workload.arrival.rate_per_device)"."""
        if self.over == "drafts":
            return "edge devices"
        per = "per device" if self.key.endswith("rate_per_device") else "in total"
        return f"req/s {per} ({self.key})"


# Progress: (loads evaluated, loads expected in all or None while bracketing, lo, hi).
CapacityProgress = Callable[[int, int | None, float | None, float | None], None]


def scaled_config(config: dict[str, Any], over: Over, value: float) -> dict[str, Any]:
    """A copy of `config` (a plain dict) with its load set to `value`."""
    import copy

    cfg = copy.deepcopy(config)
    if over == "drafts":
        pools = cfg["cluster"]["drafts"]
        total = sum(p["count"] for p in pools)
        n = max(int(round(value)), len(pools))
        counts = [max(1, int(n * p["count"] / total)) for p in pools]
        counts[0] += n - sum(counts)  # rounding remainder to the first pool
        for p, c in zip(pools, counts, strict=True):
            p["count"] = max(1, c)
    else:
        arrival = cfg["workload"]["arrival"]
        if arrival.get("type") not in ("poisson", "gamma", "constant"):
            raise ConfigError("capacity --over rate needs an open-loop arrival "
                              "(workload.arrival.type poisson, gamma or constant)")
        key = "rate" if arrival.get("rate") is not None else "rate_per_device"
        arrival[key] = float(value)
    return cfg


def load_key(config: dict[str, Any], over: Over) -> str:
    """The config key `over` sets: the draft pools' counts, or the arrival rate's key."""
    if over == "drafts":
        return "cluster.drafts"
    arrival = config["workload"]["arrival"]
    return "workload.arrival." + ("rate" if arrival.get("rate") is not None
                                  else "rate_per_device")


def current_load(config: dict[str, Any], over: Over) -> float:
    if over == "drafts":
        return float(sum(p["count"] for p in config["cluster"]["drafts"]))
    arrival = config["workload"]["arrival"]
    value = arrival.get("rate") if arrival.get("rate") is not None else \
        arrival.get("rate_per_device")
    if value is None:
        raise ConfigError("capacity --over rate needs workload.arrival.rate or rate_per_device")
    return float(value)


def evaluate_point(point: tuple[dict[str, Any], str, float, int]) -> dict[str, Any]:
    """Run one (config, over, load, seed); top-level so process executors can pickle it."""
    from dsd.sim import simulate

    config, over, value, seed = point
    cfg = scaled_config(config, over, value)  # type: ignore[arg-type]
    cfg["seed"] = seed
    s = simulate(cfg, keep_requests=False).summary
    done = s["requests_completed"]
    unfinished = s["requests_unfinished"]
    attainment = (s["slo_attainment"] or 0.0) * done / max(done + unfinished, 1)
    return {"load": value, "seed": seed, "attainment": attainment,
            "throughput_rps": s["throughput_rps"], "goodput_rps": s["goodput_rps"],
            "goodput_tps": s["goodput_tps"], "ttft_ms_p99": s["ttft_ms_p99"],
            "tpot_ms_p50": s["tpot_ms_p50"], "tpot_ms_p99": s["tpot_ms_p99"],
            "target_utilization": s["target_utilization"]}


def _mean_rows(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out = dict(rows[0])
    for key, value in rows[0].items():
        if isinstance(value, float) and key != "load":
            vals = [r[key] for r in rows if r[key] is not None]
            out[key] = sum(vals) / len(vals) if vals else None
    out["seeds"] = len(rows)
    out.pop("seed", None)
    return out


def capacity_search(
    config: str | Path | dict[str, Any] | ScenarioConfig,
    *,
    slo: dict[str, float] | None = None,
    attainment: float = 0.9,
    over: Over = "drafts",
    lo: float | None = None,
    hi: float | None = None,
    tol: float = 0.05,
    seeds: tuple[int, ...] = (0,),
    executor: Executor | None = None,
    overrides: tuple[str, ...] = (),
    max_evals: int = 40,
    progress: CapacityProgress | None = None,
) -> CapacityResult:
    """Largest load meeting `slo` at `attainment`. Drafts stop at a gap of one device or
    `tol` relative, rates at `tol` relative. `lo`/`hi` seed the bracket (default: the
    config's own load, grown or shrunk by doubling). `progress` hears of every step."""
    if over not in ("drafts", "rate"):
        raise ConfigError(f"capacity: --over must be drafts or rate, got {over!r}")
    if not 0.0 < attainment <= 1.0:
        raise ConfigError("capacity: --attainment must be in (0, 1]")
    cfg = load_config(config, list(overrides))
    if slo:
        for key, value in slo.items():
            if key not in ("ttft_ms", "tpot_ms"):
                raise ConfigError(f"capacity: unknown SLO {key!r} (use ttft_ms, tpot_ms)")
            setattr(cfg.slo, key, float(value))
    base = to_builtins(cfg)
    ex = executor or InProcessExecutor()
    width = executor_width(ex)
    integer = over == "drafts"
    cache: dict[float, dict[str, Any]] = {}

    def run(values: list[float]) -> None:
        todo = [v for v in dict.fromkeys(values) if v not in cache]
        points = [(base, over, v, s) for v in todo for s in seeds]
        results = list(ex.map(evaluate_point, points))  # executors may return iterators
        for v in todo:
            cache[v] = _mean_rows([r for r in results if r["load"] == v])
            cache[v]["passes"] = cache[v]["attainment"] >= attainment
        if progress is not None:
            progress(len(cache), expected(), lo_v, hi_v)

    def expected() -> int | None:
        """Loads evaluated by the end: known once the bracket is (then `width` per step)."""
        if lo_v is None or not ok(lo_v) or ok(hi_v):
            return None
        goal = max(1.0, tol * lo_v) if integer else tol * hi_v
        gap = hi_v - lo_v
        steps = math.ceil(math.log(gap / goal) / math.log(width + 1)) if gap > goal else 0
        return min(max_evals, len(cache) + steps * width)

    def ok(v: float) -> bool:
        return bool(cache[v]["passes"])

    start = current_load(base, over)
    hi_v = hi if hi is not None else start
    lo_v: float | None = lo if lo is not None else None
    if integer:
        hi_v = float(max(1, round(hi_v)))
    run([hi_v] + ([lo_v] if lo_v is not None else []))
    # Bracket: grow hi until it fails, or shrink until something passes.
    while ok(hi_v) and len(cache) < max_evals:
        lo_v, hi_v = hi_v, float(hi_v * 2)
        run([hi_v])
    if lo_v is None or not ok(lo_v):
        probe = hi_v
        while len(cache) < max_evals:
            probe = max(1.0, math.floor(probe / 2)) if integer else probe / 2
            run([probe])
            if ok(probe):
                lo_v = probe
                break
            hi_v = probe
            if integer and probe <= 1 or not integer and probe < 1e-6:
                return _result(over, 0.0, attainment, cache, load_key(base, over))
    assert lo_v is not None
    # Narrow with `width` interior candidates per step.
    while len(cache) < max_evals:
        gap = hi_v - lo_v
        if (integer and gap <= max(1.0, tol * lo_v)) or (not integer and gap <= tol * hi_v):
            break
        cands = [lo_v + gap * (i + 1) / (width + 1) for i in range(width)]
        if integer:
            cands = sorted({float(round(c)) for c in cands} - {lo_v, hi_v})
            if not cands:
                break
        run(cands)
        for c in sorted(cands):
            if ok(c):
                lo_v = max(lo_v, c)
            else:
                hi_v = min(hi_v, c)
                break
    return _result(over, lo_v, attainment, cache, load_key(base, over))


def _result(over: str, capacity: float, target: float,
            cache: dict[float, dict[str, Any]], key: str) -> CapacityResult:
    points = [cache[v] for v in sorted(cache)]
    return CapacityResult(over, capacity, target, points, cache.get(capacity, {}), key)

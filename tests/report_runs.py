"""Run folders of every kind the HTML report reads, made small and fast for the report tests.

The simulator writes timeseries.parquet itself; `write_timeseries` writes a synthetic one
in the same format (t_s, series, entity, value) where a test needs known values."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from dsd.cli.bench import write_table
from dsd.cli.main import main

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "examples" / "quickstart.yaml")
SHORT = ["--set", "simulation.duration_s=30", "--set", "simulation.warmup_s=3", "--quiet"]


def write_timeseries(folder: Path, servers: int = 2, points: int = 60) -> None:
    t, series, entity, value = [], [], [], []
    for i in range(points):
        now = 30.0 * i / (points - 1)
        t.append(now), series.append("gamma"), entity.append(-1)
        value.append(3 + math.sin(now / 5))
        for s in range(servers):
            for name, v in (("batch_size", 2 + s + math.sin(now / 3 + s)),
                            ("queue_len", max(0.0, 3 * math.sin(now / 4 + s))),
                            ("kv_occupancy", 0.3 + 0.2 * s + 0.1 * math.sin(now / 6))):
                t.append(now), series.append(name), entity.append(s), value.append(v)
    pq.write_table(pa.table({"t_s": pa.array(t, pa.float64()),
                             "series": pa.array(series, pa.string()),
                             "entity": pa.array(entity, pa.int64()),
                             "value": pa.array(value, pa.float64())}),
                   folder / "timeseries.parquet")


def make_runs(base: Path) -> dict[str, tuple[Path, int]]:
    """Run folders by kind, with the number of charts each report must draw."""
    runs: dict[str, tuple[Path, int]] = {}
    sim = base / "simulation"
    assert main(["simulate", QUICK, *SHORT, "--out", str(sim)]) == 0
    assert (sim / "timeseries.parquet").exists()  # the simulator's own
    runs["simulation"] = (sim, 8)  # 3 CDFs, acceptance, gamma, 3 per-server series
    plain = base / "no-timeseries"
    assert main(["simulate", QUICK, *SHORT, "--out", str(plain)]) == 0
    (plain / "timeseries.parquet").unlink()  # e.g. a run folder from an older dsd
    runs["no-timeseries"] = (plain, 4)  # the time series become a note
    modes = base / "modes"
    assert main(["simulate", QUICK, *SHORT, "--modes", "distributed,cloud_only",
                 "--out", str(modes)]) == 0
    write_timeseries(modes / "cloud_only")  # one synthetic, one the simulator's
    runs["modes"] = (modes, 8)
    sweep = base / "sweep"
    spec = base / "sweep.yaml"
    spec.write_text(f"name: report-test\nbase: {QUICK}\n"
                    "set: {simulation.duration_s: 20, simulation.warmup_s: 2}\n"
                    "axes:\n  network.rtt_ms: [0, 60]\n  policies.window.gamma: [2, 4]\n")
    assert main(["sweep", str(spec), "--workers", "1", "--out", str(sweep), "--quiet"]) == 0
    runs["sweep"] = (sweep, 2 * 12)  # 2 axes x 12 metrics
    experiment = base / "experiment"
    experiment.mkdir()
    (experiment / "results.csv").write_text(
        "load,router,throughput_rps,tpot_ms_mean\nlow,jsq,1.5,46.6\nlow,random,1.46,47.1\n"
        "high,jsq,5.1,48.3\nhigh,random,4.9,49.0\n")
    (experiment / "summary.json").write_text(json.dumps({
        "experiment": "routing", "quick": True, "wall_time_s": 7.0, "drafts": 60,
        "best_router": {"low": "jsq", "high": "jsq"}, "plots": [], "notes": ["a note"],
        "axes": ["load", "router"], "table_columns": ["load", "router", "throughput_rps",
                                                      "tpot_ms_mean"]}))
    runs["experiment"] = (experiment, 2)
    bench = base / "bench-1"
    rows = [{"request_id": i, "device_id": 0, "target_id": 0, "mode": "distributed",
             "arrival_s": 0.5 * i, "prompt_tokens": 50, "output_tokens": 40 + i,
             "ttft_ms": 90.0 + 3 * i, "tpot_ms": 7.0 + 0.1 * i, "e2e_ms": 400.0 + 10 * i,
             "rounds": 12, "drafted_tokens": 48, "accepted_tokens": 30 + i % 5,
             "slo_met": i % 4 != 0} for i in range(12)]
    write_table(rows, bench / "requests.parquet")
    (bench / "requests.jsonl").write_text("".join(
        json.dumps({"request_id": r["request_id"], "rounds_log": [[4, 3]] * 12}) + "\n"
        for r in rows))
    runs["bench"] = (bench, 4)  # 3 CDFs and acceptance by position from the round logs
    return runs

"""Reading a run folder for the report: what kind of run it is and its data.

- a simulation (`dsd simulate`): summary.json, requests.parquet, config.yaml and, when the
  simulator wrote it, timeseries.parquet (long format: t_s, series, entity, value);
- a `--modes` comparison: comparison.csv and one simulation sub-folder per mode;
- a sweep (`dsd sweep`): results.parquet (point_id, seed, parameters..., status, error,
  metrics...) and sweep.yaml;
- an experiment (`dsd experiment`): summary.json (with "experiment"), results.csv, PNG plots;
- a runtime bench (`dsd bench runtime`): requests.parquet and requests.jsonl.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dsd.errors import DataError

TIMESERIES = "timeseries.parquet"


@dataclass
class Simulation:
    """One run: the flat summary and its tables (None when the folder lacks them)."""

    name: str
    folder: Path
    summary: dict[str, Any]
    requests: Any = None  # pyarrow.Table
    timeseries: Any = None  # pyarrow.Table (t_s, series, entity, value)


@dataclass
class RunFolder:
    kind: str  # simulation | modes | sweep | experiment | bench
    folder: Path
    title: str
    runs: list[Simulation] = field(default_factory=list)  # simulation, modes, bench
    results: list[dict[str, Any]] = field(default_factory=list)  # sweep / experiment rows
    params: list[str] = field(default_factory=list)  # sweep axes
    summary: dict[str, Any] = field(default_factory=dict)  # experiment headline figures
    plots: list[Path] = field(default_factory=list)  # experiment PNGs
    config_text: str = ""


def read_run_folder(folder: str | Path) -> RunFolder:
    """Detect the kind of run in `folder` and load it; DataError when it is none of them."""
    path = Path(folder)
    if not path.is_dir():
        raise DataError(f"{path}: no such run folder")
    if (path / "results.parquet").is_file():
        return _sweep(path)
    summary = _json(path / "summary.json")
    if summary is not None and "experiment" in summary:
        return _experiment(path, summary)
    if (path / "comparison.csv").is_file():
        return _modes(path)
    if summary is not None:
        run = _simulation(path, summary)
        name = summary.get("name") or path.name
        return RunFolder("simulation", path, f"dsd simulate: {name} ({run.name})", [run],
                         config_text=_text(path / "config.yaml"))
    if (path / "requests.parquet").is_file():
        return _bench(path)
    raise DataError(f"{path}: not a dsd run folder (no summary.json, results.parquet or "
                    "requests.parquet)")


def _simulation(path: Path, summary: dict[str, Any]) -> Simulation:
    return Simulation(str(summary.get("mode") or summary.get("name") or path.name), path,
                      summary, _parquet(path / "requests.parquet"), _parquet(path / TIMESERIES))


def _modes(path: Path) -> RunFolder:
    with (path / "comparison.csv").open(newline="") as fh:
        modes = [row.get("mode") for row in csv.DictReader(fh)]
    runs = []
    for mode in modes:
        summary = _json(path / str(mode) / "summary.json")
        if summary is None:
            raise DataError(f"{path / str(mode)}: mode folder without summary.json")
        runs.append(_simulation(path / str(mode), summary))
    name = runs[0].summary.get("name", path.name) if runs else path.name
    return RunFolder("modes", path, f"dsd simulate --modes: {name}", runs,
                     config_text=_text(path / str(modes[0]) / "config.yaml") if modes else "")


def _sweep(path: Path) -> RunFolder:
    import pyarrow.parquet as pq

    table = pq.read_table(path / "results.parquet")
    names = table.column_names
    start = names.index("seed") + 1 if "seed" in names else 1
    end = names.index("status") if "status" in names else start
    rows = table.to_pylist()
    name = path.name
    spec = _text(path / "sweep.yaml")
    for line in spec.splitlines():
        if line.startswith("name:"):
            name = line.split(":", 1)[1].strip() or name
    return RunFolder("sweep", path, f"dsd sweep: {name}", results=rows,
                     params=names[start:end], config_text=spec)


def _experiment(path: Path, summary: dict[str, Any]) -> RunFolder:
    rows: list[dict[str, Any]] = []
    if (path / "results.csv").is_file():
        with (path / "results.csv").open(newline="") as fh:
            rows = [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(fh)]
    plots = [path / p for p in summary.get("plots", []) if (path / p).is_file()]
    title = f"dsd experiment {summary['experiment']}" + (" --quick" if summary.get("quick")
                                                         else "")
    return RunFolder("experiment", path, title, results=rows, summary=summary, plots=plots)


def _bench(path: Path) -> RunFolder:
    requests = _parquet(path / "requests.parquet")
    summary = bench_summary(requests)
    if (path / "requests.jsonl").is_file():
        summary["acceptance_by_position"] = _acceptance_by_position(path / "requests.jsonl")
    run = Simulation(path.name, path, summary, requests)
    return RunFolder("bench", path, f"dsd bench runtime: {path.name}", [run])


def bench_summary(requests: Any) -> dict[str, Any]:
    """The summary a runtime bench's table supports (no simulated time: rates over the
    span from the first arrival to the last completion)."""
    import numpy as np

    out: dict[str, Any] = {"requests_completed": requests.num_rows}
    if not requests.num_rows:
        return out
    cols = {c: requests.column(c).to_numpy(zero_copy_only=False).astype(float)
            for c in ("arrival_s", "e2e_ms", "ttft_ms", "tpot_ms", "output_tokens",
                      "drafted_tokens", "accepted_tokens")}
    span = float(np.max(cols["arrival_s"] + cols["e2e_ms"] / 1e3) - np.min(cols["arrival_s"]))
    out["throughput_rps"] = requests.num_rows / span if span > 0 else None
    out["output_tps"] = float(cols["output_tokens"].sum()) / span if span > 0 else None
    for metric in ("ttft_ms", "tpot_ms", "e2e_ms"):
        values = cols[metric] if metric != "tpot_ms" else cols[metric][cols["output_tokens"] > 1]
        if values.size:
            for q in (50, 95, 99):
                out[f"{metric}_p{q}"] = float(np.percentile(values, q))
    drafted = cols["drafted_tokens"].sum()
    if drafted:
        out["acceptance_rate"] = float(cols["accepted_tokens"].sum() / drafted)
    met = requests.column("slo_met").to_pylist()
    out["slo_attainment"] = sum(bool(m) for m in met) / len(met)
    return out


def _acceptance_by_position(records: Path) -> list[float]:
    """P(accepted | reached) per draft position from the bench's per-round logs (the same
    counting `dsd calibrate acceptance` fits)."""
    from dsd.calibrate.acceptance import AcceptanceCounts, iter_records

    counts = AcceptanceCounts()
    for record in iter_records([records]):
        counts.add_record(record)
    return [a / r for a, r in zip(counts.accepted, counts.reached, strict=True) if r]


def _json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except ValueError:
        raise DataError(f"{path}: not valid JSON") from None
    return data if isinstance(data, dict) else None


def _parquet(path: Path) -> Any:
    if not path.is_file():
        return None
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path)
    except Exception as exc:  # pyarrow raises several kinds for a damaged file
        raise DataError(f"{path}: cannot read ({exc})") from None


def _text(path: Path) -> str:
    return path.read_text() if path.is_file() else ""


def _number(text: str | None) -> Any:
    if text is None or text == "":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"True": True, "False": False}.get(text, text)

"""`dsd awc dataset`: oracle-labelled decision points from simulator scenarios.

Oracle (documented in docs/awc.md): for each scenario, run the simulator once per candidate
static gamma with the same seed (common random numbers: the workload, network and
acceptance streams are seeded per concern, so every run sees the same users and links) and
score each run with `objective.objective`. The oracle gamma of the scenario is the argmax;
the whole objective vector is kept so training can weigh mistakes by their regret.

Decision points: every candidate run uses the recording window policy, so the features are
logged under *every* gamma of the scenario, not only the oracle's - the network then learns
what to do from states its own earlier choices lead to (prev_gamma, TPOT, queue all depend
on the gamma in use). Each point is labelled with its scenario's oracle.

Resumable: each scenario is written to `<out>.parts/<sid>.parquet` as it finishes and is
skipped when present *and* stamped with the current FEATURES_VERSION; the final file
concatenates the parts. Parts recorded under an older feature definition (e.g. nominal
instead of measured RTT) carry no or another stamp and are regenerated, never mixed in.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from dsd.awc.objective import closed_loop_throughput, objective
from dsd.awc.parallel import parallel_map
from dsd.awc.scenarios import Scenario
from dsd.errors import DsdError
from dsd.policies.awc import FEATURE_NAMES
from dsd.progress import ProgressBar

CANDIDATE_GAMMAS = (1, 2, 3, 4, 5, 6, 8)
# Bump when the meaning of a feature changes (the simulator's WindowState, `raw_features`):
# resumption then re-simulates old parts instead of mixing two feature definitions.
# v2: RTT features are the measured network time of each round (dsd.policies.features).
FEATURES_VERSION = "2"
_STAMP = b"dsd_awc_features_version"


def _part_is_current(path: Path) -> bool:
    if not path.exists():
        return False
    try:
        meta = pq.read_schema(path).metadata or {}
    except (OSError, pa.ArrowException):
        return False
    return meta.get(_STAMP) == FEATURES_VERSION.encode()


def label_scenario(job: tuple[dict[str, Any], tuple[int, ...], int]) -> dict[str, list[Any]]:
    """Run one scenario under every candidate gamma; return its labelled rows as columns.
    Top-level (picklable) so process pools and the sweep executor can ship it."""
    from dsd.awc import recorder  # registers awc_record in this process
    from dsd.sim import simulate

    sdict, gammas, points_per_run = job
    sc = Scenario.from_dict(sdict)
    objs, tputs, points = {}, {}, {}
    for g in gammas:
        tag = f"{sc.sid}:{g}"
        recorder.SINKS.pop(tag, None)
        window = {"name": "awc_record", "gamma": g, "max_points": points_per_run, "tag": tag}
        summary = simulate(sc.config(window), keep_requests=False).summary
        objs[g] = objective(summary, sc.drafts, sc.think_s)
        tputs[g] = closed_loop_throughput(summary, sc.drafts, sc.think_s)
        points[g] = recorder.SINKS.pop(tag, [])
    best = max(gammas, key=lambda g: (objs[g], -g))  # ties -> the smaller window
    cols: dict[str, list[Any]] = {k: [] for k in _columns(gammas)}
    for g in gammas:
        for x in points[g]:
            cols["sid"].append(sc.sid)
            cols["dataset"].append(sc.dataset)
            cols["hardware"].append(sc.hardware)
            cols["drafts_per_server"].append(sc.drafts_per_server)
            cols["rtt_ms"].append(sum(sc.rtt_ms) / 2)
            cols["think_s"].append(sc.think_s)
            cols["run_gamma"].append(g)
            cols["oracle_gamma"].append(best)
            for name, v in zip(FEATURE_NAMES, x, strict=True):
                cols[name].append(v)
            for h in gammas:
                cols[f"obj_g{h}"].append(objs[h])
                cols[f"tput_g{h}"].append(tputs[h])
    return cols


def _columns(gammas: Iterable[int]) -> list[str]:
    gammas = list(gammas)
    return (["sid", "dataset", "hardware", "drafts_per_server", "rtt_ms", "think_s",
             "run_gamma", "oracle_gamma", *FEATURE_NAMES]
            + [f"obj_g{g}" for g in gammas] + [f"tput_g{g}" for g in gammas])


def generate(scenarios: list[Scenario], out: str | Path, *, gammas: tuple[int, ...] =
             CANDIDATE_GAMMAS, points_per_run: int = 150, workers: int | None = None,
             executor: str = "local", address: str | None = None,
             progress: bool = True) -> Path:
    """Label `scenarios` and write the dataset to `out` (Parquet); returns its path."""
    out = Path(out)
    parts = out.with_name(out.name + ".parts")
    parts.mkdir(parents=True, exist_ok=True)
    todo = [s for s in scenarios if not _part_is_current(parts / f"{s.sid}.parquet")]
    jobs = [(s.to_dict(), tuple(gammas), points_per_run) for s in todo]
    results = parallel_map(label_scenario, jobs, executor, workers, address)
    with ProgressBar("awc dataset", len(jobs), unit="scenarios", enabled=progress) as bar:
        for done, (sc, cols) in enumerate(zip(todo, results, strict=True), 1):
            tmp = parts / f"{sc.sid}.parquet.tmp"
            table = pa.table(cols)
            table = table.replace_schema_metadata({_STAMP: FEATURES_VERSION.encode()})
            pq.write_table(table, tmp)
            tmp.replace(parts / f"{sc.sid}.parquet")  # atomic: a killed run leaves no half part
            bar.update(done, info=f"{len(scenarios) - len(todo)} done before" if
                       len(todo) < len(scenarios) else "")
    tables = [pq.read_table(parts / f"{s.sid}.parquet") for s in scenarios]
    tables = [t for t in tables if t.num_rows]
    if not tables:
        raise DsdError(f"awc dataset: no decision points recorded in {parts}")
    pq.write_table(pa.concat_tables(tables), out)
    return out

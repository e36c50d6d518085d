"""What `dsd simulate` loads: only the command's own module and the libraries the run uses;
neither numpy nor pyarrow, even to write its tables (the speed figure is
`benchmarks/cli_startup.py`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

from dsd.metrics import (
    REQUEST_COLUMNS,
    RequestTableWriter,
    request_schema,
    timeseries_schema,
)

ROOT = Path(__file__).resolve().parents[1]
# This tree's sources first: a relative PYTHONPATH (or another tree's editable install)
# would otherwise give the child process other code than the one under test.
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(
    [str(ROOT / "src"), *filter(None, [os.environ.get("PYTHONPATH")])])}
HEAVY = ("numpy", "pyarrow", "torch", "scipy", "pandas")
UNWANTED = (*HEAVY, "pydantic", "rich", "asyncio", "matplotlib", "plotly", "dsd.cli.serve",
            "dsd.cli.sweep", "dsd.experiments", "dsd.report")


def test_simulate_imports_only_what_it_uses(tmp_path):
    """Even with `--out` and the summary printed: its Parquet files are written by dsd's own
    writer, which pyarrow reads back with the tables' schemas."""
    code = (
        "import json, sys\n"
        "from dsd.cli.main import main\n"
        f"rc = main(['simulate', {str(ROOT / 'examples/quickstart.yaml')!r}, '--set',"
        f" 'simulation.duration_s=2', '--set', 'simulation.warmup_s=0',"
        f" '--out', {str(tmp_path / 'run')!r}])\n"
        f"print(json.dumps([rc, [m for m in {UNWANTED!r} if m in sys.modules]]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=tmp_path, env=ENV)
    rc, loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert rc == 0 and loaded == []
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    requests = pq.read_table(tmp_path / "run" / "requests.parquet")
    assert requests.schema.equals(request_schema())
    assert requests.num_rows == summary["requests_completed"] > 0
    series = pq.read_table(tmp_path / "run" / "timeseries.parquet")
    assert series.schema.equals(timeseries_schema())
    points = len(set(series["t_s"].to_pylist()))
    servers = 2  # examples/quickstart.yaml
    gammas = series["series"].to_pylist().count("gamma")
    assert points > 1 and 0 < gammas <= points
    assert series.num_rows == 3 * servers * points + gammas


def _loaded_after(code: str, cwd: Path) -> list:
    """Runs `code` in a fresh interpreter; the last line it prints, as JSON."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=cwd, env=ENV)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_config_and_simulation_import_neither_numpy_nor_pyarrow(tmp_path):
    """Loading a scenario and simulating it need neither: they are imported only to build
    or write the tables (a run that keeps none, as sweeps do, never loads them)."""
    code = (
        "import json, sys\n"
        "from dsd.config import load_config\n"
        "from dsd.sim import simulate\n"
        f"cfg = load_config({str(ROOT / 'examples/quickstart.yaml')!r},"
        " ['simulation.duration_s=5', 'simulation.warmup_s=0'])\n"
        "done = simulate(cfg, keep_requests=False).summary['requests_completed']\n"
        f"print(json.dumps([done, [m for m in {HEAVY!r} if m in sys.modules]]))\n"
    )
    done, loaded = _loaded_after(code, tmp_path)
    assert done > 0 and loaded == []


def test_a_config_error_is_reported_before_numpy_or_pyarrow_load(tmp_path):
    code = (
        "import json, sys\n"
        "from dsd.cli.main import main\n"
        f"rc = main(['simulate', {str(ROOT / 'examples/quickstart.yaml')!r}, '--set',"
        " 'network.rtt_ms=-1', '--quiet'])\n"
        f"print(json.dumps([rc, [m for m in {HEAVY!r} if m in sys.modules]]))\n"
    )
    rc, loaded = _loaded_after(code, tmp_path)
    assert rc == 2 and loaded == []


ROWS = [
    (0, 3, 1, "distributed", 0.25, 57, 120, 41.5, 30.25, 3671.0, 35, 140, 98, True),
    (1, 0, 0, "fused", 1.5, 9, 1, float("nan"), 0.0, 12.0, 0, 0, 0, False),
    (2, 7, 1, "cloud_only", 2.0, 300, 2, 8.0, 1e-3, 9.0, 2, 0, 0, True),
]


def test_request_table_round_trips_every_column_type(tmp_path):
    for path in (None, tmp_path / "requests.parquet"):
        writer = RequestTableWriter(path, flush_rows=2)  # two batches: 2 rows + 1
        for row in ROWS:
            writer.add(row)
        table = writer.close() if path is None else (writer.close(), pq.read_table(path))[1]
        assert table.column_names == REQUEST_COLUMNS and table.num_rows == len(ROWS)
        for got, want in zip(table.to_pylist(), ROWS, strict=True):
            for key, value in zip(REQUEST_COLUMNS, want, strict=True):
                if value != value:  # NaN: a missing value, stored as null
                    assert got[key] is None, key
                else:
                    assert got[key] == value and type(got[key]) is type(value), key

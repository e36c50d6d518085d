"""`dsd bench runtime` writes the simulator's per-request table; CLI wiring of serve."""

from __future__ import annotations

import asyncio
import threading

import pytest

torch = pytest.importorskip("torch")

from rt_helpers import make_edge, verifier_server  # noqa: E402

pytestmark = pytest.mark.runtime


def test_bench_runtime_writes_table(tiny, runners, tmp_path, datasets_dir):
    import pyarrow.parquet as pq

    from dsd.cli.bench import COLUMNS
    from dsd.cli.main import main as cli
    from dsd.runtime.launch import start_edge_server

    tok = tiny[0]
    tr, dr = runners
    ready = threading.Event()
    box: dict = {}

    async def serve():
        async with verifier_server(tr) as (_, port):
            srv = await start_edge_server(make_edge(dr, [port]), tok, "tiny")
            box["port"] = srv.port
            box["stop"] = asyncio.Event()
            box["loop"] = asyncio.get_running_loop()
            ready.set()
            await box["stop"].wait()
            await srv.stop()

    th = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    th.start()
    assert ready.wait(60)
    out = tmp_path / "req.parquet"
    try:
        rc = cli(["bench", "runtime", "--url", f"http://127.0.0.1:{box['port']}", "--num", "4",
                  "--concurrency", "2", "--max-tokens", "12", "--datasets-dir",
                  str(datasets_dir), "--out", str(out), "--slo-tpot-ms", "10000"])
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)
        th.join(30)
    assert rc == 0
    table = pq.read_table(out).to_pylist()
    assert len(table) == 4 and list(table[0]) == COLUMNS
    for row in table:
        assert row["output_tokens"] >= 1 and row["mode"] == "distributed"
        assert row["e2e_ms"] >= row["ttft_ms"] > 0 and row["slo_met"]
    assert sum(r["drafted_tokens"] for r in table) > 0


def test_serve_cli_errors_are_one_line(capsys, tmp_path):
    from dsd.cli.main import main as cli

    assert cli(["serve", "verifier", "--model", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not exist" in err[0]
    assert cli(["serve", "edge", "--draft-model", str(tmp_path), "--verifier", "nohost"]) == 2
    assert "HOST:PORT" in capsys.readouterr().err
    assert cli(["serve", "fused", "--model", str(tmp_path), "--draft-model", str(tmp_path),
                "--window", "nope"]) == 2
    assert "unknown window policy" in capsys.readouterr().err

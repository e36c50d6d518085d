"""`dsd bench runtime` writes the simulator's per-request table and per-round records that
`dsd calibrate acceptance` fits; CLI wiring of serve."""

from __future__ import annotations

import asyncio
import contextlib
import threading

import pytest

torch = pytest.importorskip("torch")

from rt_helpers import make_edge, verifier_server  # noqa: E402

pytestmark = pytest.mark.runtime


@contextlib.contextmanager
def edge_in_thread(tiny, runners, **server_kw):
    """A verifier and an edge API server on their own event loop in a thread; yields the
    API's port and stops both on exit."""
    from dsd.runtime.launch import start_edge_server

    tr, dr = runners
    ready = threading.Event()
    box: dict = {}

    async def serve():
        async with verifier_server(tr) as (_, port):
            srv = await start_edge_server(make_edge(dr, [port]), tiny[0], "tiny", **server_kw)
            box.update(port=srv.port, stop=asyncio.Event(), loop=asyncio.get_running_loop())
            ready.set()
            await box["stop"].wait()
            await srv.stop()

    th = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    th.start()
    assert ready.wait(60)
    try:
        yield box["port"]
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)
        th.join(30)


def test_bench_runtime_writes_table_and_rounds(tiny, runners, tmp_path):
    import json

    import pyarrow.parquet as pq
    import yaml

    from dsd.cli.bench import COLUMNS
    from dsd.cli.main import main as cli

    out = tmp_path / "bench-1"
    with edge_in_thread(tiny, runners) as port:
        # the default dataset (GSM8K) ships with dsd: no dataset folder needed
        rc = cli(["bench", "runtime", "--url", f"http://127.0.0.1:{port}", "--num", "4",
                  "--concurrency", "2", "--max-tokens", "12", "--out", str(out),
                  "--slo-tpot-ms", "10000"])
    assert rc == 0
    table = pq.read_table(out / "requests.parquet").to_pylist()
    assert len(table) == 4 and list(table[0]) == COLUMNS
    for row in table:
        assert row["output_tokens"] >= 1 and row["mode"] == "distributed"
        assert row["e2e_ms"] >= row["ttft_ms"] > 0 and row["slo_met"]
    assert sum(r["drafted_tokens"] for r in table) > 0
    records = [json.loads(line) for line in (out / "requests.jsonl").read_text().splitlines()]
    by_id = {r["request_id"]: r for r in table}
    for rec in records:  # the rounds add up to the table's per-request totals
        row = by_id[rec["request_id"]]
        assert len(rec["rounds_log"]) == row["rounds"]
        assert sum(g for g, _ in rec["rounds_log"]) == row["drafted_tokens"]
        assert sum(a for _, a in rec["rounds_log"]) == row["accepted_tokens"]
    # The README's workflow: fit acceptance from the bench's run folder.
    fitted = tmp_path / "acceptance.yaml"
    assert cli(["calibrate", "acceptance", str(out), "--out", str(fitted), "--min-reached", "1",
                "--quiet"]) == 0
    fit = yaml.safe_load(fitted.read_text())
    assert fit["rounds"] == sum(g > 0 for rec in records for g, _ in rec["rounds_log"]) > 0


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


def test_bench_runtime_sends_the_api_key_from_the_environment(tiny, runners, tmp_path,
                                                              monkeypatch):
    from dsd.cli.main import main as cli

    with edge_in_thread(tiny, runners, api_key="s3cret") as port:
        args = ["bench", "runtime", "--url", f"http://127.0.0.1:{port}", "--num", "2",
                "--max-tokens", "4", "--quiet"]
        monkeypatch.delenv("DSD_API_KEY", raising=False)
        refused = cli(args + ["--out", str(tmp_path / "none")])
        monkeypatch.setenv("DSD_API_KEY", "s3cret")
        served = cli(args + ["--out", str(tmp_path / "ok")])
    assert refused == 2  # every request got 401: one line, no table
    assert served == 0 and (tmp_path / "ok" / "requests.parquet").is_file()

"""The edge's HTTP server under slow, idle and oversized clients: header and body deadlines,
a connection cap below the descriptor limit, bodies bounded while they stream in, bounded
logs, and non-streaming requests cancelled when their client leaves."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
httpx = pytest.importorskip("httpx")

from attacks import (  # noqa: E402
    chunked_post,
    close_all,
    count_closed,
    http_get,
    idle_connections,
    slowloris,
)
from rt_helpers import edge_stack  # noqa: E402

pytestmark = pytest.mark.runtime

TARGET = Path(__file__).with_name("http_target.py")
SRC = Path(__file__).resolve().parents[2] / "src"


def _fd_room(n: int) -> None:
    """Let this (client) process hold n more sockets, or skip."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n + 256
    if soft < want:
        if hard != resource.RLIM_INFINITY and hard < want:
            pytest.skip(f"needs {want} file descriptors, the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


@contextlib.contextmanager
def http_target(tmp_path, nofile: int | None = None, **cfg):
    """http_target.py in a subprocess: yields (port, pid, connection cap, log path)."""
    import json

    log_path = tmp_path / "target.log"

    def limit():
        if nofile:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, str(TARGET), json.dumps(cfg)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                preexec_fn=limit, env=env)
    try:
        line = proc.stdout.readline().decode().split()
        assert line and line[0] == "READY", log_path.read_text()[-2000:]
        yield int(line[1]), proc.pid, int(line[2]), log_path
    finally:
        with contextlib.suppress(OSError):
            proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _rss_kb(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(field)


def test_slow_clients_are_closed_after_the_header_deadline(tmp_path):
    _fd_room(400)
    with http_target(tmp_path, header_timeout_s=1.0) as (port, _, _, _):
        socks = slowloris(port, 300)
        try:
            status, seconds = http_get(port)  # served while 300 slow clients hold sockets
            closed = count_closed(socks, wait_s=4.0)
        finally:
            close_all(socks)
    assert status == 200 and seconds < 1.0
    assert closed == 300  # every slow client was cut off at its deadline


def test_descriptor_exhaustion_keeps_serving_with_bounded_logs(tmp_path):
    """At a 1024-descriptor limit, 1100 idle connections: the oldest idle ones are closed to
    make room, normal requests are still served, and the log stays small."""
    _fd_room(1200)
    with http_target(tmp_path, nofile=1024, header_timeout_s=60.0) as (port, _, cap, log):
        assert cap < 1024
        socks = idle_connections(port, 1100)
        try:
            # the server works through the burst, closing the oldest idle connections
            closed = count_closed(socks, wait_s=15.0, enough=1100 - cap)
            results = [http_get(port, timeout=5) for _ in range(5)]
            time.sleep(1.0)  # time for a log storm, if there were one
        finally:
            close_all(socks)
        log_bytes = log.stat().st_size
    assert all(status == 200 and seconds < 1.0 for status, seconds in results), results
    assert closed >= 1100 - cap  # the cap held: the oldest idle connections made room
    assert log_bytes < 20_000, log.read_text()[:2000]


def test_chunked_body_is_cut_off_at_the_limit_while_streaming(tmp_path):
    with http_target(tmp_path) as (port, pid, _, _):
        before = _rss_kb(pid)
        status = chunked_post(port, total_bytes=64 << 20)
        peak = _rss_kb(pid, "VmHWM")
        ok_status, _ = http_get(port)
    assert status == 413
    assert (peak - before) < 16 << 10, (before, peak)  # never held the 64 MiB body
    assert ok_status == 200


def test_repeated_log_lines_are_rate_limited(capsys):
    from dsd.runtime.logs import RepeatFilter

    now = [0.0]
    logger = logging.getLogger("repeat-filter-test")
    logger.propagate = False
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RepeatFilter(window_s=10.0, clock=lambda: now[0]))
    logger.addHandler(handler)
    try:
        for i in range(10_000):
            now[0] = i * 1e-4  # 10,000 lines in one second
            logger.warning("accept failed: %s", "EMFILE")
        logger.warning("another problem")
        now[0] = 10.5
        logger.warning("accept failed: %s", "EMFILE")
    finally:
        logger.removeHandler(handler)
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == ["accept failed: EMFILE", "another problem",
                     "accept failed: EMFILE [9999 similar lines suppressed]"]


def test_non_streaming_requests_stop_when_the_client_leaves(tiny, backend_runners):
    tok = tiny[0]

    async def main():
        async with edge_stack(backend_runners, tok) as (base, svc):
            async with httpx.AsyncClient(base_url=base, timeout=0.7) as c:
                body = {"prompt": "a long answer", "max_tokens": 500, "ignore_eos": True}
                gave_up = await asyncio.gather(*[c.post("/v1/completions", json=body)
                                                 for _ in range(8)], return_exceptions=True)
            t0 = time.perf_counter()
            while svc.core.sessions and time.perf_counter() - t0 < 5:
                await asyncio.sleep(0.05)
            freed_s = time.perf_counter() - t0
            # A step already running when its sessions closed still ends (and counts its
            # drafts); wait it out: what matters is that no step starts afterwards.
            await asyncio.sleep(0.3)
            tokens = svc.core.metrics.spec.draft_tokens._value.get()
            await asyncio.sleep(0.5)
            return gave_up, freed_s, tokens, svc.core.metrics.spec.draft_tokens._value.get()

    gave_up, freed_s, tokens, tokens_later = asyncio.run(main())
    assert all(isinstance(r, httpx.TimeoutException) for r in gave_up)
    assert freed_s < 2.0  # the verifier sessions went with their clients
    assert tokens_later == tokens  # and nothing more is generated for nobody


@pytest.mark.slow
def test_3000_slowloris_connections_normal_requests_served_under_1s(tiny, runners):
    _fd_room(3100)

    async def main():
        async with edge_stack(runners, tiny[0]) as (base, _):
            port = int(base.rsplit(":", 1)[1])
            socks = await asyncio.to_thread(slowloris, port, 3000)
            try:
                times = []
                async with httpx.AsyncClient(base_url=base, timeout=10) as c:
                    for i in range(5):
                        t0 = time.perf_counter()
                        r = await c.post("/v1/completions", json={
                            "prompt": f"normal {i}", "max_tokens": 8, "temperature": 0})
                        assert r.status_code == 200
                        times.append(time.perf_counter() - t0)
            finally:
                close_all(socks)
            return times

    times = asyncio.run(main())
    assert max(times) < 1.0, times

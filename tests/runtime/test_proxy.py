"""The TCP delay proxy, and the edge talking to a verifier through it."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time

import pytest

torch = pytest.importorskip("torch")

from rt_helpers import collect, make_edge, reference_greedy, verifier_server  # noqa: E402


async def _echo_server():
    async def handle(r, w):
        while data := await r.read(65536):
            w.write(data)
            await w.drain()
        w.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    return srv, srv.sockets[0].getsockname()[1]


def test_proxy_delays_and_preserves_bytes():
    from dsd.runtime.proxy import DelayProxy, LinkConfig

    async def main():
        srv, port = await _echo_server()
        proxy = DelayProxy("127.0.0.1", port, LinkConfig(delay_s=0.02, jitter_s=0.005, seed=1))
        pport = await proxy.start()
        r, w = await asyncio.open_connection("127.0.0.1", pport)
        rtts, payload = [], bytes(range(256)) * 40
        for _ in range(5):
            t0 = time.perf_counter()
            w.write(payload)
            await w.drain()
            got = await asyncio.wait_for(r.readexactly(len(payload)), 5)
            rtts.append(time.perf_counter() - t0)
            assert got == payload
        w.close()
        await proxy.stop()
        srv.close()
        return rtts

    rtts = asyncio.run(main())
    assert min(rtts) >= 0.030  # 2 x (20 ms - 5 ms jitter)
    assert sorted(rtts)[2] < 0.2


def test_proxy_bandwidth_cap():
    from dsd.runtime.proxy import DelayProxy, LinkConfig

    async def main():
        srv, port = await _echo_server()
        proxy = DelayProxy("127.0.0.1", port, LinkConfig(bandwidth_bps=8e6))  # 1 MB/s
        pport = await proxy.start()
        r, w = await asyncio.open_connection("127.0.0.1", pport)
        payload = b"x" * 200_000
        t0 = time.perf_counter()
        w.write(payload)
        await w.drain()
        await asyncio.wait_for(r.readexactly(len(payload)), 10)
        dt = time.perf_counter() - t0
        w.close()
        await proxy.stop()
        srv.close()
        return dt

    assert asyncio.run(main()) >= 0.19  # 0.2 s of serialization at 1 MB/s (echo pipelines)


@pytest.mark.runtime
def test_edge_through_proxy_is_exact_and_sees_rtt(tiny, runners):
    from dsd.runtime.proxy import DelayProxy, LinkConfig

    tok, target, _ = tiny
    tr, dr = runners
    ids = tok("through the proxy").input_ids

    async def main():
        async with verifier_server(tr) as (_, port):
            proxy = DelayProxy("127.0.0.1", port, LinkConfig(delay_s=0.005))
            pport = await proxy.start()
            engine = make_edge(dr, [pport])
            await engine.start()
            out = await collect(engine, ids, max_tokens=20)
            rtt = engine.endpoints[0].rtt_ema
            await engine.close()
            await proxy.stop()
            return out, rtt

    out, rtt = asyncio.run(main())
    assert out == reference_greedy(target, ids, 20)
    assert 0.009 < rtt < 0.1


@pytest.mark.runtime
def test_emulated_rtt_on_edge_link(tiny, runners):
    tok, target, _ = tiny
    tr, dr = runners
    ids = tok("emulated").input_ids

    async def main():
        async with verifier_server(tr) as (_, port):
            engine = make_edge(dr, [port], emulate_rtt_s=0.02, emulate_jitter_s=0.004)
            await engine.start()
            out = await collect(engine, ids, max_tokens=12)
            rtt = engine.endpoints[0].rtt_ema
            await engine.close()
            return out, rtt

    out, rtt = asyncio.run(main())
    assert out == reference_greedy(target, ids, 12)
    # 20 ms +- 4 ms of emulated jitter (~1 ms without emulation); the cap only guards nonsense.
    assert 0.012 < rtt < 0.5


def _netem_available() -> bool:
    if shutil.which("tc") is None or shutil.which("ip") is None:
        return False
    probe = subprocess.run(["tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "0ms"],
                           capture_output=True)
    if probe.returncode == 0:
        subprocess.run(["tc", "qdisc", "del", "dev", "lo", "root"], capture_output=True)
        return True
    return False


@pytest.mark.slow
@pytest.mark.skipif(not _netem_available(), reason="tc netem is not available on this kernel")
def test_netem_delay_on_loopback(tiny, runners):  # pragma: no cover - needs netem
    subprocess.run(["tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "5ms"],
                   check=True)
    try:
        test_edge_through_proxy_is_exact_and_sees_rtt(tiny, runners)
    finally:
        subprocess.run(["tc", "qdisc", "del", "dev", "lo", "root"], capture_output=True)

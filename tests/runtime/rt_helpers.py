"""Helpers shared by the runtime tests (servers on OS-assigned loopback ports)."""

from __future__ import annotations

import contextlib

import torch


def reference_greedy(model, ids: list[int], n: int) -> list[int]:
    """Target-only greedy decoding with HF generate (independent of dsd's code)."""
    out = model.generate(torch.tensor([ids]), max_new_tokens=n, min_new_tokens=n,
                         do_sample=False, eos_token_id=None, pad_token_id=0)
    return out[0, len(ids):].tolist()


@contextlib.asynccontextmanager
async def verifier_server(runner, max_batch: int = 8, batcher: str = "fifo", token=None,
                          max_wait_ms: float = 0.0, port: int = 0, service_kw=None, **core_kw):
    """A gRPC verifier on 127.0.0.1:<port> (0: the OS picks); yields (service, port)."""
    from dsd.policies import BATCHERS
    from dsd.runtime.scheduler import VerifierCore
    from dsd.runtime.verifier import VerifierService, start_verifier_server

    kw = {"max_batch": max_batch}
    if max_wait_ms:
        kw["max_wait_ms"] = max_wait_ms
    core = VerifierCore(runner, BATCHERS.create(batcher, **kw), **core_kw)
    service = VerifierService(core, **(service_kw or {}))
    server, port = await start_verifier_server(service, "127.0.0.1", port, token=token)
    try:
        yield service, port
    finally:
        await server.stop(0)
        await core.stop()


@contextlib.asynccontextmanager
async def edge_stack(runners, tok, max_batch: int = 16, max_wait_ms: float = 0.0,
                     verifier_kw=None, server_kw=None, **edge_kw):
    """A verifier and an edge serving the HTTP API on OS ports; yields (base_url, service),
    with the verifier's gRPC port as `service.port`."""
    from dsd.runtime.launch import start_edge_server

    tr, dr = runners
    async with verifier_server(tr, max_batch=max_batch, max_wait_ms=max_wait_ms,
                               **(verifier_kw or {})) as (svc, port):
        svc.port = port
        engine = make_edge(dr, [port], **edge_kw)
        server_kw = {"max_tokens_limit": 512, "max_context": 2048, **(server_kw or {})}
        srv = await start_edge_server(engine, tok, "tiny", "127.0.0.1", 0, **server_kw)
        try:
            yield f"http://127.0.0.1:{srv.port}", svc
        finally:
            await srv.stop()


def make_edge(draft, ports, window="static", gamma=4, router="jsq", **kw):
    from dsd.policies import ROUTERS, WINDOWS
    from dsd.runtime.client import RemoteEndpoint
    from dsd.runtime.edge import EdgeEngine

    client_kw = {k: kw.pop(k) for k in ("token", "emulate_rtt_s", "emulate_jitter_s") if k in kw}
    eps = [RemoteEndpoint(i, f"127.0.0.1:{p}", **client_kw) for i, p in enumerate(ports)]
    wf = WINDOWS.create(window, gamma=gamma) if window == "static" else WINDOWS.create(window)
    return EdgeEngine(draft, eps, wf, ROUTERS.create(router), **kw)


async def collect(engine, ids, params=None, max_tokens=32, ignore_eos=True, stats=None):
    from dsd.runtime.speculative import SamplingParams

    out: list[int] = []
    async for toks in engine.generate(ids, params or SamplingParams(), max_tokens,
                                      ignore_eos=ignore_eos, stats=stats):
        out.extend(toks)
    return out


def chi2_stat(counts, probs, n):
    """Pearson chi-square with cells of expected count < 5 merged."""
    exp = [p * n for p in probs]
    stat, rest_o, rest_e, dof = 0.0, 0.0, 0.0, -1
    for o, e in zip(counts, exp, strict=False):
        if e >= 5:
            stat += (o - e) ** 2 / e
            dof += 1
        else:
            rest_o += o
            rest_e += e
    if rest_e > 0:
        stat += (rest_o - rest_e) ** 2 / max(rest_e, 1e-9)
        dof += 1
    return stat, max(dof, 1)


def chi2_critical(dof, z=3.29):  # Wilson-Hilferty, ~0.9995 quantile
    return dof * (1 - 2 / (9 * dof) + z * (2 / (9 * dof)) ** 0.5) ** 3


class ServedStack:
    """`edge_stack` served from a background thread's event loop, for synchronous clients
    (schemathesis, hypothesis): `.base`, `.svc`, `.run(coro)` runs a coroutine on that loop."""

    def __init__(self, runners, tok, **kw) -> None:
        import asyncio
        import threading

        self._ready, self._error = threading.Event(), None
        self.base = self.svc = self.loop = self._stop = None

        async def serve():
            try:
                async with edge_stack(runners, tok, **kw) as (base, svc):
                    self.base, self.svc = base, svc
                    self.loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
                    self._ready.set()
                    await self._stop.wait()
            except BaseException as exc:  # noqa: BLE001 - reported by __enter__
                self._error = exc
                self._ready.set()

        self._thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)

    def run(self, coro, timeout: float = 60):
        import asyncio

        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def __enter__(self):
        self._thread.start()
        assert self._ready.wait(60)
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc) -> None:
        self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

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
                          max_wait_ms: float = 0.0, **core_kw):
    """A gRPC verifier on 127.0.0.1:<OS port>; yields (service, port)."""
    from dsd.policies import BATCHERS
    from dsd.runtime.scheduler import VerifierCore
    from dsd.runtime.verifier import VerifierService, start_verifier_server

    kw = {"max_batch": max_batch}
    if max_wait_ms:
        kw["max_wait_ms"] = max_wait_ms
    core = VerifierCore(runner, BATCHERS.create(batcher, **kw), **core_kw)
    service = VerifierService(core)
    server, port = await start_verifier_server(service, "127.0.0.1", 0, token=token)
    try:
        yield service, port
    finally:
        await server.stop(0)
        await core.stop()


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

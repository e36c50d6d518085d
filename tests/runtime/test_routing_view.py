"""One view of load: a verifier reports the simulator's TargetView fields (remaining output
tokens of its sessions, the time of a one-session verify step), the gRPC load report
carries them, and the routers decide alike on the runtime's and the simulator's views."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

torch = pytest.importorskip("torch")

from rt_helpers import verifier_server  # noqa: E402

pytestmark = pytest.mark.runtime


class _Step:
    """A latency model answering one step time (the simulator's target asks it once)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def step_s(self, *args) -> float:
        return self.seconds


def _sim_server(index: int, running: int, remaining: int, est_step_s: float, max_batch: int):
    """The simulator's target after routing `running` sessions with `remaining` output
    tokens left between them, idle queue."""
    from dsd.policies import BATCHERS
    from dsd.sim.entities import TargetServer

    server = TargetServer(index, 0, _Step(est_step_s), None,
                          BATCHERS.create("fifo", max_batch=max_batch), 1 << 20)
    server.running = running
    server.remaining_tokens = remaining
    return server


async def _loaded_core(core, sessions: list[int]):
    """Open sessions with these output budgets; each verifies once alone (a one-session
    step, which is what est_step_s measures)."""
    from dsd.runtime.speculative import SamplingParams

    keys = []
    for i, budget in enumerate(sessions):
        key, _ = await core.open(f"s{i}", [5 + i, 6, 7, 8], SamplingParams(),
                                 max_new_tokens=budget)
        keys.append(key)
    for key in keys:
        await core.verify(key, [1, 2], None)
    return keys


def test_routers_choose_alike_on_runtime_and_simulator_views(backend_runners):
    from dsd.policies import ROUTERS, RequestView
    from dsd.runtime.edge import target_view
    from dsd.runtime.fused import LocalEndpoint, make_batcher
    from dsd.runtime.scheduler import VerifierCore
    from dsd.sim.simulator import target_view as sim_view

    tr, _ = backend_runners
    plan = {0: [300], 1: [20, 20, 20]}  # one long request vs three short ones
    rtts = {0: 0.030, 1: 0.005}

    async def main():
        cores = {i: VerifierCore(tr, make_batcher("fifo", 8)) for i in plan}
        try:
            eps = []
            for i, core in cores.items():
                keys = await _loaded_core(core, plan[i])
                ep = LocalEndpoint(core, i)
                ep.load, ep.rtt_ema = core.load(), rtts[i]
                eps.append(ep)
                sess = [core.sessions[k] for k in keys]
                generated = [len(s.committed) - s.prompt_len for s in sess]
                assert ep.load.remaining_tokens == sum(
                    b - g for b, g in zip(plan[i], generated, strict=True))
            return [target_view(ep) for ep in eps]
        finally:
            for core in cores.values():
                await core.stop()

    runtime = asyncio.run(main())
    assert all(v.est_step_s > 0 for v in runtime)
    sim = [sim_view(v.target_id, _sim_server(v.target_id, v.running, v.remaining_tokens,
                                             v.est_step_s, v.capacity), rtts[v.target_id])
           for v in runtime]
    assert [dataclasses.astuple(v) for v in sim] == [dataclasses.astuple(v) for v in runtime]
    request = RequestView(1, 0, 16, 64)
    picks = {name: (ROUTERS.create(name).choose(request, runtime),
                    ROUTERS.create(name).choose(request, sim))
             for name in ("least-work", "rtt-aware", "jsq")}
    assert all(a == b for a, b in picks.values()), picks
    assert picks["least-work"][0] == 1  # 3 x ~19 tokens to go weigh less than ~299
    assert picks["jsq"][0] == 0  # fewer sessions


def test_the_load_report_carries_remaining_tokens_and_step_time(runners):
    from dsd.runtime.client import RemoteEndpoint

    tr, dr = runners

    async def main():
        async with verifier_server(tr) as (svc, port):
            await _loaded_core(svc.core, [50, 70])
            ep = RemoteEndpoint(0, f"127.0.0.1:{port}")
            try:
                await ep.connect(dr.fingerprint, dr.vocab_size)
                return ep.load, svc.core.load()
            finally:
                await ep.close()

    seen, actual = asyncio.run(main())
    assert seen.remaining_tokens == actual.remaining_tokens > 0
    assert seen.est_step_s == pytest.approx(actual.est_step_s, rel=1e-6) and seen.est_step_s > 0
    assert seen.running == 2

"""A verifier in its own process for sim-vs-real: pinned to its own CPU, it profiles its
target model in the same process (same pinning, threads and warm state) it serves from.

    python -m dsd.calibrate.verifier_proc '{"model": PATH, "name": N, "cpus": [1], ...}'

PATH is a model directory (HF transformers) or a .gguf file (llama.cpp).

Protocol on stdin/stdout, one line each: the process prints `READY <port>` once serving;
`profile <passes>` runs that many profiling passes over the grid (only while no request is
in flight: the parent sends it between configurations) and answers `DONE`; `rows <stat>`
answers one JSON line with the profile rows so far; `wake` one JSON line with the metadata
of its idle wake-up curve (docs/calibration.md); EOF stops it. Spreading the passes
between the runs makes the profile see the same background load as the runs it predicts.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any


async def _serve(cfg: dict[str, Any]) -> None:
    from dsd.calibrate.grid import ProfileGrid
    from dsd.calibrate.profile import GridSession, ModelToProfile, configure_cpu, load_runner
    from dsd.policies import BATCHERS
    from dsd.runtime.scheduler import VerifierCore
    from dsd.runtime.verifier import VerifierService, start_verifier_server

    configure_cpu(cfg.get("threads"), cfg.get("cpus"))
    grid = ProfileGrid(**{k: tuple(v) for k, v in cfg["grid"].items()})
    runner, _ = load_runner(ModelToProfile(cfg["model"], cfg["name"]), "cpu",
                            serving=tuple(cfg.get("serving", (8, 4096))))
    session = GridSession(runner, cfg["name"], grid.points())
    for _ in range(cfg.get("warmup", 2)):
        session.run_pass(keep=False)
    batcher = BATCHERS.create("fifo", max_batch=cfg.get("max_batch", 8), max_wait_ms=0.0)
    core = VerifierCore(runner, batcher)
    server, port = await start_verifier_server(VerifierService(core), port=0)
    print(f"READY {port}", flush=True)
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            break
        cmd, _, arg = line.strip().partition(" ")
        if cmd == "profile":
            for _ in range(int(arg or 1)):
                session.run_pass()
            print("DONE", flush=True)
        elif cmd == "rows":
            print(json.dumps(session.rows(arg or "median")), flush=True)
        elif cmd == "wake":
            print(json.dumps(session.wake_metadata()), flush=True)
    await server.stop(0.5)
    await core.stop()


def main() -> None:
    import logging

    logging.disable(logging.WARNING)
    asyncio.run(_serve(json.loads(sys.argv[1])))


if __name__ == "__main__":
    main()

"""Single-process modes, for comparing the three modes on the same hardware and prompts.

- fused: draft and target in one process; the edge engine talks to an in-process verifier
  core (same scheduler, batching and verification math, no network);
- cloud-only: target only; every round has gamma = 0 (plain target decoding, still batched
  across sessions by the verifier core).
"""

from __future__ import annotations

from dsd.policies import BATCHERS, ROUTERS, WINDOWS
from dsd.runtime.backend import ModelRunner
from dsd.runtime.client import LocalEndpoint
from dsd.runtime.edge import EdgeEngine
from dsd.runtime.scheduler import VerifierCore


def make_batcher(name: str = "fifo", max_batch: int = 16, max_wait_ms: float = 0.0):
    kwargs = {"max_batch": max_batch}
    if max_wait_ms:
        kwargs["max_wait_ms"] = max_wait_ms
    return BATCHERS.create(name, **kwargs)


def make_window(name: str = "static", gamma: int | None = None):
    return WINDOWS.create(name, gamma=gamma) if gamma is not None else WINDOWS.create(name)


def fused_engine(
    draft: ModelRunner,
    target: ModelRunner,
    window=None,
    batcher=None,
    **engine_kwargs,
) -> EdgeEngine:
    core = VerifierCore(target, batcher or make_batcher())
    return EdgeEngine(draft, [LocalEndpoint(core, 0, f"local:{target.name}")],
                      window or make_window("static", 4), ROUTERS.create("jsq"),
                      eos_ids=target.eos_ids, **engine_kwargs)


def cloud_only_engine(target: ModelRunner, batcher=None, **engine_kwargs) -> EdgeEngine:
    core = VerifierCore(target, batcher or make_batcher())
    return EdgeEngine(None, [LocalEndpoint(core, 0, f"local:{target.name}")],
                      make_window("static", 1), ROUTERS.create("jsq"),
                      eos_ids=target.eos_ids, **engine_kwargs)

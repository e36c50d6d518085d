"""Single-process modes, for comparing the three modes on the same hardware and prompts.

- fused: draft and target in one process; the edge engine talks to an in-process verifier
  core (same scheduler, batching and verification math, no network);
- cloud-only: target only; every round has gamma = 0 (plain target decoding, still batched
  across sessions by the verifier core).

Both reach their core through `LocalEndpoint`, the in-process twin of `RemoteEndpoint`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from dsd.policies import BATCHERS, ROUTERS, WINDOWS
from dsd.runtime.backends import Backend
from dsd.runtime.backends.compat import VocabMismatch, check_pair
from dsd.runtime.client import Endpoint, Reply, VerifierBusy, VerifierFailure, VerifierRefused
from dsd.runtime.edge import EdgeEngine
from dsd.runtime.scheduler import (
    CapacityError,
    ContextLimitError,
    SessionClosed,
    SessionFailed,
    VerifierCore,
)


class LocalEndpoint(Endpoint):
    """A verifier core in the same process (fused and cloud-only modes): no network."""

    def __init__(self, core: VerifierCore, target_id: int = 0, name: str = "local") -> None:
        super().__init__(target_id=target_id, name=name, ready=True,
                         max_context=core.max_context, vocab_size=core.vocab_size)
        self.core = core
        self.fingerprint = core.backend.fingerprint

    async def connect(self, fingerprint: str, vocab_size: int, edge_id: str = "") -> None:
        if fingerprint and fingerprint != self.fingerprint and not vocab_size:
            raise VerifierRefused("tokenizer mismatch: the edge and target models must share "
                                  "a tokenizer")
        if vocab_size:
            try:
                check_pair(vocab_size, fingerprint, self.core.vocab_size, self.fingerprint)
            except VocabMismatch as exc:
                raise VerifierRefused(f"draft cannot pair with the target: {exc}") from None
        await self.core.start()
        self.ready = True

    def session(self, request_id: str, deadline_s: float, round_timeout_s: float):
        return LocalSession(self)

    async def close(self) -> None:
        await self.core.stop()


class LocalSession:
    def __init__(self, ep: LocalEndpoint) -> None:
        self.ep = ep
        self.key: int | None = None

    async def open(self, prompt_ids, params, max_new_tokens, fingerprint,
                   on_sent: Callable[[], None] | None = None, vocab_size: int = 0) -> Reply:
        t0 = time.perf_counter()
        if on_sent is not None:  # nothing to send: the core has the prompt at once
            on_sent()
        try:
            self.key, first = await self.ep.core.open(
                "local", list(prompt_ids), params, max_new_tokens=max_new_tokens,
                vocab_limit=vocab_size or None)
        except CapacityError as exc:
            raise VerifierBusy(str(exc)) from None
        except SessionFailed as exc:
            raise VerifierFailure(str(exc), down=False) from None
        except ContextLimitError as exc:
            raise VerifierRefused(str(exc)) from None
        return Reply(first, 0, self.ep.core.load(), time.perf_counter() - t0, 0.0)

    async def verify(self, rnd, draft, proposals) -> Reply:
        t0 = time.perf_counter()
        try:
            out = await self.ep.core.verify(self.key, list(draft), proposals)
        except (SessionClosed, SessionFailed) as exc:
            raise VerifierFailure(str(exc), down=False) from None
        except ContextLimitError as exc:
            raise VerifierRefused(str(exc)) from None
        return Reply(out.next_token, out.accepted, self.ep.core.load(),
                     time.perf_counter() - t0, 0.0, out.batch_size)

    async def close(self) -> None:
        if self.key is not None:
            self.ep.core.close(self.key)
            self.key = None


def make_batcher(name: str = "fifo", max_batch: int = 16, max_wait_ms: float = 0.0):
    kwargs = {"max_batch": max_batch}
    if max_wait_ms:
        kwargs["max_wait_ms"] = max_wait_ms
    return BATCHERS.create(name, **kwargs)


def make_window(name: str = "static", gamma: int | None = None):
    return WINDOWS.create(name, gamma=gamma) if gamma is not None else WINDOWS.create(name)


def fused_engine(
    draft: Backend,
    target: Backend,
    window=None,
    batcher=None,
    core_kwargs: dict | None = None,
    **engine_kwargs,
) -> EdgeEngine:
    """Draft and target in one process. The pair must pass the vocabulary rule."""
    try:
        check_pair(draft.vocab_size, draft.fingerprint, target.vocab_size, target.fingerprint)
    except VocabMismatch as exc:
        raise VerifierRefused(f"draft {draft.name} cannot pair with target {target.name}: "
                              f"{exc}") from None
    core = VerifierCore(target, batcher or make_batcher(), **(core_kwargs or {}))
    return EdgeEngine(draft, [LocalEndpoint(core, 0, f"local:{target.name}")],
                      window or make_window("static", 4), ROUTERS.create("jsq"),
                      eos_ids=target.eos_ids, **engine_kwargs)


def cloud_only_engine(target: Backend, batcher=None, core_kwargs: dict | None = None,
                      **engine_kwargs) -> EdgeEngine:
    core = VerifierCore(target, batcher or make_batcher(), **(core_kwargs or {}))
    return EdgeEngine(None, [LocalEndpoint(core, 0, f"local:{target.name}")],
                      make_window("static", 1), ROUTERS.create("jsq"),
                      eos_ids=target.eos_ids, **engine_kwargs)

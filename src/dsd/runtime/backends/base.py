"""The engine seam: what the runtime asks of an inference engine, and nothing more.

Every engine (HF transformers, llama.cpp) implements `Backend`; the scheduler and the edge
see only this module's types. A session's KV cache is an opaque `KVHandle` (`length`,
`crop(n)`, `release()`). A `Step` feeds one session's new tokens after its cached ones and
asks for logits of its last `keep` positions only: a verify wants gamma + 1, the last chunk
of a prefill wants 1, an earlier chunk 0. `forward_batch` runs a ragged list of steps
(sessions differ in cached length and in new tokens) as one engine step where the engine
can; logits come back as float32 torch tensors, one [keep, vocab_size] per step.

The KV budget: `kv_capacity` tokens shared by every session of the backend (None means
unbounded) and at most `max_sessions` live handles. A step that does not fit raises
`KVBudgetError` before anything changes, so a scheduler can hold new sessions back until
others finish (as the simulator models it) instead of failing one mid-flight.

The checks every engine needs (bounds, ownership, budget, token ids) live here, once.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dsd.errors import DsdError

if TYPE_CHECKING:  # engines return torch tensors; the protocol itself needs no torch
    import torch


class BackendError(DsdError):
    """A request the backend cannot serve (bad token, context overflow, closed handle)."""


class KVBudgetError(BackendError):
    """The KV budget cannot hold this step now; it may fit once other sessions release."""


class KVHandle:
    """One session's KV cache inside a backend: opaque to everything outside the engine.

    Engines subclass it to hold their own state (a transformers cache, a llama.cpp seq_id).
    """

    __slots__ = ("_backend", "_length", "_released")

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._length = 0
        self._released = False

    @property
    def length(self) -> int:
        """Tokens cached for this session."""
        return self._length

    @property
    def released(self) -> bool:
        return self._released

    def crop(self, n: int) -> None:
        """Keep only the first n cached tokens (drop rejected drafts)."""
        self._check_live()
        if not 0 <= n <= self._length:
            raise BackendError(f"cannot crop a {self._length}-token KV cache to {n} tokens")
        if n == self._length:
            return
        self._backend._crop(self, n)
        self._backend._kv_used -= self._length - n
        self._length = n

    def release(self) -> None:
        """Free this session's KV; the handle is unusable afterwards. Idempotent."""
        if self._released:
            return
        self._backend._release(self)
        self._backend._kv_used -= self._length
        self._backend._live -= 1
        self._length = 0
        self._released = True

    def _check_live(self) -> None:
        if self._released:
            raise BackendError("KV handle used after release()")


@dataclass(frozen=True, slots=True)
class Step:
    """One session's share of a forward: `tokens` after its cache; logits for the last `keep`."""

    kv: KVHandle
    tokens: Sequence[int]
    keep: int | None = None  # None = every new position

    @property
    def n_keep(self) -> int:
        return len(self.tokens) if self.keep is None else self.keep


def tokenizer_fingerprint(tokenizer) -> str:
    """A stable digest of the vocabulary and special tokens; equal iff tokenizers agree.

    Padding rows of the embedding table that a GGUF conversion names `[PAD<id>]` are not
    tokens and are left out: checkpoints of one family padded to different sizes (Qwen2.5
    0.5B and 7B) then share a fingerprint, and the vocabulary rule (compat.py) pairs them."""
    vocab = sorted(((text, i) for text, i in tokenizer.get_vocab().items()
                    if text != f"[PAD{i}]"), key=lambda kv: kv[1])
    payload = json.dumps(
        {"vocab": vocab, "eos": tokenizer.eos_token_id, "bos": tokenizer.bos_token_id},
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


class Backend(ABC):
    """An inference engine behind the runtime. Subclasses set the metadata in __init__.

    Metadata: `name`; `vocab_size` (width of the logits); `max_context` (longest sequence one
    session may hold); `tokenizer` (HF-style: callable -> .input_ids, decode, get_vocab,
    apply_chat_template, eos_token_id); `fingerprint` (of the tokenizer); `eos_ids`;
    `kv_capacity` and `max_sessions` (None = unbounded).
    """

    name: str
    vocab_size: int
    max_context: int
    tokenizer: object
    fingerprint: str
    eos_ids: frozenset[int]
    kv_capacity: int | None = None
    max_sessions: int | None = None

    def __init__(self) -> None:
        self._kv_used = 0
        self._live = 0

    # ---- the budget -----------------------------------------------------------------------

    @property
    def kv_used(self) -> int:
        """Tokens cached across all live sessions."""
        return self._kv_used

    @property
    def kv_free(self) -> int | None:
        """Tokens that can still be cached (None = unbounded)."""
        return None if self.kv_capacity is None else self.kv_capacity - self._kv_used

    @property
    def sessions(self) -> int:
        """Live KV handles."""
        return self._live

    def fits(self, new_tokens: int, new_sessions: int = 0) -> bool:
        """Whether `new_tokens` more tokens (and `new_sessions` more handles) fit right now."""
        if self.max_sessions is not None and self._live + new_sessions > self.max_sessions:
            return False
        return self.kv_capacity is None or self._kv_used + new_tokens <= self.kv_capacity

    # ---- sessions and forwards ------------------------------------------------------------

    def new_kv(self) -> KVHandle:
        """An empty KV cache for a new session."""
        if not self.fits(0, 1):
            raise KVBudgetError(f"{self.name}: all {self.max_sessions} session slots are in use")
        kv = self._new_kv()
        self._live += 1
        return kv

    def forward_batch(self, steps: Iterable[Step | tuple]) -> list[torch.Tensor]:
        """Run ragged steps (at most one per session) as one engine step.

        Returns one float32 tensor [keep, vocab_size] per step, in order. Each session's
        cache grows by its new tokens. Raises BackendError / KVBudgetError before any
        cache changes when a step is invalid or does not fit.
        """
        steps = [s if isinstance(s, Step) else Step(*s) for s in steps]
        if not steps:
            return []
        self._validate(steps)
        out = self._forward(steps)
        for step in steps:
            step.kv._length += len(step.tokens)
            self._kv_used += len(step.tokens)
        return out

    def forward(self, kv: KVHandle, tokens: Sequence[int], keep: int | None = None):
        """One session's forward: logits [keep or len(tokens), vocab_size]."""
        return self.forward_batch([Step(kv, tokens, keep)])[0]

    def prefill(self, kv: KVHandle, tokens: Sequence[int], chunk: int | None = None):
        """Feed a prompt, `chunk` tokens per forward (None = all at once). Returns the last
        position's logits [vocab_size]: the distribution of the first generated token."""
        if not tokens:
            raise BackendError("prefill needs at least one token")
        size = len(tokens) if not chunk else chunk
        if size < 1:
            raise BackendError(f"prefill chunk must be >= 1, got {chunk}")
        last = None
        for start in range(0, len(tokens), size):
            part = tokens[start:start + size]
            is_last = start + size >= len(tokens)
            last = self.forward(kv, part, keep=1 if is_last else 0)
        return last[-1]

    def isolated(self, kv_tokens: int, max_sessions: int, n_batch: int = 512) -> Backend:
        """An engine for the same model whose KV cannot slow this one's steps (or be slowed
        by them): profiling measures a step with only its own caches present. Engines whose
        sessions never share attention (HF: one cache per session) return themselves."""
        return self

    def close(self) -> None:  # noqa: B027 - engines without native resources need nothing
        """Free the engine (models, contexts). Handles must not be used afterwards."""

    def _validate(self, steps: list[Step]) -> None:
        seen: set[int] = set()
        total = 0
        for i, step in enumerate(steps):
            kv, n = step.kv, len(step.tokens)
            if not isinstance(kv, KVHandle) or kv._backend is not self:
                raise BackendError(f"step {i}: KV handle belongs to another backend")
            kv._check_live()
            if id(kv) in seen:
                raise BackendError(f"step {i}: a session appears twice in one batch")
            seen.add(id(kv))
            if n == 0:
                raise BackendError(f"step {i}: no new tokens")
            if not 0 <= step.n_keep <= n:
                raise BackendError(f"step {i}: keep={step.keep} outside [0, {n}]")
            if kv.length + n > self.max_context:
                raise BackendError(
                    f"step {i}: {kv.length} cached + {n} new tokens exceed the context "
                    f"length {self.max_context} of {self.name}")
            lo, hi = min(step.tokens), max(step.tokens)
            if lo < 0 or hi >= self.vocab_size:
                bad = lo if lo < 0 else hi
                raise BackendError(f"step {i}: token id {bad} outside the vocabulary "
                                   f"[0, {self.vocab_size})")
            total += n
        if self.kv_capacity is not None and self._kv_used + total > self.kv_capacity:
            raise KVBudgetError(
                f"{self.name}: KV budget full ({self._kv_used} of {self.kv_capacity} tokens "
                f"used, this step needs {total} more)")

    # ---- what an engine implements --------------------------------------------------------

    @abstractmethod
    def _new_kv(self) -> KVHandle: ...

    @abstractmethod
    def _forward(self, steps: list[Step]) -> list[torch.Tensor]:
        """Run validated steps; do not touch handle lengths (the base class does)."""

    @abstractmethod
    def _crop(self, kv: KVHandle, n: int) -> None: ...

    @abstractmethod
    def _release(self, kv: KVHandle) -> None: ...

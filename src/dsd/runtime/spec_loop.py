"""Speculative decoding of many sessions in one process, on the backend protocol alone.

The reference loop for the engine seam (`dsd.runtime.backends`): every round drafts gamma
tokens for all live sessions with one draft `forward_batch` per draft position, then
verifies all of them in ONE ragged target `forward_batch` (gamma + 1 logits per session) and
applies the lossless math of `runtime/speculative.py`. Prompts are prefilled in chunks in
the same batched calls. No network and no scheduler: the conformance tests check backends
with it (lossless output) and the batching benchmark times it; the gRPC edge and verifier
run the same steps split across two processes.

Invariants (as in the verifier and the edge): `committed` holds prompt + output; the target
cache holds all committed tokens but the last, which opens the next verify query; the draft
cache holds a prefix of committed (+ the round's drafts until the verdict).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from dsd.runtime.backends.base import Backend, KVHandle, Step
from dsd.runtime.speculative import (
    SamplingParams,
    SparseDist,
    make_generator,
    propose,
    sample,
    target_probs,
    verify_greedy,
    verify_sampled,
)


@dataclass(eq=False)
class _Session:
    prompt: list[int]
    params: SamplingParams
    max_tokens: int
    target_kv: KVHandle
    draft_kv: KVHandle | None
    gen_target: torch.Generator
    gen_draft: torch.Generator
    committed: list[int] = field(default_factory=list)
    fed: int = 0  # prompt tokens already prefilled on the target

    @property
    def output(self) -> list[int]:
        return self.committed[len(self.prompt):]

    @property
    def remaining(self) -> int:
        return self.max_tokens - len(self.output)


@dataclass
class LoopStats:
    rounds: int = 0  # per-session verify rounds
    verify_steps: int = 0  # batched target forwards for verification
    drafted: int = 0
    accepted: int = 0
    emitted: int = 0  # tokens produced by verification (accepted + 1 per round)
    prefill_s: float = 0.0
    draft_s: float = 0.0
    verify_s: float = 0.0  # target forward + verification math

    @property
    def acceptance(self) -> float:
        return self.accepted / self.drafted if self.drafted else 0.0


def _pick(logits: torch.Tensor, params: SamplingParams, gen: torch.Generator) -> int:
    if params.greedy:
        return int(torch.argmax(logits))
    return sample(target_probs(logits, params), gen)


def generate(
    target: Backend,
    draft: Backend | None,
    prompts: list[list[int]],
    max_tokens: int,
    gamma: int = 4,
    params: SamplingParams | list[SamplingParams] | None = None,
    prefill_chunk: int | None = None,
    max_support: int = 256,
) -> tuple[list[list[int]], LoopStats]:
    """Generate `max_tokens` tokens per prompt (no EOS stop). Returns (outputs, stats).

    `draft=None` (or gamma=0) decodes with the target alone, one token per round, through
    the same batched calls: the target-only baseline. Every KV handle is released at the end.
    """
    if max_tokens < 1:
        raise ValueError("max_tokens must be >= 1")
    if isinstance(params, list):
        per = params
    else:
        per = [params or SamplingParams()] * len(prompts)
    gamma = gamma if draft is not None else 0
    stats = LoopStats()
    sessions = []
    try:
        for prompt, p in zip(prompts, per, strict=True):
            seed = p.seed
            sessions.append(_Session(
                list(prompt), p, max_tokens, target.new_kv(),
                draft.new_kv() if draft is not None else None,
                make_generator(seed), make_generator(None if seed is None else seed + 1),
                committed=list(prompt)))
        _prefill(target, sessions, prefill_chunk, stats)
        live = [s for s in sessions if s.remaining > 0]
        while live:
            g = [min(gamma, s.remaining - 1) for s in live]
            drafts, proposals = _draft(draft, live, g, max_support, stats)
            _verify(target, live, drafts, proposals, stats)
            live = [s for s in live if s.remaining > 0]
        return [s.output[:max_tokens] for s in sessions], stats
    finally:
        for s in sessions:
            s.target_kv.release()
            if s.draft_kv is not None:
                s.draft_kv.release()


def _prefill(target: Backend, sessions: list[_Session], chunk: int | None,
             stats: LoopStats) -> None:
    """Prefill every prompt in batched chunks; the first output token is picked from the
    logits of the prompt's last position."""
    t0 = time.perf_counter()
    pending = list(sessions)
    while pending:
        steps = []
        for s in pending:
            size = len(s.prompt) - s.fed if not chunk else min(chunk, len(s.prompt) - s.fed)
            last = s.fed + size == len(s.prompt)
            steps.append(Step(s.target_kv, s.prompt[s.fed:s.fed + size], 1 if last else 0))
        logits = target.forward_batch(steps)
        for s, step, lg in zip(pending, steps, logits, strict=True):
            s.fed += len(step.tokens)
            if s.fed == len(s.prompt):
                # the cache now holds the whole prompt: all committed tokens but this one
                s.committed.append(_pick(lg[-1], s.params, s.gen_target))
        pending = [s for s in pending if s.fed < len(s.prompt)]
    stats.prefill_s += time.perf_counter() - t0


def _draft(draft: Backend | None, live: list[_Session], gammas: list[int], max_support: int,
           stats: LoopStats) -> tuple[list[list[int]], list[list[SparseDist]]]:
    drafts: list[list[int]] = [[] for _ in live]
    proposals: list[list[SparseDist]] = [[] for _ in live]
    if draft is None or max(gammas, default=0) == 0:
        return drafts, proposals
    t0 = time.perf_counter()
    for pos in range(max(gammas)):
        idx = [i for i, g in enumerate(gammas) if g > pos]
        steps = []
        for i in idx:
            s = live[i]
            if pos == 0:
                if s.draft_kv.length >= len(s.committed):  # always feed at least one token
                    s.draft_kv.crop(len(s.committed) - 1)
                feed = s.committed[s.draft_kv.length:]
            else:
                feed = [drafts[i][-1]]
            steps.append(Step(s.draft_kv, feed, 1))
        for i, lg in zip(idx, draft.forward_batch(steps), strict=True):
            s = live[i]
            tok, q, _ = propose(lg[-1], s.params, s.gen_draft, max_support)
            drafts[i].append(tok)
            if q is not None:
                proposals[i].append(q)
    stats.draft_s += time.perf_counter() - t0
    return drafts, proposals


def _verify(target: Backend, live: list[_Session], drafts: list[list[int]],
            proposals: list[list[SparseDist]], stats: LoopStats) -> None:
    t0 = time.perf_counter()
    steps = [Step(s.target_kv, s.committed[s.target_kv.length:] + d)
             for s, d in zip(live, drafts, strict=True)]
    logits = target.forward_batch(steps)
    for s, d, q, lg in zip(live, drafts, proposals, logits, strict=True):
        lg = lg[-(len(d) + 1):]
        if s.params.greedy:
            accepted, token = verify_greedy(d, lg)
        else:
            accepted, token = verify_sampled(d, q, target_probs(lg, s.params), s.gen_target)
        base = len(s.committed)
        s.target_kv.crop(base + accepted)
        if s.draft_kv is not None:
            s.draft_kv.crop(min(s.draft_kv.length, base + accepted))
        s.committed.extend(d[:accepted])
        s.committed.append(token)
        stats.rounds += 1
        stats.drafted += len(d)
        stats.accepted += accepted
        stats.emitted += accepted + 1
    stats.verify_steps += 1
    stats.verify_s += time.perf_counter() - t0

"""Lossless speculative decoding math: sampling transforms, sparse proposals, verification.

Pure functions on tensors, no models: the edge calls `propose` to draft a token and build
the exact proposal distribution it sampled from; the verifier calls `verify_greedy` or
`verify_sampled` with the target's logits for the gamma+1 positions.

Conventions (REFERENCE.md section 2): for i = 1..gamma accept x_i with probability
min(1, p_i(x_i) / q_i(x_i)); at the first rejection sample the replacement from
norm(max(0, p_i - q_i)); if every draft is accepted sample a bonus token from p_{gamma+1}.
With temperature 0 the rule is exact-match against the target argmax, so the output equals
target-only greedy decoding token for token.

The proposal q may be any distribution the edge chooses, as long as the edge samples from
exactly q and sends q exactly: the output is still distributed as the target's p. The edge
therefore truncates its proposal to at most `max_support` tokens (sparse, cheap to send)
even when the client asked for untruncated sampling; only the acceptance rate depends on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True, slots=True)
class SamplingParams:
    """Per-request sampling settings; temperature 0 means greedy."""

    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0  # 0 = no top-k truncation
    seed: int | None = None

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0

    def validate(self) -> None:
        if not (0.0 <= self.temperature <= 100.0):
            raise ValueError("temperature must be in [0, 100]")
        if not (0.0 < self.top_p <= 1.0):
            raise ValueError("top_p must be in (0, 1]")
        if self.top_k < 0:
            raise ValueError("top_k must be >= 0")


@dataclass(slots=True)
class SparseDist:
    """A distribution given by its support: token ids and their probabilities (sum 1)."""

    ids: torch.Tensor  # int64 [k]
    probs: torch.Tensor  # float32 [k]

    def prob_of(self, token: int) -> float:
        hit = (self.ids == token).nonzero()
        return float(self.probs[hit[0, 0]]) if hit.numel() else 0.0

    def dense(self, vocab_size: int) -> torch.Tensor:
        out = torch.zeros(vocab_size, dtype=torch.float32)
        out[self.ids] = self.probs
        return out


def target_probs(logits: torch.Tensor, params: SamplingParams) -> torch.Tensor:
    """Turn logits [..., V] into the sampling distribution [..., V] (float32).

    Applies temperature, then top-k, then top-p (nucleus: keep the smallest set of most
    likely tokens whose mass reaches top_p). Not used for greedy requests.
    """
    logits = logits.float() / max(params.temperature, 1e-6)
    vocab = logits.shape[-1]
    if 0 < params.top_k < vocab:
        kth = torch.topk(logits, params.top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    if params.top_p < 1.0:
        sorted_p, order = torch.sort(probs, dim=-1, descending=True)
        cum = torch.cumsum(sorted_p, dim=-1)
        # drop a token when the mass before it already reaches top_p (keeps at least one)
        drop_sorted = (cum - sorted_p) >= params.top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        probs = probs.masked_fill(drop, 0.0)
        probs = probs / probs.sum(dim=-1, keepdim=True)
    return probs


def to_sparse(probs: torch.Tensor, max_support: int) -> SparseDist:
    """The proposal the edge samples from: probs [V] restricted to its (at most
    `max_support`) most likely nonzero tokens, renormalized. Exact by construction."""
    k = min(max_support, probs.shape[-1])
    top = torch.topk(probs, k)
    keep = top.values > 0
    ids, vals = top.indices[keep], top.values[keep].float()
    vals = vals / vals.sum()
    return SparseDist(ids=ids.to(torch.int64), probs=vals.contiguous())


def sample(probs: torch.Tensor, generator: torch.Generator | None) -> int:
    return int(torch.multinomial(probs, 1, generator=generator))


def propose(
    logits: torch.Tensor,
    params: SamplingParams,
    generator: torch.Generator | None,
    max_support: int = 256,
) -> tuple[int, SparseDist | None, float]:
    """Draft one token from draft logits [V].

    Returns (token, proposal, confidence): the proposal is None for greedy requests;
    confidence is the draft's top-1 probability (a window-policy feature).
    """
    if params.greedy:
        token = int(torch.argmax(logits))
        conf = float(torch.softmax(logits.float(), dim=-1)[token])
        return token, None, conf
    q = to_sparse(target_probs(logits, params), max_support)
    idx = sample(q.probs, generator)
    return int(q.ids[idx]), q, float(q.probs.max())


def verify_greedy(draft: list[int], target_logits: torch.Tensor) -> tuple[int, int]:
    """Greedy verification. target_logits [gamma+1, V]. Returns (accepted, next_token)."""
    best = torch.argmax(target_logits, dim=-1).tolist()
    accepted = 0
    for i, tok in enumerate(draft):
        if tok != best[i]:
            break
        accepted += 1
    return accepted, int(best[accepted])


def verify_sampled(
    draft: list[int],
    proposals: list[SparseDist],
    p: torch.Tensor,
    generator: torch.Generator | None,
) -> tuple[int, int]:
    """Speculative sampling verification (lossless).

    draft: x_1..x_gamma; proposals: q_1..q_gamma (sparse, exact); p: target sampling
    distributions [gamma+1, V]. Returns (accepted, next_token) where next_token is the
    residual resample at the first rejection or the bonus token from p_{gamma+1}.
    """
    if len(proposals) != len(draft):
        raise ValueError("one proposal per draft token is required")
    vocab = p.shape[-1]
    for i, tok in enumerate(draft):
        qx = proposals[i].prob_of(tok)
        px = float(p[i, tok])
        u = float(torch.rand((), generator=generator))
        if qx > 0.0 and u * qx < px:
            continue
        residual = torch.clamp(p[i] - proposals[i].dense(vocab), min=0.0)
        total = float(residual.sum())
        dist = residual / total if total > 1e-12 else p[i]
        return i, sample(dist, generator)
    return len(draft), sample(p[len(draft)], generator)


def make_generator(seed: int | None) -> torch.Generator:
    gen = torch.Generator()
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(int(seed) & 0xFFFF_FFFF_FFFF_FFFF)
    return gen

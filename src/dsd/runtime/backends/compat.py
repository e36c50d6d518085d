"""Can this draft speculate for this target? The vocabulary rule, as a pure function.

Checkpoints of one family often share a tokenizer but pad their embedding tables
differently: Qwen2.5-0.5B has 151,936 logits, Qwen2.5-7B/32B/72B have 152,064, and all of
them have the same 151,665 real tokens. llama.cpp's speculative decoding accepts such a pair
when the sizes differ by at most 128 (`SPEC_VOCAB_MAX_SIZE_DIFFERENCE`) and the token texts
agree on the ids both have; dsd applies the same rule.

Texts agree when the tokenizer fingerprints are equal (same vocabulary and special tokens),
or, given both texts, id by id. Ids at or past `shared` exist on one side only (padding
rows without text): a verifier should never emit them, so the draft can always feed them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dsd.errors import DsdError

MAX_VOCAB_DIFFERENCE = 128


class VocabMismatch(DsdError):
    """The draft and target vocabularies cannot be paired."""


@dataclass(frozen=True, slots=True)
class VocabView:
    """What the pairing rule needs of one model's vocabulary."""

    size: int  # width of the logits (rows of the embedding table)
    fingerprint: str = ""  # tokenizer fingerprint ("" = unknown)
    texts: Sequence[str] | None = None  # token text by id, if known
    bos_id: int | None = None
    eos_id: int | None = None


def check_vocab_pair(draft: VocabView, target: VocabView) -> int:
    """Return the shared vocabulary size, or raise VocabMismatch with one line saying why."""
    gap = abs(draft.size - target.size)
    if gap > MAX_VOCAB_DIFFERENCE:
        raise VocabMismatch(
            f"vocabulary sizes differ by {gap} (draft {draft.size}, target {target.size}); "
            f"at most {MAX_VOCAB_DIFFERENCE} is allowed")
    shared = min(draft.size, target.size)
    if draft.fingerprint and draft.fingerprint == target.fingerprint:
        return shared
    for what in ("bos_id", "eos_id"):
        a, b = getattr(draft, what), getattr(target, what)
        if a is not None and b is not None and a != b:
            raise VocabMismatch(f"special token {what} differs: draft {a}, target {b}")
    if draft.texts is None or target.texts is None:
        raise VocabMismatch(
            f"tokenizer mismatch: tokenizers differ (fingerprint {draft.fingerprint[:12] or '?'}"
            f" vs {target.fingerprint[:12] or '?'}) and no token texts were given to compare; "
            "the draft and target models must share a tokenizer")
    n = min(len(draft.texts), len(target.texts), shared)
    for i in range(n):
        if draft.texts[i] != target.texts[i]:
            raise VocabMismatch(
                f"token {i} differs: draft {draft.texts[i]!r}, target {target.texts[i]!r}")
    return shared


def check_pair(draft_size: int, draft_fingerprint: str, target_size: int,
               target_fingerprint: str) -> int:
    """The rule for two models known by logit width and tokenizer fingerprint, as the
    runtime's handshake knows them. A fingerprint that is unknown ("", a model without a
    tokenizer) leaves the sizes to decide."""
    if not (draft_fingerprint and target_fingerprint):
        draft_fingerprint = target_fingerprint = (draft_fingerprint or target_fingerprint
                                                  or "unknown")
    return check_vocab_pair(VocabView(draft_size, draft_fingerprint),
                            VocabView(target_size, target_fingerprint))

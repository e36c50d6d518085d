"""The draft/target vocabulary rule (llama.cpp's): sizes within 128, shared texts agree."""

from __future__ import annotations

import pytest

from dsd.runtime.backends.compat import (
    MAX_VOCAB_DIFFERENCE,
    VocabMismatch,
    VocabView,
    check_vocab_pair,
)

QWEN_FP = "a" * 32  # one tokenizer, two embedding-table sizes


def test_qwen_small_and_large_pair():
    # Qwen2.5-0.5B: 151936 logits; 7B/32B/72B: 152064; same tokenizer fingerprint
    assert check_vocab_pair(VocabView(151936, QWEN_FP), VocabView(152064, QWEN_FP)) == 151936
    assert check_vocab_pair(VocabView(152064, QWEN_FP), VocabView(151936, QWEN_FP)) == 151936


def test_equal_sizes_and_tokenizers():
    assert check_vocab_pair(VocabView(259, "f"), VocabView(259, "f")) == 259


@pytest.mark.parametrize("gap", [MAX_VOCAB_DIFFERENCE, MAX_VOCAB_DIFFERENCE + 1])
def test_size_gap_limit(gap):
    draft, target = VocabView(1000, "f"), VocabView(1000 + gap, "f")
    if gap <= MAX_VOCAB_DIFFERENCE:
        assert check_vocab_pair(draft, target) == 1000
    else:
        with pytest.raises(VocabMismatch, match=f"differ by {gap}.*at most 128") as err:
            check_vocab_pair(draft, target)
        assert "\n" not in str(err.value)


def test_texts_decide_when_fingerprints_differ():
    texts = ["<s>", "</s>", "a", "b", "c"]
    more = texts + ["<extra>"]  # the target has one more added token
    assert check_vocab_pair(VocabView(6, "x", texts), VocabView(6, "y", more)) == 6
    changed = ["<s>", "</s>", "a", "B", "c"]
    with pytest.raises(VocabMismatch, match="token 3 differs: draft 'b', target 'B'"):
        check_vocab_pair(VocabView(5, "x", texts), VocabView(5, "y", changed))


def test_unknown_texts_and_different_fingerprints_refuse():
    with pytest.raises(VocabMismatch, match="tokenizers differ .*no token texts"):
        check_vocab_pair(VocabView(100, "x" * 32), VocabView(100, "y" * 32))
    with pytest.raises(VocabMismatch, match="tokenizers differ"):
        check_vocab_pair(VocabView(100), VocabView(100))  # nothing known: refuse


def test_special_tokens_must_agree():
    texts = ["<s>", "</s>", "a"]
    with pytest.raises(VocabMismatch, match="eos_id differs: draft 1, target 0"):
        check_vocab_pair(VocabView(3, "x", texts, eos_id=1),
                         VocabView(3, "y", texts, eos_id=0))

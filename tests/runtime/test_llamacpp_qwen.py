"""The real pair on llama.cpp: Qwen2.5-Coder 0.5B -> 1.5B, Q4_K_M GGUFs as published.

Slow; needs `python scripts/install_qwen_pair.py --formats gguf` (skips otherwise).
Speculative greedy output on the quantized pair equals plain llama.cpp target-only greedy,
the GGUF's own tokenizer agrees with transformers' reading of the same file, and the pair
passes the vocabulary rule.
"""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from backend_helpers import HAVE_LLAMA  # noqa: E402

MODELS = Path(__file__).resolve().parents[2] / ".cache" / "models"
DRAFT = MODELS / "qwen2.5-coder-0.5b-q4_k_m.gguf"
TARGET = MODELS / "qwen2.5-coder-1.5b-q4_k_m.gguf"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.runtime,
    pytest.mark.skipif(not HAVE_LLAMA, reason="llama-cpp-python is not installed"),
    pytest.mark.skipif(not (DRAFT.is_file() and TARGET.is_file()),
                       reason="Qwen GGUFs not installed (scripts/install_qwen_pair.py)"),
]

QUESTIONS = [
    "Write a Python function that checks whether a number is prime.",
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips "
    "in May. How many clips did Natalia sell altogether in April and May?",
    "def fibonacci(n):",
]
N = 32


@pytest.fixture(scope="module")
def pair():
    from dsd.runtime.backends import load_backend

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    target = load_backend(TARGET, kv_tokens=2048, max_sessions=4, n_threads=1)
    draft = load_backend(DRAFT, kv_tokens=2048, max_sessions=4, n_threads=1)
    yield target, draft
    target.close()
    draft.close()
    torch.set_num_threads(threads)


def prompts(tok):
    texts = [tok.apply_chat_template([{"role": "user", "content": q}], tokenize=False,
                                     add_generation_prompt=True) for q in QUESTIONS]
    return [tok(t, add_special_tokens=False).input_ids for t in texts]


def test_speculative_greedy_equals_plain_llamacpp(pair):
    from llama_cpp import Llama

    from dsd.runtime.spec_loop import generate

    target, draft = pair
    ids = prompts(target.tokenizer)
    outs, stats = generate(target, draft, ids, N, gamma=4)
    llm = Llama(model_path=str(TARGET), n_ctx=1024, n_threads=1, verbose=False)
    try:
        for i, out in zip(ids, outs, strict=True):
            ref = []
            for tok in llm.generate(i, temp=0.0, top_k=1, repeat_penalty=1.0, reset=True):
                ref.append(tok)
                if len(ref) == N:
                    break
            assert out == ref
    finally:
        llm.close()
    assert stats.acceptance > 0.3


def test_gguf_tokenizer_agrees_with_transformers(pair):
    from transformers import AutoTokenizer

    from dsd.runtime.backends.compat import VocabView, check_vocab_pair

    target, draft = pair
    hf = AutoTokenizer.from_pretrained(str(MODELS), gguf_file=TARGET.name)
    for text in QUESTIONS + ["  leading spaces, tabs\tand ünïcode ✓ 你好", "<|im_start|>user"]:
        assert target.tokenizer(text).input_ids == hf(text).input_ids, text
        assert target.tokenizer.decode(hf(text).input_ids) == text
    chat = [{"role": "user", "content": QUESTIONS[0]}]
    assert target.tokenizer.apply_chat_template(chat, tokenize=False,
                                                add_generation_prompt=True) == \
        hf.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    assert draft.fingerprint == target.fingerprint
    assert check_vocab_pair(VocabView(draft.vocab_size, draft.fingerprint),
                            VocabView(target.vocab_size, target.fingerprint)) == 151936

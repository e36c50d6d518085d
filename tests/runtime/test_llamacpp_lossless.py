"""Lossless speculative decoding on llama.cpp, at the backend level (no network).

- Greedy: the batched speculative loop (`dsd.runtime.spec_loop`) on the tiny GGUF pair
  equals plain llama.cpp target-only greedy decoding of the same GGUF (llama-cpp-python's
  own `Llama.generate`, an independent code path), token for token, over many prompts and
  gammas, with and without chunked prefill.
- Sampled: a tiny-vocabulary pair as GGUF; the empirical joint distribution of tokens 2-4
  from speculative sampling matches the exact target-only distribution (computed by
  enumeration with the same llama.cpp model) by a chi-square test, and the test rejects
  the draft's own distribution.
- The engines agree with each other: HF and llama.cpp logits on the same tiny weights, and
  the two tokenizers (same ids, same fingerprint).
"""

from __future__ import annotations

import itertools

import pytest

torch = pytest.importorskip("torch")

from backend_helpers import HAVE_LLAMA, open_backend, tiny_dir  # noqa: E402
from rt_helpers import chi2_critical, chi2_stat  # noqa: E402

pytestmark = [pytest.mark.runtime,
              pytest.mark.skipif(not HAVE_LLAMA, reason="llama-cpp-python is not installed "
                                                        "(pip install 'dsd[llamacpp]')")]

PROMPTS = ["The quick brown fox", "hello", "Once upon a time there was", "def f(x):\n  return",
           "1, 2, 3,", "<s>user: hi\n<s>assistant: ", "zzz", "A longer prompt: the verifier "
           "must handle sessions of different lengths in one batch."]
N = 32


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """torch only does the per-token verification math here: its thread pool would spin
    against llama.cpp's (two OpenMP runtimes in one process); with 2 torch threads the
    sampled test below took 28 s instead of 4 s on the 2-core development machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def pair():
    target = open_backend("llamacpp", "target", kv_tokens=4096, max_sessions=16)
    draft = open_backend("llamacpp", "draft", kv_tokens=4096, max_sessions=16)
    yield target, draft
    target.close()
    draft.close()


@pytest.fixture(scope="module")
def plain_greedy():
    """Target-only greedy with llama-cpp-python's high-level API (its own context/batches)."""
    from llama_cpp import Llama

    llm = Llama(model_path=str(tiny_dir() / "target.gguf"), n_ctx=512, n_batch=64,
                n_threads=1, verbose=False)
    cache: dict[tuple[int, ...], list[int]] = {}

    def run(ids: list[int]) -> list[int]:
        key = tuple(ids)
        if key not in cache:
            out = []
            for tok in llm.generate(ids, temp=0.0, top_k=1, repeat_penalty=1.0, reset=True):
                out.append(tok)
                if len(out) == N:
                    break
            cache[key] = out
        return cache[key]

    yield run
    llm.close()


@pytest.mark.parametrize("gamma,chunk", [(1, None), (2, 5), (4, None), (7, 3)])
def test_greedy_equals_plain_llamacpp(pair, plain_greedy, gamma, chunk):
    from dsd.runtime.spec_loop import generate

    target, draft = pair
    ids = [target.tokenizer(p).input_ids for p in PROMPTS]
    outs, stats = generate(target, draft, ids, N, gamma=gamma, prefill_chunk=chunk)
    for prompt, i, out in zip(PROMPTS, ids, outs, strict=True):
        assert out == plain_greedy(i), prompt
    assert 0 < stats.accepted < stats.drafted  # both acceptance and rejection happened
    assert stats.verify_steps < stats.rounds  # sessions shared verify steps
    assert target.kv_used == draft.kv_used == 0 and target.sessions == 0


def test_target_only_loop_equals_plain_llamacpp(pair, plain_greedy):
    from dsd.runtime.spec_loop import generate

    target, _ = pair
    ids = [target.tokenizer(p).input_ids for p in PROMPTS[:4]]
    outs, _ = generate(target, None, ids, N)
    assert outs == [plain_greedy(i) for i in ids]


def test_hf_and_llamacpp_agree_on_the_tiny_weights():
    hf, lc = open_backend("hf"), open_backend("llamacpp", kv_tokens=512, kv_type="f32")
    try:
        assert hf.fingerprint == lc.fingerprint and hf.eos_ids == lc.eos_ids
        for text in PROMPTS + ["ünïcode ✓ and <pad> </s>"]:
            assert hf.tokenizer(text).input_ids == lc.tokenizer(text).input_ids
        ids = hf.tokenizer(PROMPTS[-1]).input_ids
        a = hf.forward(hf.new_kv(), ids)
        b = lc.forward(lc.new_kv(), ids)
        # f32 on both sides; different kernels and summation order
        assert torch.allclose(a, b, atol=1e-3, rtol=1e-4), (a - b).abs().max()
        assert torch.equal(a.argmax(-1), b.argmax(-1))
    finally:
        lc.close()


# ---- sampled ----------------------------------------------------------------------------

VOCAB = 6
PROMPT = [3, 5, 2]


@pytest.fixture(scope="module")
def small_pair(tmp_path_factory):
    from dsd.runtime.backends import load_backend
    from dsd.runtime.tiny import build_pair
    from dsd.runtime.tiny_gguf import GGUFVocab, llama_to_gguf

    root = tmp_path_factory.mktemp("small-gguf")
    vocab = GGUFVocab(["a", "b", "c", "d", "<s>", "</s>"], frozenset({4, 5}), 4, 5)
    target, draft = build_pair(vocab_size=VOCAB, hidden=32, layers=1, seed=4, noise=0.6,
                               logit_scale=12.0)
    llama_to_gguf(target, vocab, root / "t.gguf", "small-target")
    llama_to_gguf(draft, vocab, root / "d.gguf", "small-draft")
    t = load_backend(root / "t.gguf", kv_tokens=4096, max_sessions=256, n_threads=1)
    d = load_backend(root / "d.gguf", kv_tokens=4096, max_sessions=256, n_threads=1)
    yield t, d
    t.close()
    d.close()


def exact_joint(backend, params):
    """P(t2, t3, t4) under target-only sampling, by enumeration on `backend`."""
    from dsd.runtime.backends import Step
    from dsd.runtime.speculative import target_probs

    seqs = [PROMPT + list(s) for s in itertools.product(range(VOCAB), repeat=3)]
    kvs = [backend.new_kv() for _ in seqs]
    logits = backend.forward_batch([Step(kv, s, 4) for kv, s in zip(kvs, seqs, strict=True)])
    for kv in kvs:
        kv.release()
    joint = torch.zeros(VOCAB, VOCAB, VOCAB)
    for s, lg in zip(seqs, logits, strict=True):
        p = target_probs(lg, params)  # rows predict t1..t4
        t1, t2, t3 = s[len(PROMPT):]
        joint[t2, t3] += p[0, t1] * p[1, t2] * p[2, t3] * p[3]
    return joint.flatten().tolist()


def test_sampling_matches_target_distribution(small_pair):
    from dsd.runtime.spec_loop import generate
    from dsd.runtime.speculative import SamplingParams

    target, draft = small_pair
    n, per_call = 1500, 250
    counts = [0] * VOCAB**3
    accepted = drafted = 0
    for start in range(0, n, per_call):
        params = [SamplingParams(temperature=1.0, seed=i) for i in range(start, start + per_call)]
        outs, stats = generate(target, draft, [PROMPT] * per_call, 4, gamma=2, params=params,
                               max_support=VOCAB)
        accepted, drafted = accepted + stats.accepted, drafted + stats.drafted
        for out in outs:
            t2, t3, t4 = out[1:4]
            counts[(t2 * VOCAB + t3) * VOCAB + t4] += 1
    assert 0.2 < accepted / drafted < 0.95  # rejections (residual sampling) really happen
    temp1 = SamplingParams(temperature=1.0)
    stat, dof = chi2_stat(counts, exact_joint(target, temp1), n)
    assert stat < chi2_critical(dof), (stat, dof)
    stat, dof = chi2_stat(counts, exact_joint(draft, temp1), n)  # power: the draft's differs
    assert stat > chi2_critical(dof), (stat, dof)

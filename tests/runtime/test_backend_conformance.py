"""Every backend passes the same suite: the engine seam's contract, on the tiny pair.

Each test runs once per engine (HF transformers on the HF tiny pair, llama.cpp on the GGUF
tiny pair: the same weights). Logit tolerances: an engine's ragged batch is compared with
its own one-session forwards; llama.cpp sums in a different order when batches differ, so
its logits agree to 1e-4 (observed ~1e-5; logits here span about +-40).
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from backend_helpers import KINDS, open_backend  # noqa: E402

from dsd.runtime.backends import BackendError, KVBudgetError, Step  # noqa: E402

pytestmark = pytest.mark.runtime

ATOL = 1e-4
PROMPTS = ["hello there", "a much longer prompt with words", "x", "mid size one"]


@pytest.fixture(scope="module", params=KINDS)
def backend(request):
    if request.param.startswith("hf"):
        b = open_backend(request.param, max_sessions=8, kv_capacity=512)
    else:  # streams: 8 slices of 256 tokens (llama.cpp's smallest slice)
        b = open_backend(request.param, max_sessions=8,
                         kv_tokens=512 if request.param == "llamacpp" else 2048)
    yield b
    b.close()


@pytest.fixture
def fresh(backend):
    """Handles opened by a test are released after it, so the budget starts empty."""
    handles = []

    def new():
        kv = backend.new_kv()
        handles.append(kv)
        return kv

    yield new
    for kv in handles:
        kv.release()
    assert backend.kv_used == 0 and backend.sessions == 0


def ids(backend, text):
    return backend.tokenizer(text).input_ids


def test_metadata(backend):
    tok = backend.tokenizer
    assert backend.vocab_size == len(tok) == 259
    assert backend.max_context >= 256
    assert backend.max_context * backend.max_sessions >= backend.kv_capacity >= 512
    assert tok.eos_token_id in backend.eos_ids
    assert len(backend.fingerprint) == 32
    text = "round trip: ünïcode ✓"
    assert tok.decode(ids(backend, text)) == text
    assert backend.max_sessions == 8


def test_ragged_batch_equals_sequential_forwards(backend, fresh):
    queries = [[5, 6, 7, 8, 9], [10, 11], [12, 13, 14], [15]]  # a different gamma each
    batch_kvs, single = [], []
    for text, q in zip(PROMPTS, queries, strict=True):
        kv = fresh()
        backend.prefill(kv, ids(backend, text))
        batch_kvs.append(kv)
        ref = fresh()
        backend.prefill(ref, ids(backend, text))
        single.append(backend.forward(ref, q))
    batched = backend.forward_batch([Step(kv, q) for kv, q in zip(batch_kvs, queries,
                                                                     strict=True)])
    for s, b, kv, text, q in zip(single, batched, batch_kvs, PROMPTS, queries, strict=True):
        assert b.shape == s.shape == (len(q), backend.vocab_size)
        assert b.dtype == torch.float32
        assert torch.allclose(s, b, atol=ATOL), (s - b).abs().max()
        assert kv.length == len(ids(backend, text)) + len(q)


def test_keep_returns_only_the_last_positions(backend, fresh):
    p = ids(backend, PROMPTS[1])
    full = backend.forward(fresh(), p)
    a, b, c = fresh(), fresh(), fresh()
    out = backend.forward_batch([Step(a, p, 0), Step(b, p, 3), Step(c, p, 1)])
    assert out[0].shape == (0, backend.vocab_size)
    assert torch.allclose(out[1], full[-3:], atol=ATOL)
    assert torch.allclose(out[2], full[-1:], atol=ATOL)
    assert a.length == b.length == c.length == len(p)


def test_chunked_prefill_equals_one_shot(backend, fresh):
    p = ids(backend, PROMPTS[1])
    whole = backend.prefill(fresh(), p)
    for chunk in (1, 4, 7):
        kv = fresh()
        assert torch.allclose(backend.prefill(kv, p, chunk=chunk), whole, atol=ATOL)
        assert kv.length == len(p)


def test_prefill_chunk_mixed_into_a_verify_batch(backend, fresh):
    """A new session's prompt chunk rides in the same forward as other sessions' verifies."""
    p0, p1, p2 = (ids(backend, p) for p in PROMPTS[:3])
    old, other = fresh(), fresh()
    backend.prefill(old, p0)
    backend.prefill(other, p2)
    new = fresh()
    out = backend.forward_batch([Step(old, [7, 8, 9], 2), Step(new, p1[:5], 0),
                                 Step(other, [4, 5])])
    out2 = backend.forward_batch([Step(new, p1[5:], 1)])
    ref_old, ref_other, ref_new = fresh(), fresh(), fresh()
    backend.prefill(ref_old, p0)
    backend.prefill(ref_other, p2)
    assert torch.allclose(out[0], backend.forward(ref_old, [7, 8, 9])[-2:], atol=ATOL)
    assert torch.allclose(out[2], backend.forward(ref_other, [4, 5]), atol=ATOL)
    assert torch.allclose(out2[0][-1], backend.prefill(ref_new, p1), atol=ATOL)


def test_crop_then_forward_equals_fresh_forward(backend, fresh):
    p = ids(backend, PROMPTS[3])
    kv = fresh()
    backend.prefill(kv, p)
    backend.forward(kv, [20, 21, 22, 23])  # four drafts, one accepted
    kv.crop(len(p) + 1)
    assert kv.length == len(p) + 1
    cont = backend.forward(kv, [42, 43])
    fresh_out = backend.forward(fresh(), p + [20, 42, 43])
    assert torch.allclose(cont, fresh_out[-2:], atol=ATOL)
    kv.crop(0)  # an emptied cache starts over cleanly
    again = backend.forward(kv, p)
    assert torch.allclose(again, backend.forward(fresh(), p), atol=ATOL)


def test_release_frees_the_budget(backend, fresh):
    kvs = [fresh() for _ in range(backend.max_sessions)]
    with pytest.raises(KVBudgetError, match="session slots"):
        backend.new_kv()
    backend.forward(kvs[0], [1, 2, 3])
    assert backend.kv_used == 3 and backend.kv_free == backend.kv_capacity - 3
    kvs[0].release()
    kvs[0].release()  # idempotent
    assert backend.kv_used == 0 and backend.sessions == backend.max_sessions - 1
    with pytest.raises(BackendError, match="after release"):
        backend.forward(kvs[0], [1])
    replacement = fresh()  # the freed slot is reusable, and starts empty
    out = backend.forward(replacement, [1, 2, 3])
    assert torch.allclose(out, backend.forward(kvs[1], [1, 2, 3]), atol=ATOL)


def test_kv_budget_refuses_a_step_and_changes_nothing(backend, fresh):
    cap = backend.kv_capacity
    if backend.max_context < cap:
        pytest.skip("per-session KV slices: a session's limit is its context length")
    a, b = fresh(), fresh()
    backend.prefill(a, [3] * (cap - 10))
    assert not backend.fits(11) and backend.fits(10)
    with pytest.raises(KVBudgetError, match="budget"):
        backend.forward_batch([Step(a, [1] * 6), Step(b, [2] * 6)])
    assert a.length == cap - 10 and b.length == 0 and backend.kv_used == cap - 10
    a.crop(cap - 20)  # make room: the same sessions continue correctly
    out = backend.forward_batch([Step(a, [1] * 6), Step(b, [2] * 6)])
    assert out[1].shape[0] == 6


def test_bad_steps_fail_with_one_line_and_change_nothing(backend, fresh):
    kv = fresh()
    backend.forward(kv, [1, 2])
    with pytest.raises(BackendError, match=f"token id {backend.vocab_size} outside"):
        backend.forward_batch([Step(kv, [3]), Step(fresh(), [backend.vocab_size])])
    with pytest.raises(BackendError, match="twice"):
        backend.forward_batch([Step(kv, [3]), Step(kv, [4])])
    with pytest.raises(BackendError, match="no new tokens"):
        backend.forward(kv, [])
    with pytest.raises(BackendError, match="keep"):
        backend.forward(kv, [1], keep=2)
    with pytest.raises(BackendError, match="context length"):
        backend.forward(kv, [1] * backend.max_context)
    with pytest.raises(BackendError, match="crop"):
        kv.crop(3)
    assert kv.length == 2

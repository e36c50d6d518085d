"""Model backend: batched verify with per-session caches equals single-session verify."""

from __future__ import annotations

import copy

import pytest

torch = pytest.importorskip("torch")

from dsd.runtime.backend import KVState, runner_from_model  # noqa: E402

pytestmark = pytest.mark.runtime


@pytest.mark.parametrize("prepack", [False, True])
def test_batched_verify_equals_single(tiny, prepack):
    tok, target, _ = tiny
    runner = runner_from_model(copy.deepcopy(target), tok, "t", prepack=prepack)
    prompts = [tok("hello there").input_ids, tok("a much longer prompt with words").input_ids,
               tok("x").input_ids, tok("mid size one").input_ids]
    queries = [[5, 6, 7, 8, 9], [10, 11], [12, 13, 14], [15]]  # different gamma per session
    kvs, single = [], []
    for p, q in zip(prompts, queries, strict=False):
        kv = KVState()
        runner.forward(kv, p, keep=1)
        kvs.append(kv)
        ref_kv = KVState()
        runner.forward(ref_kv, p, keep=1)
        single.append(runner.forward(ref_kv, q))
    batched = runner.forward_batch(list(zip(kvs, queries, strict=False)))
    for s, b, kv, p, q in zip(single, batched, kvs, prompts, queries, strict=False):
        assert b.shape == s.shape
        assert torch.allclose(s, b, atol=1e-4), (s - b).abs().max()
        assert kv.length == len(p) + len(q)
    # the split-out caches continue correctly after a rollback
    kvs[1].crop(len(prompts[1]) + 1)
    cont = runner.forward(kvs[1], [42, 43])
    with torch.no_grad():
        full = runner.model(torch.tensor([prompts[1] + queries[1][:1] + [42, 43]])).logits[0, -2:]
    assert torch.allclose(cont, full, atol=1e-4)


def test_prepacked_linear_matches_dense(tiny):
    tok, target, _ = tiny
    plain = runner_from_model(copy.deepcopy(target), tok, "a", prepack=False)
    packed = runner_from_model(copy.deepcopy(target), tok, "b", prepack=True)
    assert any(type(m).__name__ == "PrepackedLinear" for m in packed.model.modules())
    ids = tok("prepack check").input_ids
    a = plain.forward(KVState(), ids)
    b = packed.forward(KVState(), ids)
    assert torch.allclose(a, b, atol=1e-4)


def test_crop_bounds(tiny):
    tok, target, _ = tiny
    runner = runner_from_model(target, tok, "t")
    kv = KVState()
    runner.forward(kv, [1, 2, 3, 4])
    with pytest.raises(ValueError):
        kv.crop(5)
    kv.crop(2)
    assert kv.length == 2 and kv.cache.get_seq_length() == 2
    kv.crop(0)
    assert kv.length == 0 and kv.cache is None


def test_fingerprint_distinguishes_tokenizers(tiny):
    from dsd.runtime.backend import tokenizer_fingerprint
    from dsd.runtime.tiny import build_tokenizer

    tok = tiny[0]
    other = build_tokenizer()
    assert tokenizer_fingerprint(tok) == tokenizer_fingerprint(other)
    other.add_tokens(["<extra>"])
    assert tokenizer_fingerprint(tok) != tokenizer_fingerprint(other)


def test_tiny_pair_on_disk_loads_through_backend(tmp_path):
    from dsd.cli.main import main
    from dsd.runtime.backend import load_backend

    assert main(["models", "tiny", str(tmp_path / "pair"), "--seed", "3"]) == 0
    t = load_backend(tmp_path / "pair" / "target", device="cpu")
    d = load_backend(tmp_path / "pair" / "draft", device="cpu")
    assert t.fingerprint == d.fingerprint and t.vocab_size == d.vocab_size == 259
    ids = t.tokenizer("round trip").input_ids
    assert t.tokenizer.decode(ids) == "round trip"
    assert t.eos_ids == {t.tokenizer.eos_token_id}
    # target and draft differ (perturbed copy), but not by much
    lt = t.forward(KVState(), ids)[-1]
    ld = d.forward(KVState(), ids)[-1]
    assert not torch.allclose(lt, ld)
    assert main(["models", "tiny", str(tmp_path / "pair" / "target" / "config.json")]) == 2


def test_load_backend_errors(tmp_path):
    from dsd.errors import DsdError
    from dsd.runtime.backend import load_backend

    with pytest.raises(DsdError, match="does not exist"):
        load_backend(tmp_path / "nope")
    with pytest.raises(DsdError, match="config.json"):
        load_backend(tmp_path)

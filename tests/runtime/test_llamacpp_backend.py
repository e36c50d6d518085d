"""llama.cpp specifics: batches longer than n_batch, the GGUF tokenizer, loading errors."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from backend_helpers import needs_llama, open_backend, tiny_dir  # noqa: E402

from dsd.runtime.backends import BackendError, Step, load_backend, resolve_backend  # noqa: E402

pytestmark = pytest.mark.runtime


def test_backend_choice_by_file_type(tmp_path):
    root = tiny_dir()
    assert resolve_backend(root / "target.gguf") == "llamacpp"
    assert resolve_backend(root / "target") == "hf"
    assert resolve_backend(root / "target.gguf", "hf") == "hf"
    with pytest.raises(BackendError, match="needs a .gguf file"):
        resolve_backend(root / "target", "llamacpp")
    with pytest.raises(BackendError, match="unknown backend 'vllm'"):
        resolve_backend(root / "target", "vllm")
    with pytest.raises(BackendError, match="does not exist"):
        load_backend(tmp_path / "missing.gguf")
    with pytest.raises(BackendError, match="no config.json"):
        load_backend(tmp_path)
    # transformers' GGUF tokenizer conversion rejects the tiny GGUF (its inert merge): one
    # line, not a Rust panic
    with pytest.raises(BackendError, match="transformers cannot load .*target.gguf"):
        load_backend(root / "target.gguf", "hf", device="cpu")


@needs_llama
def test_not_a_gguf_is_one_clear_line(tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF but not really")
    with pytest.raises(BackendError, match="cannot load .*broken.gguf"):
        load_backend(bad)
    with pytest.raises(BackendError, match="max_sessions must be in"):
        open_backend("llamacpp", max_sessions=257)


@needs_llama
def test_batch_longer_than_n_batch_is_split_and_equal():
    small = open_backend("llamacpp", n_batch=16, max_sessions=4, kv_tokens=512)
    big = open_backend("llamacpp", kv_tokens=512)
    try:
        assert small.n_batch == 16  # 77 tokens: five llama_decode calls
        prompts = [list(range(3, 40)), list(range(50, 61)), list(range(70, 99))]
        outs = []
        for b in (small, big):
            kvs = [b.new_kv() for _ in prompts]
            outs.append(b.forward_batch([Step(kv, p, 5) for kv, p in zip(kvs, prompts,
                                                                         strict=True)]))
            assert [kv.length for kv in kvs] == [len(p) for p in prompts]
        for a, b in zip(*outs, strict=True):
            assert torch.allclose(a, b, atol=1e-4)
    finally:
        small.close()
        big.close()


@needs_llama
def test_gguf_tokenizer_surface():
    b = open_backend("llamacpp", kv_tokens=256)
    try:
        tok = b.tokenizer
        ids = tok("héllo <s>").input_ids
        assert ids[-1] == tok.bos_token_id  # special text parses to the special token
        assert tok.decode(ids) == "héllo <s>"
        assert tok.decode(ids, skip_special_tokens=True) == "héllo "
        assert b"".join(tok.token_bytes(i) for i in tok("é").input_ids) == "é".encode()
        chat = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                       add_generation_prompt=True)
        assert chat == "<s>user: hi\n<s>assistant: "
        assert tok.get_vocab()["</s>"] == tok.eos_token_id == 257
    finally:
        b.close()


@needs_llama
def test_use_after_close_is_an_error_not_a_crash():
    b = open_backend("llamacpp", kv_tokens=256)
    kv = b.new_kv()
    b.forward(kv, [1, 2, 3])
    tok = b.tokenizer
    b.close()
    with pytest.raises(BackendError, match="closed"):
        b.forward(kv, [4])
    with pytest.raises(BackendError, match="closed"):
        b.new_kv()
    with pytest.raises(RuntimeError, match="closed"):
        tok("hello")
    kv.release()  # nothing left to free: a no-op
    assert b.kv_used == 0 and b.sessions == 0

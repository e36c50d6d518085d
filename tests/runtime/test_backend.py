"""Loading models for the runtime: the tiny pair on disk, tokenizer fingerprints, errors.

The engines' behaviour (ragged batches, crop, release, budget) is tested once for every
engine in test_backend_conformance.py."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.runtime


def test_fingerprint_distinguishes_tokenizers(tiny):
    from dsd.runtime.backends import tokenizer_fingerprint
    from dsd.runtime.tiny import build_tokenizer

    tok = tiny[0]
    other = build_tokenizer()
    assert tokenizer_fingerprint(tok) == tokenizer_fingerprint(other)
    other.add_tokens(["<extra>"])
    assert tokenizer_fingerprint(tok) != tokenizer_fingerprint(other)


def test_fingerprint_ignores_vocabulary_padding_rows():
    """convert_hf_to_gguf names the padding rows of an embedding table `[PAD<id>]`: Qwen2.5's
    0.5B and 7B GGUFs differ only there (151,936 vs 152,064 rows), so they pair."""
    from dsd.runtime.backends import tokenizer_fingerprint

    class Vocab:
        bos_token_id, eos_token_id = 0, 1

        def __init__(self, n: int) -> None:
            self.texts = ["<s>", "</s>", "a", "b"] + [f"[PAD{i}]" for i in range(4, n)]

        def get_vocab(self):
            return {t: i for i, t in enumerate(self.texts)}

    assert tokenizer_fingerprint(Vocab(8)) == tokenizer_fingerprint(Vocab(16))
    other = Vocab(8)
    other.texts[3] = "c"
    assert tokenizer_fingerprint(other) != tokenizer_fingerprint(Vocab(8))
    misplaced = Vocab(8)
    misplaced.texts[3] = "[PAD5]"  # not its own id: a real token, kept
    assert tokenizer_fingerprint(misplaced) != tokenizer_fingerprint(Vocab(8))


def test_tiny_pair_on_disk_loads_through_backend(tmp_path):
    from dsd.cli.main import main
    from dsd.runtime.backends import load_backend

    assert main(["models", "tiny", str(tmp_path / "pair"), "--seed", "3"]) == 0
    t = load_backend(tmp_path / "pair" / "target", device="cpu")
    d = load_backend(tmp_path / "pair" / "draft", device="cpu")
    assert t.fingerprint == d.fingerprint and t.vocab_size == d.vocab_size == 259
    ids = t.tokenizer("round trip").input_ids
    assert t.tokenizer.decode(ids) == "round trip"
    assert t.eos_ids == {t.tokenizer.eos_token_id}
    # target and draft differ (perturbed copy), but not by much
    lt = t.forward(t.new_kv(), ids)[-1]
    ld = d.forward(d.new_kv(), ids)[-1]
    assert not torch.allclose(lt, ld)
    assert main(["models", "tiny", str(tmp_path / "pair" / "target" / "config.json")]) == 2


def test_load_backend_errors(tmp_path):
    from dsd.errors import DsdError
    from dsd.runtime.backends import load_backend

    with pytest.raises(DsdError, match="does not exist"):
        load_backend(tmp_path / "nope")
    with pytest.raises(DsdError, match="config.json"):
        load_backend(tmp_path)


def test_no_private_engine_internals_remain():
    """The runtime reaches transformers and torch through public APIs only."""
    from pathlib import Path

    import dsd

    src = Path(dsd.__file__).parent
    banned = ("ddp_cache_data", "cache.layers[", "_reorder_linear_weight", "hf_quantizer",
              "torch.ops.mkldnn")
    hits = [f"{p.relative_to(src)}: {b}" for p in src.rglob("*.py")
            for b in banned if b in p.read_text()]
    assert not hits, hits


def test_forwards_print_no_deprecation_warning(runners, caplog):
    """transformers 5.x deprecates `past_key_values`: the backend passes the cache under
    the name the model's forward takes, so serving prints no FutureWarning."""
    import warnings

    from dsd.runtime.backends import Step

    target = runners[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a, b = target.new_kv(), target.new_kv()
        target.forward(a, [1, 2, 3])
        target.forward(b, [4, 5])
        target.forward_batch([Step(a, [6, 7]), Step(b, [8])])
        a.release()
        b.release()
    assert not [r for r in caplog.records if "deprecated" in r.getMessage()]

"""The tiny pair as GGUF files for llama.cpp: the same weights as the HF tiny pair.

`llama_to_gguf` writes an HF `LlamaForCausalLM` as an f32 GGUF (architecture `llama`) with
the tiny byte-level tokenizer, following the conventions of llama.cpp's
`convert_hf_to_gguf.py`: gguf-py's tensor-name map, Q/K rows permuted from HF's half-split
RoPE layout to llama.cpp's interleaved one, and a `gpt2` (byte-level BPE) vocabulary whose
token texts and ids equal the HF tokenizer's. Token ids, weights and hence logits match the
HF pair, so the two engines can be checked against each other.

llama.cpp requires a BPE vocabulary to list merges, and gguf-py cannot write an empty
array, so the file carries one merge of two control tokens (`<s> </s>`). BPE only merges
symbols built from text, and control tokens are split off before it runs, so the merge can
never apply: tokenization stays byte by byte, as in the HF tokenizer. (transformers' own
GGUF tokenizer conversion rejects that merge: load the HF pair with the HF backend.)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

INERT_MERGE = "<s> </s>"


@dataclass(frozen=True)
class GGUFVocab:
    """A byte-level BPE vocabulary as GGUF metadata: token texts by id and special ids."""

    tokens: list[str]
    control: frozenset[int]
    bos_id: int
    eos_id: int
    pad_id: int | None = None
    chat_template: str | None = None

    @classmethod
    def from_tokenizer(cls, tokenizer) -> GGUFVocab:
        vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
        if [i for _, i in vocab] != list(range(len(vocab))):
            raise ValueError("the tokenizer's ids must be exactly 0..len-1")
        specials = set(tokenizer.all_special_ids)
        return cls([t for t, _ in vocab], frozenset(specials), tokenizer.bos_token_id,
                   tokenizer.eos_token_id, tokenizer.pad_token_id,
                   getattr(tokenizer, "chat_template", None))


def _permute(w, n_head: int):
    """HF q/k rows (two halves per head) -> llama.cpp's interleaved RoPE pairs."""
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def llama_to_gguf(model, vocab: GGUFVocab, path: str | Path, name: str) -> Path:
    """Write an HF Llama model and its byte-level vocabulary as an f32 GGUF file."""
    import gguf

    cfg = model.config
    rope = getattr(cfg, "rope_parameters", None) or {}
    theta = float(rope.get("rope_theta", getattr(cfg, "rope_theta", 10000.0)))
    n_head, n_kv = cfg.num_attention_heads, cfg.num_key_value_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // n_head
    path = Path(path)
    w = gguf.GGUFWriter(str(path), gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
    w.add_name(name)
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_kv)
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(theta)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_vocab_size(cfg.vocab_size)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)

    if len(vocab.tokens) != cfg.vocab_size:
        raise ValueError(f"{len(vocab.tokens)} token texts for a {cfg.vocab_size}-token model")
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt-2")
    w.add_token_list(vocab.tokens)
    w.add_token_types([gguf.TokenType.CONTROL if i in vocab.control else gguf.TokenType.NORMAL
                       for i in range(len(vocab.tokens))])
    w.add_token_merges([INERT_MERGE])
    w.add_bos_token_id(vocab.bos_id)
    w.add_eos_token_id(vocab.eos_id)
    if vocab.pad_id is not None:
        w.add_pad_token_id(vocab.pad_id)
    w.add_add_bos_token(False)
    w.add_add_eos_token(False)
    if vocab.chat_template:
        w.add_chat_template(vocab.chat_template)

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, cfg.num_hidden_layers)
    for hf_name, tensor in model.state_dict().items():
        data = tensor.detach().float().cpu().numpy()
        if hf_name.endswith("q_proj.weight"):
            data = _permute(data, n_head)
        elif hf_name.endswith("k_proj.weight"):
            data = _permute(data, n_kv)
        gg_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gg_name is None:
            raise ValueError(f"no GGUF name for tensor {hf_name}")
        w.add_tensor(gg_name, data)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def write_tiny_gguf_pair(directory: str | Path, seed: int = 0, noise: float = 0.1):
    """Write DIR/target.gguf and DIR/draft.gguf: the tiny pair of `tiny.build_pair`."""
    from dsd.runtime.tiny import build_pair, build_tokenizer

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer()
    vocab = GGUFVocab.from_tokenizer(tok)
    target, draft = build_pair(vocab_size=len(tok), seed=seed, noise=noise)
    return (llama_to_gguf(target, vocab, directory / "target.gguf", "dsd-tiny-target"),
            llama_to_gguf(draft, vocab, directory / "draft.gguf", "dsd-tiny-draft"))

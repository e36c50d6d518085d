"""Tiny random draft/target model pairs for tests, smoke runs and demos.

`write_tiny_pair(DIR)` writes DIR/target and DIR/draft: two small Llama models that share
one byte-level tokenizer (any text round-trips). The draft is the target's weights plus
seeded Gaussian noise, so acceptance is neither 0 nor 1. Both directories load through the
same code path as real models (`dsd.runtime.backends.load_backend`).
"""

from __future__ import annotations

from pathlib import Path

SPECIALS = ["<s>", "</s>", "<pad>"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<s>assistant: {% endif %}"
)


def build_tokenizer():
    """A byte-level tokenizer: 256 byte tokens, no merges, plus <s> </s> <pad>."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    for tok in SPECIALS:
        vocab[tok] = len(vocab)
    tk = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tk.decoder = decoders.ByteLevel()
    tk.add_special_tokens(SPECIALS)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk, bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )
    tok.chat_template = CHAT_TEMPLATE
    return tok


def tiny_config(vocab_size: int, hidden: int = 64, layers: int = 2, heads: int = 4):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=max(1, heads // 2),
        max_position_embeddings=2048,
        bos_token_id=vocab_size - 3 if vocab_size > 8 else 0,
        eos_token_id=vocab_size - 2 if vocab_size > 8 else 1,
        pad_token_id=vocab_size - 1 if vocab_size > 8 else 2,
        tie_word_embeddings=False,
        attn_implementation="sdpa",
    )


def build_pair(
    vocab_size: int = 259,
    hidden: int = 64,
    layers: int = 2,
    seed: int = 0,
    noise: float = 0.1,
    logit_scale: float = 40.0,
):
    """(target, draft) LlamaForCausalLM in eval mode; draft = target + noise.

    `logit_scale` multiplies the output head so the random model's next-token
    distributions are peaked (like a trained model) rather than near uniform.
    """
    import torch
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = tiny_config(vocab_size, hidden, layers)
    target = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():
        target.lm_head.weight.mul_(logit_scale)
    draft = LlamaForCausalLM(cfg).eval()
    draft.load_state_dict(target.state_dict())
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for param in draft.parameters():
            scale = noise * param.std().clamp(min=1e-3)
            param.add_(torch.randn(param.shape, generator=gen) * scale)
    return target, draft


def write_tiny_pair(directory: str | Path, seed: int = 0, noise: float = 0.1) -> tuple[Path, Path]:
    """Write DIR/target and DIR/draft (safetensors + shared tokenizer). Returns the two paths."""
    directory = Path(directory)
    tok = build_tokenizer()
    target, draft = build_pair(vocab_size=len(tok), seed=seed, noise=noise)
    paths = []
    for name, model in (("target", target), ("draft", draft)):
        path = directory / name
        path.mkdir(parents=True, exist_ok=True)
        model.generation_config.eos_token_id = tok.eos_token_id
        model.save_pretrained(str(path), safe_serialization=True)
        tok.save_pretrained(str(path))
        paths.append(path)
    return paths[0], paths[1]

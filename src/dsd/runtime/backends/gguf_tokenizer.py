"""A GGUF model's own tokenizer (llama.cpp's vocabulary), with the HF-style surface dsd uses.

The llama.cpp backend tokenizes with the engine that runs the model, so any GGUF llama.cpp
loads works, and an edge device needs no transformers. The surface is the part of an HF
tokenizer the runtime calls: `tok(text).input_ids`, `encode`, `decode(ids,
skip_special_tokens=)`, `get_vocab`, `len(tok)`, the special-token ids, `chat_template` and
`apply_chat_template` (rendered with jinja2 as transformers does), plus `token_bytes` for
incremental detokenization.
"""

from __future__ import annotations

import ctypes
import json
from dataclasses import dataclass
from functools import cached_property


@dataclass(frozen=True, slots=True)
class Encoding:
    input_ids: list[int]


class GGUFTokenizer:
    """Valid while its backend is open: `owner.model` (the llama_model) must be alive."""

    def __init__(self, lib, model, vocab, owner=None) -> None:
        self._lib = lib  # the llama_cpp module (ctypes bindings)
        self._model = model
        self._vocab = vocab
        self._owner = owner  # keeps the model alive as long as the tokenizer
        self._n = int(lib.llama_vocab_n_tokens(vocab))

        def special(fn) -> int | None:
            tok = int(fn(vocab))
            return tok if tok >= 0 else None

        self.bos_token_id = special(lib.llama_vocab_bos)
        self.eos_token_id = special(lib.llama_vocab_eos)
        self.pad_token_id = special(lib.llama_vocab_pad)
        self.add_bos = bool(lib.llama_vocab_get_add_bos(vocab))
        tmpl = lib.llama_model_chat_template(model, None)
        self.chat_template = tmpl.decode("utf-8") if tmpl else None

    def __len__(self) -> int:
        return self._n

    # ---- vocabulary -----------------------------------------------------------------------

    @cached_property
    def texts(self) -> list[str]:
        """Token text by id, as the GGUF spells it (e.g. byte-level 'Ġhello')."""
        get, vocab = self._lib.llama_vocab_get_text, self._live()
        return [get(vocab, i).decode("utf-8", errors="replace") for i in range(self._n)]

    def get_vocab(self) -> dict[str, int]:
        vocab: dict[str, int] = {}
        for i, text in enumerate(self.texts):
            vocab.setdefault(text, i)
        return vocab

    def eog_ids(self) -> set[int]:
        """Every end-of-generation token llama.cpp knows (EOS, EOT, <|im_end|>...)."""
        is_eog, vocab = self._lib.llama_vocab_is_eog, self._live()
        return {i for i in range(self._n) if is_eog(vocab, i)}

    @property
    def bos_token(self) -> str | None:
        return None if self.bos_token_id is None else self.texts[self.bos_token_id]

    @property
    def eos_token(self) -> str | None:
        return None if self.eos_token_id is None else self.texts[self.eos_token_id]

    # ---- text <-> ids ---------------------------------------------------------------------

    def _live(self):
        if self._owner is not None and not self._owner.model:
            raise RuntimeError("the tokenizer's llama.cpp model was closed")
        return self._vocab

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        vocab = self._live()
        data = text.encode("utf-8")
        cap = len(data) + 8
        for _ in range(2):
            buf = (self._lib.llama_token * cap)()
            n = self._lib.llama_tokenize(vocab, data, len(data), buf, cap,
                                         add_special_tokens, True)
            if n >= 0:
                return list(buf[:n])
            cap = -n
        raise RuntimeError("llama_tokenize failed")

    def __call__(self, text: str, add_special_tokens: bool = True) -> Encoding:
        return Encoding(self.encode(text, add_special_tokens))

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        ids = [int(i) for i in ids]
        if not ids:
            return ""
        vocab = self._live()
        arr = (self._lib.llama_token * len(ids))(*ids)
        cap = 8 * len(ids) + 16
        for _ in range(2):
            buf = ctypes.create_string_buffer(cap)
            n = self._lib.llama_detokenize(vocab, arr, len(ids), buf, cap, False,
                                           not skip_special_tokens)
            if n >= 0:
                return buf.raw[:n].decode("utf-8", errors="replace")
            cap = -n
        raise RuntimeError("llama_detokenize failed")

    def token_bytes(self, token: int, special: bool = False) -> bytes:
        """The raw bytes one token stands for (a piece of a UTF-8 character at times)."""
        vocab = self._live()
        cap = 32
        for _ in range(2):
            buf = ctypes.create_string_buffer(cap)
            n = self._lib.llama_token_to_piece(vocab, int(token), buf, cap, 0, special)
            if n >= 0:
                return buf.raw[:n]
            cap = -n
        raise RuntimeError("llama_token_to_piece failed")

    # ---- chat -----------------------------------------------------------------------------

    def apply_chat_template(self, messages, tokenize: bool = True,
                            add_generation_prompt: bool = False, **kwargs):
        if not self.chat_template:
            raise ValueError("this GGUF has no chat template")
        text = self._template.render(messages=messages,
                                     add_generation_prompt=add_generation_prompt,
                                     bos_token=self.bos_token or "",
                                     eos_token=self.eos_token or "", **kwargs)
        return self.encode(text, add_special_tokens=False) if tokenize else text

    @cached_property
    def _template(self):
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        def raise_exception(message):
            raise ValueError(message)

        def tojson(value, indent=None, ensure_ascii=False, separators=None, sort_keys=False):
            return json.dumps(value, indent=indent, ensure_ascii=ensure_ascii,
                              separators=separators, sort_keys=sort_keys)

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                            extensions=["jinja2.ext.loopcontrols"])
        env.globals["raise_exception"] = raise_exception
        env.filters["tojson"] = tojson
        return env.from_string(self.chat_template)

"""Incremental detokenization for streaming: each token is decoded once.

Re-decoding the whole output on every token (what a plain `tokenizer.decode(ids)` loop does)
costs O(n^2) over a response. Instead each token's text comes from a stream:

- HF fast tokenizers: `tokenizers.decoders.DecodeStream` on the tokenizer's backend (it
  holds back a token until its bytes complete a UTF-8 character);
- the GGUF tokenizer (llama.cpp): `token_bytes(id)` through an incremental UTF-8 decoder;
- any other tokenizer: decode a short window of recent tokens and emit what it added
  (the scheme vLLM uses for slow tokenizers).

`Detokenizer` adds stop strings on top: text that could be the start of a stop string is
held back, the response is cut where a stop string begins, and `tokens` counts the tokens
up to the one that completed the stop string (later tokens are not part of the answer and
are not billed as completion tokens).
"""

from __future__ import annotations

import codecs
from collections.abc import Callable


def token_stream(tokenizer) -> Callable[[int], str]:
    """A function id -> the text this token adds (may be "" while a character is
    incomplete); special tokens add nothing."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        try:
            from tokenizers.decoders import DecodeStream
        except ImportError:  # pragma: no cover - tokenizers < 0.21
            pass
        else:
            stream = DecodeStream(skip_special_tokens=True)
            return lambda tok: stream.step(backend, tok) or ""
    if hasattr(tokenizer, "token_bytes"):
        utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        return lambda tok: utf8.decode(tokenizer.token_bytes(tok, special=False))
    return _WindowStream(tokenizer)


class _WindowStream:
    """Decode a window of recent tokens; emit the text beyond the window's settled prefix."""

    def __init__(self, tokenizer) -> None:
        self.tok = tokenizer
        self.ids: list[int] = []
        self.prefix = 0  # window start
        self.read = 0  # tokens whose text was emitted

    def __call__(self, tok: int) -> str:
        self.ids.append(tok)
        decode = self.tok.decode
        before = decode(self.ids[self.prefix:self.read], skip_special_tokens=True)
        after = decode(self.ids[self.prefix:], skip_special_tokens=True)
        if len(after) <= len(before) or after.endswith("\ufffd"):
            return ""  # an incomplete character: wait for its next bytes
        self.prefix, self.read = self.read, len(self.ids)
        return after[len(before):]


class Detokenizer:
    """Streaming text of a response, with stop strings and held-back partial text."""

    def __init__(self, tokenizer, stops: list[str]) -> None:
        self._tokenizer = tokenizer
        self._piece = token_stream(tokenizer)
        self._pending: list[int] = []  # tokens whose bytes are not a whole character yet
        self.stops = stops
        self._hold = max((len(s) for s in stops), default=1) - 1
        self.text = ""  # the response so far (cut at a stop string)
        self.sent = 0  # characters of `text` already returned by push
        self.stopped = False
        self.tokens = 0  # tokens consumed, up to the one that completed a stop string

    def push(self, ids: list[int], final: bool) -> str:
        """Feed new tokens; returns the text that may go out now."""
        for tok in ids:
            if self.stopped:
                break
            self.tokens += 1
            piece = self._piece(int(tok))
            self._pending.append(int(tok))
            if piece:
                self._pending.clear()
                self._append(piece)
        if final and self._pending and not self.stopped:  # the response ends mid-character
            self._append(self._tokenizer.decode(self._pending, skip_special_tokens=True))
            self._pending.clear()
        safe = len(self.text)
        if not (final or self.stopped):
            safe -= self._hold
        safe = max(safe, self.sent)
        delta = self.text[self.sent:safe]
        self.sent = safe
        return delta

    def _append(self, piece: str) -> None:
        start = max(0, len(self.text) - self._hold)  # a stop string may span the seam
        self.text += piece
        cuts = [c for c in (self.text.find(s, start) for s in self.stops) if c >= 0]
        if cuts:
            self.text = self.text[:min(cuts)]
            self.stopped = True

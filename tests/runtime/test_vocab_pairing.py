"""Pairs whose logit widths differ (Qwen2.5-0.5B: 151,936; 7B: 152,064; same tokens): the
handshake applies the vocabulary rule, and neither side ever emits an id only one has."""

from __future__ import annotations

import asyncio
import copy

import pytest

torch = pytest.importorskip("torch")

from rt_helpers import collect, make_edge, reference_greedy, verifier_server  # noqa: E402

pytestmark = pytest.mark.runtime


def padded(model, extra: int, loud: list[int]):
    """`model` with `extra` more logit rows (padding, no token text), as a checkpoint padded
    to a rounder size. The rows copy `loud` tokens' rows x3, so where one of those tokens
    wins, an id past the real vocabulary would win without masking."""
    from transformers import LlamaForCausalLM

    cfg = copy.deepcopy(model.config)
    vocab = cfg.vocab_size
    cfg.vocab_size = vocab + extra
    out = LlamaForCausalLM(cfg).eval()
    state = model.state_dict()
    with torch.no_grad():
        for name, param in out.named_parameters():
            src = state[name]
            if param.shape == src.shape:
                param.copy_(src)
            else:  # the embedding and the LM head grow
                param[:vocab].copy_(src)
                rows = [loud[i % len(loud)] for i in range(extra)]
                param[vocab:].copy_(src[rows] * (3.0 if "lm_head" in name else 1.0))
    return out


def _prompt(tok):
    return tok("pairing vocabularies").input_ids


def test_a_target_with_padding_rows_pairs_and_never_emits_them(tiny):
    from dsd.runtime.backends.hf import HFBackend

    tok, target, draft = tiny
    ids = _prompt(tok)
    expected = reference_greedy(target, ids, 40)
    big = padded(target, 8, sorted(set(expected))[:8])
    unmasked = reference_greedy(big, ids, 40)
    assert max(unmasked) >= 259  # without the rule the padding rows would be emitted
    target_b, draft_b = HFBackend(big, tok, "padded-target"), HFBackend(draft, tok, "draft")
    assert (target_b.vocab_size, draft_b.vocab_size) == (267, 259)

    async def main():
        async with verifier_server(target_b) as (_, port):
            engine = make_edge(draft_b, [port])
            await engine.start()
            try:
                return await collect(engine, ids, max_tokens=40)
            finally:
                await engine.close()

    assert asyncio.run(main()) == expected


def test_a_draft_with_padding_rows_never_proposes_them(tiny):
    from dsd.runtime.backends.hf import HFBackend

    tok, target, draft = tiny
    ids = _prompt(tok)
    expected = reference_greedy(target, ids, 40)
    draft_out = reference_greedy(draft, ids, 40)
    big = padded(draft, 8, sorted(set(draft_out))[:8])
    assert max(reference_greedy(big, ids, 40)) >= 259
    target_b, draft_b = HFBackend(target, tok, "target"), HFBackend(big, tok, "padded-draft")

    async def main():
        async with verifier_server(target_b) as (svc, port):
            engine = make_edge(draft_b, [port])
            await engine.start()
            try:
                out = await collect(engine, ids, max_tokens=40)
                return out, engine.recent[-1]
            finally:
                await engine.close()

    out, stats = asyncio.run(main())
    assert out == expected and stats["drafted_tokens"] > 0 and stats["retries"] == 0


def test_a_vocabulary_gap_past_128_is_refused_in_one_line(tiny):
    from dsd.errors import DsdError
    from dsd.runtime.backends.hf import HFBackend
    from dsd.runtime.fused import fused_engine

    tok, target, draft = tiny
    big = HFBackend(padded(target, 200, [0]), tok, "wide-target")
    small = HFBackend(draft, tok, "draft")

    async def main():
        async with verifier_server(big) as (_, port):
            engine = make_edge(small, [port])
            try:
                with pytest.raises(DsdError) as err:
                    await engine.start()
            finally:
                await engine.close()
            return str(err.value)

    msg = asyncio.run(main())
    assert "differ by 200" in msg and "at most 128" in msg and "\n" not in msg
    with pytest.raises(DsdError, match="differ by 200"):
        fused_engine(small, big)

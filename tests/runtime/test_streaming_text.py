"""Streaming text at the edge: incremental detokenization, stop strings and what a request
that ends early counts as (usage, status, latency histograms)."""

from __future__ import annotations

import asyncio
import json
import random

import pytest

torch = pytest.importorskip("torch")
httpx = pytest.importorskip("httpx")

from backend_helpers import needs_llama, open_backend  # noqa: E402
from rt_helpers import edge_stack, reference_greedy  # noqa: E402

pytestmark = pytest.mark.runtime


class CountingTokenizer:
    """A tokenizer whose whole-sequence decode calls are counted."""

    def __init__(self, tok) -> None:
        self._tok = tok
        self.decodes = 0

    def __getattr__(self, name):
        return getattr(self._tok, name)

    def decode(self, ids, **kw):
        self.decodes += 1
        return self._tok.decode(ids, **kw)


def _texts(tok, n: int, seed: int) -> list[list[int]]:
    """Token streams of random bytes: multi-byte characters split across tokens, ASCII,
    and the special tokens (skipped in the text)."""
    rng = random.Random(seed)
    specials = [tok.eos_token_id, tok.bos_token_id]
    words = ["héllo", "wörld", "日本語", "🙂 ok", " plain", "\n", "x"]
    out = []
    for _ in range(n):
        ids: list[int] = []
        while len(ids) < 80:
            if rng.random() < 0.05:
                ids.append(rng.choice(specials))
            else:
                ids += tok(rng.choice(words), add_special_tokens=False).input_ids
        if rng.random() < 0.5:  # end in the middle of a character
            ids += tok("é", add_special_tokens=False).input_ids[:1]
        out.append(ids)
    return out


def _stream(detok, ids, chunk):
    text = "".join(detok.push(ids[i:i + chunk], final=False) for i in range(0, len(ids), chunk))
    return text + detok.push([], final=True)


@pytest.mark.parametrize("engine", ["hf", pytest.param("llamacpp", marks=needs_llama)])
def test_each_token_is_decoded_once_and_the_text_equals_a_full_decode(engine):
    from dsd.runtime.detok import Detokenizer

    backend = open_backend(engine)
    try:
        tok = CountingTokenizer(backend.tokenizer)
        for i, ids in enumerate(_texts(backend.tokenizer, 12, seed=1)):
            full = backend.tokenizer.decode(ids, skip_special_tokens=True)
            tok.decodes = 0
            assert _stream(Detokenizer(tok, []), ids, 1 + i % 4) == full
            assert tok.decodes <= 1  # only to flush a final partial character
    finally:
        backend.close()


def test_stop_strings_spanning_tokens_cut_the_text_and_count_tokens(tiny):
    from dsd.runtime.detok import Detokenizer

    tok = tiny[0]
    ids = tok("abc STOP def", add_special_tokens=False).input_ids  # one token per byte
    for chunk in (1, 2, 5, len(ids)):
        d = Detokenizer(tok, ["STOP", "zzz"])
        assert _stream(d, ids, chunk) == "abc "
        assert d.stopped and d.tokens == len("abc STOP")
    held = Detokenizer(tok, ["STOP"])
    assert held.push(tok("abc ST", add_special_tokens=False).input_ids, final=False) == "abc"


def _expected_stop(tok, ids, stop):
    """(text before the stop string, tokens up to the one completing it)."""
    for n in range(1, len(ids) + 1):
        text = tok.decode(ids[:n], skip_special_tokens=True)
        if stop in text:
            return text[:text.index(stop)], n
    raise AssertionError("stop string not in the output")


def test_a_stop_string_ends_the_request_as_ok_with_usage_up_to_the_stop(tiny, runners):
    tok, target, _ = tiny
    prompt = "Once upon a time there was"
    out = reference_greedy(target, tok(prompt).input_ids, 40)
    ref = tok.decode(out)
    # stop strings completing at several places (most of them inside a speculation round)
    stops = [ref[i] for i in range(4, len(ref) - 4) if ref[i] != "\ufffd"
             and ref[i] not in ref[:i]][:4]
    assert len(stops) >= 3
    expected = [_expected_stop(tok, out, stop) for stop in stops]

    async def main():
        async with edge_stack(runners, tok) as (base, _):
            async with httpx.AsyncClient(base_url=base, timeout=30) as c:
                plain = []
                for stop in stops:
                    body = {"prompt": prompt, "max_tokens": 40, "temperature": 0,
                            "stop": [stop]}
                    plain.append((await c.post("/v1/completions", json=body)).json())
                streamed = []
                async with c.stream("POST", "/v1/completions",
                                    json={**body, "stream": True}) as r:
                    async for line in r.aiter_lines():
                        if line.startswith("data: {"):
                            streamed.append(json.loads(line[6:]))
                await asyncio.sleep(0.1)
                return plain, streamed, (await c.get("/metrics")).text

    plain, streamed, metrics = asyncio.run(main())
    for (text, used), answer in zip(expected, plain, strict=True):
        assert answer["choices"][0]["text"] == text
        assert answer["choices"][0]["finish_reason"] == "stop"
        assert answer["usage"]["completion_tokens"] == used < 40
    text, used = expected[-1]
    assert streamed[-1]["usage"]["completion_tokens"] == used
    assert "".join(s["choices"][0]["text"] for s in streamed) == text
    n = len(stops) + 1
    assert f'dsd_edge_requests_total{{status="ok"}} {n}.0' in metrics
    assert 'status="error"' not in metrics
    assert f"dsd_edge_e2e_request_latency_seconds_count {n}.0" in metrics


def test_a_client_that_leaves_is_counted_cancelled_not_error(tiny, runners):
    tok = tiny[0]

    async def main():
        async with edge_stack(runners, tok, emulate_rtt_s=0.01) as (base, _):
            async with httpx.AsyncClient(base_url=base, timeout=30) as c:
                body = {"prompt": "leave early", "max_tokens": 400, "stream": True,
                        "ignore_eos": True}
                async with c.stream("POST", "/v1/completions", json=body) as r:
                    async for line in r.aiter_lines():
                        if line.startswith("data: {"):
                            break  # hang up after the first chunk
                await asyncio.sleep(0.5)
                return (await c.get("/metrics")).text

    metrics = asyncio.run(main())
    assert 'dsd_edge_requests_total{status="cancelled"} 1.0' in metrics
    assert 'status="error"' not in metrics
    assert "dsd_edge_e2e_request_latency_seconds_count 1.0" in metrics

"""OpenAI-compatible API of the edge: official client, streaming, bad input, load test."""

from __future__ import annotations

import asyncio
import json

import pytest

torch = pytest.importorskip("torch")
httpx = pytest.importorskip("httpx")

from rt_helpers import edge_stack, reference_greedy  # noqa: E402

pytestmark = pytest.mark.runtime


def test_openai_client_streams_and_matches_greedy(tiny, runners):
    openai = pytest.importorskip("openai")
    tok, target, _ = tiny
    prompt = "The quick brown fox"
    ref = tok.decode(reference_greedy(target, tok(prompt).input_ids, 24))

    def client_calls(base):
        client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0,
                               timeout=30)
        models = [m.id for m in client.models.list()]
        stream = client.completions.create(model="tiny", prompt=prompt, max_tokens=24,
                                           temperature=0, stream=True)
        pieces, reasons = [], []
        for chunk in stream:
            pieces.append(chunk.choices[0].text)
            reasons.append(chunk.choices[0].finish_reason)
        full = client.completions.create(model="tiny", prompt=prompt, max_tokens=24,
                                         temperature=0)
        chat = client.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": "hi"}], max_tokens=10,
            temperature=0.7, top_p=0.9, seed=1, stream=True)
        chat_text = "".join(c.choices[0].delta.content or "" for c in chat if c.choices)
        return models, pieces, reasons, full, chat_text

    async def main():
        async with edge_stack(runners, tok) as (base, _):
            return await asyncio.to_thread(client_calls, base)

    models, pieces, reasons, full, chat_text = asyncio.run(main())
    assert models == ["tiny"]
    assert len([p for p in pieces if p]) > 1  # really streamed in several chunks
    assert "".join(pieces) == ref
    assert reasons[-1] == "length"
    assert full.choices[0].text == ref and full.usage.completion_tokens == 24
    assert full.model_extra["dsd"]["rounds"] > 0
    assert isinstance(chat_text, str)


def test_stop_strings_seed_and_metrics(tiny, runners):
    tok, target, _ = tiny
    prompt = "Once upon a time there was"
    ref = tok.decode(reference_greedy(target, tok(prompt).input_ids, 40))
    stop = ref[10:13]

    async def main():
        async with edge_stack(runners, tok) as (base, _):
            async with httpx.AsyncClient(base_url=base, timeout=30) as c:
                r = await c.post("/v1/completions", json={"prompt": prompt, "max_tokens": 40,
                                                          "temperature": 0, "stop": [stop]})
                body = {"prompt": "seeded", "max_tokens": 20, "temperature": 1.0, "seed": 9}
                s1 = (await c.post("/v1/completions", json=body)).json()
                s2 = (await c.post("/v1/completions", json=body)).json()
                m = (await c.get("/metrics")).text
                h = (await c.get("/health")).json()
                return r.json(), s1, s2, m, h

    r, s1, s2, metrics, health = asyncio.run(main())
    assert r["choices"][0]["text"] == ref[: ref.index(stop)]
    assert r["choices"][0]["finish_reason"] == "stop"
    assert s1["choices"][0]["text"] == s2["choices"][0]["text"]  # seed -> reproducible
    assert "dsd_edge_spec_decode_num_accepted_tokens_total" in metrics
    assert 'dsd_edge_spec_decode_num_accepted_tokens_per_pos_total{position="0"}' in metrics
    assert health["status"] == "ok" and health["verifiers"][0]["up"]


BAD = [
    ({"prompt": "x", "max_tokens": 0}, 400, "max_tokens"),
    ({"prompt": "x", "max_tokens": 100000}, 400, "exceeds the limit"),
    ({"prompt": "x", "temperature": -1}, 400, "temperature"),
    ({"prompt": "x", "top_p": 0}, 400, "top_p"),
    ({"prompt": ""}, 400, "empty"),
    ({"prompt": [1, 2, 999999]}, 400, "vocabulary"),
    ({"max_tokens": 3}, 400, "prompt"),
    ({"prompt": "x", "n": 2}, 400, "n"),
    ({"prompt": "x", "stop": ["a", "b", "c", "d", "e"]}, 400, "stop"),
    ({"prompt": "x", "model": "other"}, 404, "not served"),
    ({"prompt": "x" * 2_000_000}, 413, "larger than"),
]


def test_bad_input_gets_4xx_with_one_line_reason(tiny, runners):
    tok = tiny[0]

    async def main():
        async with edge_stack(runners, tok) as (base, _):
            async with httpx.AsyncClient(base_url=base, timeout=30) as c:
                res = [await c.post("/v1/completions", json=b) for b, _, _ in BAD]
                res.append(await c.post("/v1/completions", content=b"{not json",
                                        headers={"content-type": "application/json"}))
                res.append(await c.post("/v1/chat/completions", json={"messages": []}))
                res.append(await c.post("/v1/chat/completions",
                                        json={"messages": [{"role": "wizard", "content": "x"}]}))
                return res

    res = asyncio.run(main())
    for (body, code, word), r in zip(BAD, res, strict=False):
        msg = r.json()["error"]["message"]
        assert r.status_code == code, (body if len(str(body)) < 200 else "big", r.text[:200])
        assert word in msg and "\n" not in msg
    for r in res[len(BAD):]:
        assert r.status_code == 400 and "\n" not in r.json()["error"]["message"]


def test_32_concurrent_streaming_clients(tiny, runners):
    tok = tiny[0]
    n_clients = 32

    async def one(c, i):
        body = {"prompt": f"client {i} says", "max_tokens": 24, "stream": True,
                "temperature": 0 if i % 2 else 0.9, "seed": i, "ignore_eos": True}
        text, done, final = "", False, None
        async with c.stream("POST", "/v1/completions", json=body) as r:
            assert r.status_code == 200
            async for line in r.aiter_lines():
                if not line.startswith("data: "):
                    continue
                data = line[6:]
                if data == "[DONE]":
                    done = True
                    break
                obj = json.loads(data)
                assert "error" not in obj, obj
                text += obj["choices"][0]["text"]
                if obj["choices"][0]["finish_reason"]:
                    final = obj
        return done, final

    async def main():
        # A 2 ms batching window makes cross-session batches certain, not a timing accident.
        async with edge_stack(runners, tok, max_wait_ms=2.0) as (base, svc):
            limits = httpx.Limits(max_connections=64)
            async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as c:
                results = await asyncio.wait_for(
                    asyncio.gather(*[one(c, i) for i in range(n_clients)],
                                   return_exceptions=True), 240)
            return results, svc.core.metrics

    results, vmetrics = asyncio.run(main())
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, errors[:3]
    bad = [(d, f and f["usage"], f and f["choices"]) for d, f in results
           if not (d and f["usage"]["completion_tokens"] == 24)]
    assert not bad, bad[:3]
    hist = vmetrics.batch_size.collect()[0].samples
    count = next(s.value for s in hist if s.name.endswith("_count"))
    total = next(s.value for s in hist if s.name.endswith("_sum"))
    assert total > count  # some verify steps held several sessions

"""Hundreds of streaming sessions through one edge to one llama.cpp verifier: no errors, and
every output is complete and equal to its greedy run alone."""

from __future__ import annotations

import asyncio

import pytest

torch = pytest.importorskip("torch")
httpx = pytest.importorskip("httpx")

from attacks import stream_completion  # noqa: E402
from rt_helpers import edge_stack  # noqa: E402

pytestmark = pytest.mark.runtime

TOKENS = 24


def _concurrent_streams(llama_runners, n: int):
    from dsd.runtime.spec_loop import generate

    tr, dr = llama_runners
    tok = tr.tokenizer
    prompts = [f"session {i}: tell me about {i * 7919 % 1000}" for i in range(n)]
    alone = [tok.decode(generate(tr, None, [tok(p).input_ids], TOKENS)[0][0])
             for p in prompts]

    async def main():
        async with edge_stack((tr, dr), tok, max_batch=64, max_running=n,
                              verifier_kw={"max_sessions": 256}) as (base, svc):
            limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
            async with httpx.AsyncClient(base_url=base, timeout=600, limits=limits) as c:
                results = await asyncio.gather(*[
                    stream_completion(c, {"prompt": p, "max_tokens": TOKENS, "stream": True,
                                          "ignore_eos": True, "temperature": 0})
                    for p in prompts])
            await asyncio.sleep(0.2)
            return results, len(svc.core.sessions), svc.core.admission.used

    results, left, reserved = asyncio.run(main())
    errors = [(i, r["status"], r["error"]) for i, r in enumerate(results)
              if r["status"] != 200 or r["error"] or not r["done"]]
    assert not errors, errors[:3]
    assert all(r["final"]["usage"]["completion_tokens"] == TOKENS for r in results)
    wrong = [i for i, (r, ref) in enumerate(zip(results, alone, strict=True))
             if r["text"] != ref]
    assert not wrong, wrong[:5]
    assert left == 0 and reserved == 0
    assert tr.sessions == 0 and dr.sessions == 0  # every KV handle released


def test_256_concurrent_streams_equal_their_greedy_runs_alone(llama_runners):
    _concurrent_streams(llama_runners, 256)

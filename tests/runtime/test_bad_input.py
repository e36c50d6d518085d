"""Bad input to the HTTP API: every case is a 4xx in OpenAI's error shape naming what is wrong,
never a 500; a stream that fails after it started ends with an error event and [DONE]."""

from __future__ import annotations

import asyncio
import json

import pytest

torch = pytest.importorskip("torch")
httpx = pytest.importorskip("httpx")

from attacks import stream_completion  # noqa: E402
from rt_helpers import edge_stack  # noqa: E402

pytestmark = pytest.mark.runtime

C, CHAT = "/v1/completions", "/v1/chat/completions"
USER = [{"role": "user", "content": "hi"}]

# (path, body or raw bytes, status, words the message must contain)
CASES = [
    (C, {"prompt": "x", "top_k": 2**32}, 400, ["top_k"]),
    (C, {"prompt": "x", "top_k": 2**32, "stream": True}, 400, ["top_k"]),
    (C, {"prompt": "bad \ud800 text"}, 400, ["prompt", "surrogate"]),
    (CHAT, {"messages": [{"role": "user", "content": "a\udfffb"}]}, 400,
     ["content", "surrogate"]),
    (CHAT, {"messages": [{"role": "user", "content": [{"type": "text", "text": "\ud800"}]}]},
     400, ["surrogate"]),
    (C, b'{"prompt": "x", "stream_options": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 400,
     ["nested too deeply"]),
    (C, {"prompt": "x", "max_tokens": "10"}, 400, ["max_tokens", "integer"]),
    (C, {"prompt": "x", "max_tokens": True}, 400, ["max_tokens"]),
    (C, {"prompt": "x", "stream": "yes"}, 400, ["stream", "boolean"]),
    (C, {"prompt": "x", "temperature": "0.5"}, 400, ["temperature"]),
    (C, {"prompt": [1, True]}, 400, ["prompt"]),
    (C, {"prompt": "x", "seed": 1.5}, 400, ["seed"]),
    (C, {"prompt": "x", "logprobs": 2}, 400, ["'logprobs'"]),
    (C, {"prompt": "x", "echo": True}, 400, ["'echo'"]),
    (C, {"prompt": "x", "best_of": 3}, 400, ["'best_of'"]),
    (C, {"prompt": "x", "logit_bias": {"5": 10}}, 400, ["'logit_bias'"]),
    (C, {"prompt": "x", "frequency_penalty": 0.5}, 400, ["'frequency_penalty'"]),
    (C, {"prompt": "x", "presence_penalty": -1}, 400, ["'presence_penalty'"]),
    (C, {"prompt": "x", "suffix": "tail"}, 400, ["'suffix'"]),
    (CHAT, {"messages": USER, "logprobs": True}, 400, ["'logprobs'"]),
    (CHAT, {"messages": USER, "response_format": {"type": "json_object"}}, 400,
     ["'response_format'"]),
    (CHAT, {"messages": USER, "tools": [{"type": "function", "function": {"name": "f"}}]},
     400, ["'tools'"]),
    (CHAT, {"messages": USER, "tool_choice": "auto"}, 400, ["'tool_choice'"]),
    (C, {"prompt": "x", "nonsense": 1}, 400, ["unsupported parameter 'nonsense'"]),
    (CHAT, {"messages": [{"role": "user", "content": [{"type": "image_url",
                                                       "image_url": {"url": "x"}}]}]},
     400, ["messages"]),
    (C, {"prompt": "x", "model": "\ud800"}, 400, ["model"]),
    ("/v1/nowhere", {"prompt": "x"}, 404, ["Not Found"]),
]

# OpenAI parameters at their no-op value are accepted (clients send them by default).
NOOPS = [
    (C, {"prompt": "x", "max_tokens": 2, "logprobs": None, "echo": False, "best_of": 1,
         "frequency_penalty": 0, "presence_penalty": 0.0, "logit_bias": {}, "user": "u1"}),
    (CHAT, {"messages": USER, "max_tokens": 2, "logprobs": False, "tools": [],
            "response_format": {"type": "text"}, "tool_choice": "none"}),
]


def test_bad_input_is_a_4xx_in_openai_shape(tiny, runners):
    tok = tiny[0]

    async def main():
        async with edge_stack(runners, tok) as (base, _):
            async with httpx.AsyncClient(base_url=base, timeout=60) as c:
                bad = []
                for path, body, _, _ in CASES:  # json.dumps escapes lone surrogates (\ud800)
                    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
                    bad.append(await c.post(path, content=raw,
                                            headers={"content-type": "application/json"}))
                ok = [await c.post(path, json=body) for path, body in NOOPS]
                return bad, ok

    bad, ok = asyncio.run(main())
    for (path, body, status, words), r in zip(CASES, bad, strict=True):
        what = (path, str(body)[:80])
        assert r.status_code == status, (what, r.status_code, r.text[:300])
        err = r.json()["error"]
        assert set(err) >= {"message", "type", "param", "code"}, what
        assert "\n" not in err["message"], what
        for word in words:
            assert word in err["message"], (what, err["message"])
    for r in ok:
        assert r.status_code == 200, r.text[:300]


def test_a_stream_that_fails_ends_with_an_error_event_and_done(tiny, runners):
    from dsd.runtime.verifier import Fault

    tok = tiny[0]

    async def main():
        async with edge_stack(runners, tok, round_timeout_s=2.0) as (base, svc):
            svc.fault = Fault("abort", after=3)  # the only verifier fails mid-stream
            async with httpx.AsyncClient(base_url=base, timeout=60) as c:
                return await stream_completion(c, {"prompt": "fail later", "max_tokens": 200,
                                                   "ignore_eos": True})

    r = asyncio.run(main())
    assert r["status"] == 200 and r["text"]  # it had started streaming
    assert r["events"][-1] == "[DONE]"
    assert '"error"' in r["events"][-2] and r["error"]["type"] == "server_error"
    assert "no verifier available" in r["error"]["message"]

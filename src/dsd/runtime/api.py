"""OpenAI-compatible HTTP API in front of an `EdgeEngine` (FastAPI).

Endpoints: POST /v1/completions, POST /v1/chat/completions (streaming via SSE and
non-streaming; max_tokens, temperature, top_p, top_k, stop, seed), GET /v1/models,
GET /health, GET /metrics (Prometheus). Bad input gets a 4xx with a one-line reason in
OpenAI's error shape (request models: openai_schema.py; API key and body limits:
http_guard.py). Each response carries a `dsd` object with the request's speculative
decoding statistics (rounds, drafted/accepted tokens, gamma history, TTFT, TPOT).

Overload answers 429 with Retry-After; a streaming request awaits its first tokens before
the response starts, so that status reaches the client, and a stream failing later ends with
an error event and [DONE]. A request whose client disconnects is cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException

from dsd.errors import DsdError
from dsd.runtime.admission import Overloaded
from dsd.runtime.detok import Detokenizer
from dsd.runtime.edge import EdgeEngine, NoVerifierError, RequestStats
from dsd.runtime.http_guard import RequestGuard
from dsd.runtime.openai_schema import (
    ChatRequest,
    CompletionRequest,
    _Base,
    error,
    error_responses,
    validation_message,
)
from dsd.runtime.speculative import SamplingParams

log = logging.getLogger("dsd.runtime.api")

MAX_BODY_BYTES = 1 << 20
MAX_STOP = 4


class ClientGone(Exception):
    """The client disconnected before the response could start."""


def failure_response(exc: BaseException) -> JSONResponse:
    """The HTTP answer for a request that failed before its response started."""
    if isinstance(exc, Overloaded):
        wait = str(max(1, round(exc.retry_after_s)))
        return error(429, f"server busy: {exc}; retry after {wait}s", "rate_limit_error",
                     headers={"Retry-After": wait})
    if isinstance(exc, NoVerifierError):
        return error(503, str(exc), "server_error", headers={"Retry-After": "1"})
    if isinstance(exc, DsdError):
        return error(503, str(exc), "server_error")
    log.error("request failed: %s: %s", type(exc).__name__, exc)
    return error(500, f"internal error: {type(exc).__name__}", "server_error")


def stream_error(exc: BaseException) -> str:
    """The SSE event for a stream that fails after it started (then `[DONE]` follows)."""
    if isinstance(exc, DsdError):
        err = {"message": str(exc), "type": "server_error", "code": 503}
    else:
        log.error("stream failed: %s: %s", type(exc).__name__, exc)
        err = {"message": f"internal error: {type(exc).__name__}", "type": "server_error",
               "code": 500}
    return f"data: {json.dumps({'error': err})}\n\n"


async def until_disconnected(request: Request) -> None:
    """Returns when the client disconnects (the body has been read already)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def unless_gone(request: Request, awaitable):
    """Await `awaitable`, cancelling it if the client disconnects first (then ClientGone):
    a request nobody waits for must not keep the verifier busy."""
    work = asyncio.ensure_future(awaitable)
    watch = asyncio.ensure_future(until_disconnected(request))
    try:
        await asyncio.wait({work, watch}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watch.cancel()
        if not work.done():
            work.cancel()
            with contextlib.suppress(BaseException):
                await work
    if work.cancelled():
        raise ClientGone
    return work.result()


def create_app(
    engine: EdgeEngine,
    tokenizer,
    model_name: str,
    max_tokens_limit: int = 4096,
    default_max_tokens: int = 256,
    max_context: int | None = None,
    api_key: str | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> RequestGuard:
    """The edge's ASGI app: FastAPI routes behind the API-key and body guard."""
    app = FastAPI(title="dsd edge", version="1")
    created = int(time.time())
    max_context = max_context or 1 << 30
    default_max_tokens = min(default_max_tokens, max_tokens_limit)
    guarded = (401,) if api_key else ()
    completion_responses = {
        200: {"description": "a completion (JSON), or server-sent events with stream=true",
              "content": {"application/json": {}, "text/event-stream": {}}},
        **error_responses(400, *guarded, 404, 413, 415, 429, 503)}
    _document_errors_not_422(app)

    @app.exception_handler(RequestValidationError)
    async def _bad_request(request: Request, exc: RequestValidationError):
        msg, param = validation_message(exc.errors())
        return error(400, msg, param=param)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException):
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return error(exc.status_code, str(exc.detail), kind, headers=exc.headers)

    @app.get("/health", responses=error_responses(503))
    async def health():
        eps = [{"target_id": ep.target_id, "name": ep.name, "up": ep.ready,
                "running": ep.load.running, "queue_depth": ep.load.queue_depth,
                "edge_sessions": ep.active, "rtt_ms": round(ep.rtt_ema * 1e3, 3)}
               for ep in engine.endpoints]
        ok = any(e["up"] for e in eps)
        adm = engine.admission
        return JSONResponse(status_code=200 if ok else 503, content={
            "status": "ok" if ok else "no verifier", "running": adm.holding,
            "waiting": adm.waiting, "verifiers": eps})

    @app.get("/metrics", responses={
        200: {"description": "Prometheus metrics", "content": {"text/plain": {}}},
        **error_responses(*guarded)})
    async def metrics():
        return Response(engine.metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/v1/models", responses=error_responses(*guarded))
    async def models():
        return {"object": "list", "data": [
            {"id": model_name, "object": "model", "created": created, "owned_by": "dsd"}]}

    def _prepare(
        req: _Base, ids: list[int]
    ) -> tuple[SamplingParams, int, list[str]] | JSONResponse:
        if req.model and req.model != model_name:
            return error(404, f"model {req.model!r} not served here (serving {model_name!r})",
                         "not_found_error", param="model")
        if not ids:
            return error(400, "prompt is empty", param="prompt")
        if any(not 0 <= t < engine_vocab for t in ids):
            return error(400, "prompt token id out of the vocabulary", param="prompt")
        max_tokens = getattr(req, "max_completion_tokens", None) or req.max_tokens
        max_tokens = max_tokens or default_max_tokens
        if max_tokens > max_tokens_limit:
            return error(400, f"max_tokens {max_tokens} exceeds the limit {max_tokens_limit}",
                         param="max_tokens")
        if len(ids) + max_tokens > max_context:
            return error(400, f"prompt ({len(ids)} tokens) + max_tokens ({max_tokens}) exceeds "
                              f"the context length {max_context}", param="max_tokens")
        stops = [req.stop] if isinstance(req.stop, str) else list(req.stop or [])
        if len(stops) > MAX_STOP or any(not s for s in stops):
            return error(400, f"stop must be 1..{MAX_STOP} non-empty strings", param="stop")
        params = SamplingParams(req.temperature, req.top_p, req.top_k, req.seed)
        return params, max_tokens, stops

    engine_vocab = len(tokenizer)

    async def _run(request: Request, req: _Base, ids: list[int], chat: bool):
        prep = _prepare(req, ids)
        if isinstance(prep, JSONResponse):
            return prep
        params, max_tokens, stops = prep
        rid = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex[:24]
        stats = RequestStats(rid, time.perf_counter(), len(ids))
        detok = Detokenizer(tokenizer, stops)
        gen = engine.generate(ids, params, max_tokens, req.ignore_eos, rid, stats)
        obj = "chat.completion" if chat else "text_completion"

        def usage():
            # Tokens past the one that completed a stop string are not part of the answer.
            done = min(detok.tokens, stats.output_tokens) if detok.stopped else \
                stats.output_tokens
            return {"prompt_tokens": len(ids), "completion_tokens": done,
                    "total_tokens": len(ids) + done}

        def finish():
            return "stop" if detok.stopped else (stats.finish_reason or "stop")

        if not req.stream:
            async def collect():
                async for toks in gen:
                    detok.push(toks, final=False)
                    if detok.stopped:
                        stats.finish_reason = "stop"  # ended by us: not an error
                        break

            try:
                await unless_gone(request, collect())
            except ClientGone:
                return Response(status_code=499)  # nobody reads it; the work is cancelled
            except Exception as exc:  # noqa: BLE001 - every failure is one JSON error
                return failure_response(exc)
            finally:
                await gen.aclose()
            detok.push([], final=True)
            choice = {"index": 0, "finish_reason": finish(), "logprobs": None}
            if chat:
                choice["message"] = {"role": "assistant", "content": detok.text}
            else:
                choice["text"] = detok.text
            return {"id": rid, "object": obj, "created": int(time.time()), "model": model_name,
                    "choices": [choice], "usage": usage(), "dsd": stats.as_dict()}

        obj_chunk = "chat.completion.chunk" if chat else "text_completion"

        def chunk(delta: str | None, reason: str | None, first: bool = False) -> str:
            if chat:
                d: dict[str, Any] = {}
                if first:
                    d["role"] = "assistant"
                if delta:
                    d["content"] = delta
                choice = {"index": 0, "delta": d, "finish_reason": reason, "logprobs": None}
            else:
                choice = {"index": 0, "text": delta or "", "finish_reason": reason,
                          "logprobs": None}
            body = {"id": rid, "object": obj_chunk, "created": int(time.time()),
                    "model": model_name, "choices": [choice]}
            if reason is not None:
                body["usage"] = usage()
                body["dsd"] = stats.as_dict()
            return f"data: {json.dumps(body)}\n\n"

        # The first tokens are awaited before the response starts, so that a request refused
        # or failed at once (queue full, no verifier) gets its HTTP status (429, 503).
        try:
            first = await unless_gone(request, anext(gen, None))
        except ClientGone:
            await gen.aclose()
            return Response(status_code=499)
        except Exception as exc:  # noqa: BLE001
            await gen.aclose()
            return failure_response(exc)

        async def events():
            try:
                if chat:
                    yield chunk(None, None, first=True)
                pending = [first] if first is not None else []
                async for toks in _chain(pending, gen):
                    delta = detok.push(toks, final=False)
                    if delta:
                        yield chunk(delta, None)
                    if detok.stopped:
                        stats.finish_reason = "stop"  # ended by us: not an error
                        break
                tail = detok.push([], final=True)
                if tail:
                    yield chunk(tail, None)
                yield chunk(None, finish())
            except Exception as exc:  # noqa: BLE001 - a failing stream ends with an error
                yield stream_error(exc)
            finally:
                # Shielded: when the client hangs up, Starlette cancels this task, and an
                # unshielded await here would be cancelled too, leaving the verifier session
                # open until garbage collection.
                with anyio.CancelScope(shield=True):
                    await gen.aclose()
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    @app.post("/v1/completions", responses=completion_responses)
    async def completions(req: CompletionRequest, request: Request):
        p = req.prompt
        if isinstance(p, list) and p and isinstance(p[0], str):
            if len(p) != 1:
                return error(400, "only one prompt per request is supported", param="prompt")
            p = p[0]
        ids = tokenizer(p).input_ids if isinstance(p, str) else list(p)
        return await _run(request, req, ids, chat=False)

    @app.post("/v1/chat/completions", responses=completion_responses)
    async def chat_completions(req: ChatRequest, request: Request):
        msgs = []
        for m in req.messages:
            content = m.content
            if isinstance(content, list):  # content parts (text only)
                content = "".join(part.text for part in content)
            msgs.append({"role": m.role, "content": content or ""})
        try:
            if getattr(tokenizer, "chat_template", None):
                text = tokenizer.apply_chat_template(msgs, tokenize=False,
                                                     add_generation_prompt=True)
            else:
                text = "".join(f"{m['role']}: {m['content']}\n" for m in msgs) + "assistant: "
        except Exception as exc:  # noqa: BLE001 - template errors are the client's input
            return error(400, f"cannot apply the chat template: {str(exc).splitlines()[0]}",
                         param="messages")
        ids = tokenizer(text, add_special_tokens=False).input_ids
        return await _run(request, req, ids, chat=True)

    return RequestGuard(app, api_key=api_key, max_body_bytes=max_body_bytes)


def _document_errors_not_422(app: FastAPI) -> None:
    """FastAPI documents validation failures as 422; the edge answers 400 (as OpenAI does)."""
    from fastapi.openapi.utils import get_openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
            for ops in schema.get("paths", {}).values():
                for op in ops.values():
                    op.get("responses", {}).pop("422", None)
            for name in ("HTTPValidationError", "ValidationError"):
                schema.get("components", {}).get("schemas", {}).pop(name, None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi


async def _chain(first: list, rest):
    for item in first:
        yield item
    async for item in rest:
        yield item

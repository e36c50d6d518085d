"""OpenAI-compatible HTTP API in front of an `EdgeEngine` (FastAPI).

Endpoints: POST /v1/completions, POST /v1/chat/completions (streaming via SSE and
non-streaming; max_tokens, temperature, top_p, top_k, stop, seed), GET /v1/models,
GET /health, GET /metrics (Prometheus). Bad input gets a 4xx with a one-line reason in
OpenAI's error shape. Each response carries a `dsd` object with the request's speculative
decoding statistics (rounds, drafted/accepted tokens, gamma history, TTFT, TPOT).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from dsd.errors import DsdError
from dsd.runtime.edge import EdgeEngine, RequestStats
from dsd.runtime.speculative import SamplingParams

log = logging.getLogger("dsd.runtime.api")

MAX_BODY_BYTES = 1 << 20
MAX_STOP = 4


class _Base(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    top_k: int = Field(default=0, ge=0)
    stop: str | list[str] | None = None
    seed: int | None = Field(default=None, ge=0, le=2**63 - 1)
    stream: bool = False
    n: int = Field(default=1, ge=1, le=1)
    ignore_eos: bool = False
    stream_options: dict[str, Any] | None = None


class CompletionRequest(_Base):
    prompt: str | list[int] | list[str]


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list[dict[str, Any]] | None = ""


class ChatRequest(_Base):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)


def _error(status: int, message: str, kind: str = "invalid_request_error") -> JSONResponse:
    return JSONResponse(status_code=status,
                        content={"error": {"message": message, "type": kind, "code": status}})


class _Detok:
    """Incremental detokenizer with stop strings and held-back partial characters."""

    def __init__(self, tokenizer, stops: list[str]) -> None:
        self.tok = tokenizer
        self.stops = stops
        self.ids: list[int] = []
        self.sent = 0
        self.text = ""
        self.stopped = False

    def push(self, ids: list[int], final: bool) -> str:
        self.ids.extend(ids)
        self.text = self.tok.decode(self.ids, skip_special_tokens=True)
        for s in self.stops:
            cut = self.text.find(s)
            if cut >= 0:
                self.text = self.text[:cut]
                self.stopped = True
        safe = len(self.text)
        if not (final or self.stopped):
            if self.stops:
                safe -= max(len(s) for s in self.stops) - 1
            while safe > self.sent and self.text[safe - 1] == "\ufffd":
                safe -= 1  # an incomplete multi-byte character: wait for its next bytes
        safe = max(safe, self.sent)
        delta = self.text[self.sent:safe]
        self.sent = safe
        return delta


def create_app(
    engine: EdgeEngine,
    tokenizer,
    model_name: str,
    max_tokens_limit: int = 4096,
    default_max_tokens: int = 256,
    max_context: int | None = None,
) -> FastAPI:
    app = FastAPI(title="dsd edge", version="1")
    created = int(time.time())
    max_context = max_context or 1 << 30

    @app.exception_handler(RequestValidationError)
    async def _bad_request(request: Request, exc: RequestValidationError):
        errs = exc.errors()
        if errs:
            e = errs[0]
            where = ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body"
            msg = f"invalid request: {where}: {e.get('msg', 'invalid value')}"
        else:
            msg = "invalid request"
        return _error(400, msg)

    @app.middleware("http")
    async def _limit_body(request: Request, call_next):
        if request.method == "POST":
            size = request.headers.get("content-length")
            if size is not None and (not size.isdigit() or int(size) > MAX_BODY_BYTES):
                return _error(413, f"request body larger than {MAX_BODY_BYTES} bytes")
            body = await request.body()
            if len(body) > MAX_BODY_BYTES:
                return _error(413, f"request body larger than {MAX_BODY_BYTES} bytes")
            ctype = request.headers.get("content-type", "")
            if "json" not in ctype:
                return _error(415, "content-type must be application/json")
            try:
                json.loads(body)
            except ValueError:
                return _error(400, "request body is not valid JSON")
        return await call_next(request)

    @app.get("/health")
    async def health():
        now = time.monotonic()
        eps = [{"target_id": ep.target_id, "name": ep.name, "up": ep.ready and ep.healthy(now),
                "queue_depth": ep.load.queue_depth, "running": ep.load.running,
                "rtt_ms": round(ep.rtt_ema * 1e3, 3)} for ep in engine.endpoints]
        ok = any(e["up"] for e in eps)
        return JSONResponse(status_code=200 if ok else 503,
                            content={"status": "ok" if ok else "no verifier", "verifiers": eps})

    @app.get("/metrics")
    async def metrics():
        return Response(engine.metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [
            {"id": model_name, "object": "model", "created": created, "owned_by": "dsd"}]}

    def _prepare(
        req: _Base, ids: list[int]
    ) -> tuple[SamplingParams, int, list[str]] | JSONResponse:
        if req.model and req.model != model_name:
            return _error(404, f"model {req.model!r} not served here (serving {model_name!r})",
                          "not_found_error")
        if not ids:
            return _error(400, "prompt is empty")
        if any(not 0 <= t < engine_vocab for t in ids):
            return _error(400, "prompt token id out of the vocabulary")
        max_tokens = getattr(req, "max_completion_tokens", None) or req.max_tokens
        max_tokens = max_tokens or default_max_tokens
        if max_tokens > max_tokens_limit:
            return _error(400, f"max_tokens {max_tokens} exceeds the limit {max_tokens_limit}")
        if len(ids) + max_tokens > max_context:
            return _error(400, f"prompt ({len(ids)} tokens) + max_tokens ({max_tokens}) exceeds "
                               f"the context length {max_context}")
        stops = [req.stop] if isinstance(req.stop, str) else list(req.stop or [])
        if len(stops) > MAX_STOP or any(not s for s in stops):
            return _error(400, f"stop must be 1..{MAX_STOP} non-empty strings")
        params = SamplingParams(req.temperature, req.top_p, req.top_k, req.seed)
        return params, max_tokens, stops

    engine_vocab = len(tokenizer)

    async def _run(req: _Base, ids: list[int], chat: bool):
        prep = _prepare(req, ids)
        if isinstance(prep, JSONResponse):
            return prep
        params, max_tokens, stops = prep
        rid = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex[:24]
        stats = RequestStats(rid, time.perf_counter(), len(ids))
        detok = _Detok(tokenizer, stops)
        gen = engine.generate(ids, params, max_tokens, req.ignore_eos, rid, stats)
        obj = "chat.completion" if chat else "text_completion"

        def usage():
            return {"prompt_tokens": len(ids), "completion_tokens": stats.output_tokens,
                    "total_tokens": len(ids) + stats.output_tokens}

        def finish():
            return "stop" if detok.stopped else (stats.finish_reason or "stop")

        if not req.stream:
            try:
                async for toks in gen:
                    detok.push(toks, final=False)
                    if detok.stopped:
                        break
            except DsdError as exc:
                return _error(503, str(exc), "server_error")
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

        async def events():
            try:
                if chat:
                    yield chunk(None, None, first=True)
                async for toks in gen:
                    delta = detok.push(toks, final=False)
                    if delta:
                        yield chunk(delta, None)
                    if detok.stopped:
                        break
                tail = detok.push([], final=True)
                if tail:
                    yield chunk(tail, None)
                yield chunk(None, finish())
                yield "data: [DONE]\n\n"
            except DsdError as exc:
                err = {"error": {"message": str(exc), "type": "server_error", "code": 503}}
                yield f"data: {json.dumps(err)}\n\n"
            finally:
                await gen.aclose()

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    @app.post("/v1/completions")
    async def completions(req: CompletionRequest):
        p = req.prompt
        if isinstance(p, list) and p and isinstance(p[0], str):
            if len(p) != 1:
                return _error(400, "only one prompt per request is supported")
            p = p[0]
        ids = tokenizer(p).input_ids if isinstance(p, str) else list(p)
        return await _run(req, ids, chat=False)

    @app.post("/v1/chat/completions")
    async def chat_completions(req: ChatRequest):
        msgs = []
        for m in req.messages:
            content = m.content
            if isinstance(content, list):  # content parts: keep the text ones
                content = "".join(str(part.get("text", "")) for part in content
                                  if part.get("type") == "text")
            msgs.append({"role": m.role, "content": content or ""})
        try:
            if getattr(tokenizer, "chat_template", None):
                text = tokenizer.apply_chat_template(msgs, tokenize=False,
                                                     add_generation_prompt=True)
            else:
                text = "".join(f"{m['role']}: {m['content']}\n" for m in msgs) + "assistant: "
        except Exception as exc:  # noqa: BLE001 - template errors are the client's input
            return _error(400, f"cannot apply the chat template: {str(exc).splitlines()[0]}")
        ids = tokenizer(text, add_special_tokens=False).input_ids
        return await _run(req, ids, chat=True)

    return app

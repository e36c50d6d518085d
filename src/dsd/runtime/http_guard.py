"""ASGI guard in front of the edge's FastAPI app: API key, and request bodies checked while
they stream in.

- API key (`--api-key` / `DSD_API_KEY`): every path but `/health` needs
  `Authorization: Bearer <key>` (compared in constant time), like vLLM's `--api-key`.
- Bodies: the size limit is enforced on the bytes as they arrive, so a chunked body (no
  Content-Length) is cut off at the limit instead of being read whole first; then the
  content type and the JSON itself (syntax, nesting depth) are checked, and the body is
  replayed to the app.

A pure ASGI middleware, not `@app.middleware("http")`: that one reads bodies through
Starlette's BaseHTTPMiddleware, which buffers the whole body before the app can look at it.
"""

from __future__ import annotations

import hmac
import json

from dsd.runtime.openai_schema import error

OPEN_PATHS = frozenset({"/health"})
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class _TooLarge(Exception):
    pass


class RequestGuard:
    def __init__(self, app, api_key: str | None = None, max_body_bytes: int = 1 << 20) -> None:
        self.app = app
        self.expected = f"Bearer {api_key}".encode() if api_key else None
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or ())
        if self.expected is not None and scope["path"] not in OPEN_PATHS:
            got = headers.get(b"authorization", b"")
            if not hmac.compare_digest(got, self.expected):
                return await error(401, "missing or wrong API key: send 'Authorization: "
                                   "Bearer <key>'", headers={"WWW-Authenticate": "Bearer"}
                                   )(scope, receive, send)
        if scope["method"] not in BODY_METHODS:
            return await self.app(scope, receive, send)
        size = headers.get(b"content-length")
        if size is not None and (not size.isdigit() or int(size) > self.max_body_bytes):
            return await self._too_large(scope, receive, send)
        if b"json" not in headers.get(b"content-type", b""):
            return await error(415, "content-type must be application/json")(scope, receive,
                                                                              send)
        try:
            body, rest = await self._read(receive)
        except _TooLarge:
            return await self._too_large(scope, receive, send)
        if body is None:  # the client went away while sending
            return None
        problem = _json_problem(body)
        if problem:
            return await error(400, problem)(scope, receive, send)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await rest()  # after the body: http.disconnect when the client leaves

        return await self.app(scope, replay, send)

    async def _read(self, receive):
        chunks, total = [], 0
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return None, receive
            chunk = msg.get("body", b"")
            total += len(chunk)
            if total > self.max_body_bytes:
                raise _TooLarge
            chunks.append(chunk)
            if not msg.get("more_body", False):
                return b"".join(chunks), receive

    async def _too_large(self, scope, receive, send) -> None:
        # No "Connection: close": closing at once would reset a client still sending, which
        # then never reads the 413. uvicorn discards (does not buffer) the rest of the body,
        # and the connection's deadline bounds how long that may take.
        await error(413, f"request body larger than {self.max_body_bytes} bytes")(
            scope, receive, send)


def _json_problem(body: bytes) -> str | None:
    try:
        json.loads(body)
    except RecursionError:
        return "request body JSON is nested too deeply"
    except ValueError as exc:  # includes bad UTF-8
        return f"request body is not valid JSON: {str(exc).splitlines()[0][:120]}"
    return None

"""A small app behind dsd's HTTP guard and server, for connection-level attack tests: the
same uvicorn protocol, limits and body guard as the edge, without a model (starts in ~1 s).

    python http_target.py '{"header_timeout_s": 1.0, "max_connections": 4096}'

Prints `READY <port>` once serving, then serves until its stdin closes. Logs go to stderr.
"""

from __future__ import annotations

import asyncio
import json
import sys


async def main(cfg: dict) -> None:
    from fastapi import FastAPI, Request

    from dsd.runtime.http_guard import RequestGuard
    from dsd.runtime.http_server import HttpLimits, start_http
    from dsd.runtime.logs import setup_logging

    setup_logging("info", json_logs=False)
    app = FastAPI()

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    @app.post("/v1/completions")
    async def echo(request: Request):
        return {"bytes": len(await request.body())}

    limits = HttpLimits(**{k: v for k, v in cfg.items() if k in HttpLimits.__dataclass_fields__})
    guarded = RequestGuard(app, max_body_bytes=cfg.get("max_body_bytes", 1 << 20))
    srv = await start_http(guarded, "127.0.0.1", 0, limits)
    print(f"READY {srv.port} {srv.max_connections}", flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)
    await srv.stop()


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}))

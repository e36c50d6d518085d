"""Start the runtime's servers inside a running asyncio loop (used by the CLI and tests)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from dsd.runtime.api import create_app
from dsd.runtime.edge import EdgeEngine
from dsd.runtime.http_server import HttpLimits, HttpServer, start_http

log = logging.getLogger("dsd.runtime")

__all__ = ["EdgeServer", "HttpLimits", "HttpServer", "start_edge_server", "start_http",
           "wait_forever"]


@dataclass
class EdgeServer:
    engine: EdgeEngine
    http: HttpServer
    extras: list = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.http.port

    async def stop(self) -> None:
        await self.http.stop()
        await self.engine.close()


async def start_edge_server(
    engine: EdgeEngine,
    tokenizer,
    model_name: str,
    host: str = "127.0.0.1",
    port: int = 0,
    max_tokens_limit: int = 4096,
    max_context: int | None = None,
    api_key: str | None = None,
    limits: HttpLimits | None = None,
    strict_start: bool = False,
) -> EdgeServer:
    """Handshake with the verifiers (with `strict_start`, a verifier that accepts
    connections but fails the handshake stops the start-up), then serve the API."""
    await engine.start(strict=strict_start)
    app = create_app(engine, tokenizer, model_name, max_tokens_limit=max_tokens_limit,
                     max_context=max_context, api_key=api_key)
    try:
        http = await start_http(app, host, port, limits)
    except BaseException:
        await engine.close()
        raise
    log.info("edge API on http://%s:%d/v1 (model %s, at most %d connections)", host,
             http.port, model_name, http.max_connections)
    return EdgeServer(engine, http)


async def wait_forever() -> None:
    await asyncio.Event().wait()

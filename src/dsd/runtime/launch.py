"""Start the runtime's servers inside a running asyncio loop (used by the CLI and tests)."""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass, field

from dsd.runtime.api import create_app
from dsd.runtime.edge import EdgeEngine

log = logging.getLogger("dsd.runtime")


@dataclass
class HttpServer:
    server: object
    task: asyncio.Task
    port: int

    async def stop(self) -> None:
        self.server.should_exit = True
        try:
            await asyncio.wait_for(self.task, 10)
        except (TimeoutError, asyncio.CancelledError):
            self.task.cancel()


async def start_http(app, host: str = "127.0.0.1", port: int = 0) -> HttpServer:
    """Run a uvicorn server for `app` as a task of the current loop; port 0 = pick one."""
    import uvicorn

    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        from dsd.errors import DsdError

        raise DsdError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    bound = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_keep_alive=30,
                            backlog=512, lifespan="off")
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve(sockets=[sock]), name=f"http:{bound}")
    for _ in range(500):
        if server.started or task.done():
            break
        await asyncio.sleep(0.01)
    if task.done():
        task.result()
    return HttpServer(server, task, bound)


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
) -> EdgeServer:
    await engine.start()
    app = create_app(engine, tokenizer, model_name, max_tokens_limit=max_tokens_limit,
                     max_context=max_context)
    http = await start_http(app, host, port)
    log.info("edge API on http://%s:%d/v1 (model %s)", host, http.port, model_name)
    return EdgeServer(engine, http)


async def wait_forever() -> None:
    await asyncio.Event().wait()

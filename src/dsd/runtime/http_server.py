"""The HTTP server under the edge's API: uvicorn, bounded against slow and idle clients.

uvicorn offers a keep-alive timeout (idle time *between* requests, reset by every byte),
`limit_concurrency` (answers 503 beyond N connections or tasks: it refuses load that the
edge's queue should absorb, and never closes an idle connection) and a bound on header size
(`h11_max_incomplete_event_size`). It has no timeout on receiving a request and no cap on
open connections, so a client that never finishes its headers holds a connection, and a
file descriptor, forever; at the descriptor limit accept() fails in a tight loop (EMFILE)
and all service stops. `GuardedH11Protocol` adds what is missing to uvicorn's own h11
protocol class (uvicorn's documented `http=` hook), rather than replacing the server:

- a deadline for each request's headers (`header_timeout_s`, from the connection or from
  the end of the previous response plus the keep-alive time) and one for its body
  (`body_timeout_s`); a connection that misses one is closed;
- a cap on open connections (`max_connections`, clamped below the process's descriptor
  limit, which is raised to its hard maximum first). Over the cap, the oldest connection
  that is not being answered (idle, or still sending its request) is closed to make room,
  so slow or idle clients can never lock normal requests out; with none, the newcomer is.

The h11 implementation (pure Python) is used even where httptools is installed: the edge's
cost is the model, not HTTP parsing, and one implementation keeps the guard simple.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import socket
from dataclasses import dataclass

from uvicorn.protocols.http.h11_impl import H11Protocol

from dsd.errors import DsdError
from dsd.runtime.logs import install_repeat_filter

log = logging.getLogger("dsd.runtime.http")

FD_RESERVE_MIN = 64  # descriptors kept for the model files, gRPC channels and logs


@dataclass(frozen=True)
class HttpLimits:
    max_connections: int = 4096
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    keep_alive_s: int = 30


def raise_fd_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = 1 << 20 if hard == resource.RLIM_INFINITY else hard
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def connection_cap(requested: int, fd_limit: int) -> int:
    """The connection cap that keeps a reserve of descriptors below `fd_limit`."""
    reserve = max(FD_RESERVE_MIN, fd_limit // 8)
    return max(1, min(requested, fd_limit - reserve))


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with request deadlines and a connection cap (see module doc)."""

    limits: HttpLimits = HttpLimits()
    max_connections: int = 4096

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._deadline: asyncio.TimerHandle | None = None
        self._seen_cycle = None
        self._opened_at = self.loop.time()
        if len(self.connections) > self.max_connections:
            self._make_room()
        if not transport.is_closing():
            self._arm(self.limits.header_timeout_s)

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        cycle = self.cycle
        if cycle is None:
            return
        if cycle is not self._seen_cycle:  # a new request's headers are in
            self._seen_cycle = cycle
            if cycle.more_body:
                self._arm(self.limits.body_timeout_s)
            else:
                self._disarm()
        elif not cycle.more_body:
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self._receiving():
            # The next request's headers are due within the keep-alive time plus the
            # header timeout (uvicorn's keep-alive timer stops at the first byte).
            self._arm(self.timeout_keep_alive + self.limits.header_timeout_s)

    # ---- deadlines -------------------------------------------------------------------------

    def _receiving(self) -> bool:
        """Idle or still receiving a request: nothing of ours is being answered."""
        cycle = self.cycle
        return (cycle is None or cycle.response_complete
                or (cycle.more_body and not cycle.response_started))

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expire)

    def _disarm(self) -> None:
        if getattr(self, "_deadline", None) is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if self.transport.is_closing() or not self._receiving():
            return
        log.warning("closed a connection that sent no complete request in time (slow or "
                    "idle client)")
        self.transport.close()

    # ---- connection cap --------------------------------------------------------------------

    def _make_room(self) -> None:
        live = [c for c in self.connections if not c.transport.is_closing()]
        if len(live) <= self.max_connections:
            return
        idle = [c for c in live if c is not self and isinstance(c, GuardedH11Protocol)
                and c._receiving()]
        if idle:
            victim = min(idle, key=lambda c: c._opened_at)
            victim.transport.close()
            log.warning("connection cap %d reached: closed the oldest idle connection",
                        self.max_connections)
        else:
            log.warning("connection cap %d reached and every connection is being answered: "
                        "refused a new one", self.max_connections)
            self.transport.close()


@dataclass
class HttpServer:
    server: object
    task: asyncio.Task
    port: int
    max_connections: int

    async def stop(self) -> None:
        self.server.should_exit = True
        try:
            await asyncio.wait_for(self.task, 10)
        except (TimeoutError, asyncio.CancelledError):
            self.task.cancel()


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening-ready TCP socket; a port in use is one line naming it."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise DsdError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock


def check_port_free(host: str, port: int, flag: str) -> None:
    """Fail at start, in one line naming the port and its flag, if `host:port` is taken."""
    if port == 0:
        return
    try:
        bind_socket(host, port).close()
    except DsdError as exc:
        raise DsdError(f"{exc} (is another server using it? choose another {flag})") from None


async def start_http(app, host: str = "127.0.0.1", port: int = 0,
                     limits: HttpLimits | None = None) -> HttpServer:
    """Run a uvicorn server for `app` as a task of the current loop; port 0 = pick one."""
    import uvicorn

    limits = limits or HttpLimits()
    install_repeat_filter()
    cap = connection_cap(limits.max_connections, raise_fd_limit())
    protocol = type("GuardedH11", (GuardedH11Protocol,),
                    {"limits": limits, "max_connections": cap})
    sock = bind_socket(host, port)
    bound = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", access_log=False, http=protocol,
                            timeout_keep_alive=limits.keep_alive_s, backlog=1024,
                            lifespan="off")
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve(sockets=[sock]), name=f"http:{bound}")
    for _ in range(500):
        if server.started or task.done():
            break
        await asyncio.sleep(0.01)
    if task.done():
        task.result()
    return HttpServer(server, task, bound, cap)

"""A TCP delay proxy: edge and verifier talk over real sockets through a real delay.

Each accepted connection is forwarded to the upstream address. Every chunk read in either
direction is held for the one-way delay (plus uniform jitter in [-jitter, +jitter], never
reordering bytes) and, with a bandwidth cap, for its serialization time on a link of that
rate. Works where `tc netem` is unavailable.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass

log = logging.getLogger("dsd.runtime.proxy")


@dataclass
class LinkConfig:
    delay_s: float = 0.0  # one-way delay
    jitter_s: float = 0.0  # uniform +- jitter on each chunk's delay
    bandwidth_bps: float = 0.0  # bits per second, 0 = unlimited
    seed: int = 0


class _Direction:
    def __init__(self, cfg: LinkConfig, rng: random.Random) -> None:
        self.cfg = cfg
        self.rng = rng
        self.last_release = 0.0
        self.link_free = 0.0

    def release_time(self, nbytes: int, now: float) -> float:
        cfg = self.cfg
        start = now
        if cfg.bandwidth_bps > 0:  # serialization on a link that sends one chunk at a time
            start = max(now, self.link_free)
            self.link_free = start + nbytes * 8 / cfg.bandwidth_bps
            start = self.link_free
        jitter = self.rng.uniform(-cfg.jitter_s, cfg.jitter_s) if cfg.jitter_s > 0 else 0.0
        t = start + max(0.0, cfg.delay_s + jitter)
        t = max(t, self.last_release)  # TCP is a byte stream: never reorder
        self.last_release = t
        return t


async def _pump(reader, writer, direction: _Direction) -> None:
    queue: asyncio.Queue = asyncio.Queue()

    async def sender():
        while True:
            item = await queue.get()
            if item is None:
                break
            when, data = item
            wait = when - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()

    task = asyncio.create_task(sender())
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            queue.put_nowait((direction.release_time(len(data), time.monotonic()), data))
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        queue.put_nowait(None)
        try:
            await task
            if writer.can_write_eof():
                writer.write_eof()
        except (ConnectionError, OSError):
            pass


class DelayProxy:
    def __init__(self, upstream_host: str, upstream_port: int, cfg: LinkConfig) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.cfg = cfg
        self._rng = random.Random(cfg.seed)
        self.server: asyncio.AbstractServer | None = None
        self.port = 0
        self._conns: set[asyncio.Task] = set()

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self.server = await asyncio.start_server(self._handle, host, port)
        self.port = self.server.sockets[0].getsockname()[1]
        log.info("delay proxy %s:%d -> %s:%d (delay %.1f ms, jitter %.1f ms, %s)", host,
                 self.port, *self.upstream, self.cfg.delay_s * 1e3, self.cfg.jitter_s * 1e3,
                 f"{self.cfg.bandwidth_bps / 1e6:.1f} Mbit/s" if self.cfg.bandwidth_bps
                 else "unlimited")
        return self.port

    async def _handle(self, c_reader, c_writer) -> None:
        task = asyncio.current_task()
        self._conns.add(task)
        try:
            u_reader, u_writer = await asyncio.open_connection(*self.upstream)
        except OSError as exc:
            log.warning("proxy: upstream %s:%d unreachable: %s", *self.upstream, exc)
            c_writer.close()
            self._conns.discard(task)
            return
        up = _Direction(self.cfg, self._rng)
        down = _Direction(self.cfg, self._rng)
        try:
            await asyncio.gather(_pump(c_reader, u_writer, up), _pump(u_reader, c_writer, down))
        except asyncio.CancelledError:
            pass  # proxy stopping
        finally:
            for w in (c_writer, u_writer):
                try:
                    w.close()
                except OSError:
                    pass
            self._conns.discard(task)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            for t in list(self._conns):
                t.cancel()
            await asyncio.gather(*self._conns, return_exceptions=True)
            await self.server.wait_closed()

"""Verifier endpoints as the edge sees them: remote (gRPC) or local (in-process core).

An endpoint gives the edge sessions (`open` -> first token, `verify` -> verdict, `close`)
and keeps what the router needs: the load the verifier last reported, the RTT the edge
measured (EMA and spread), health. Remote sessions use one bidirectional stream on the
endpoint's persistent channel, with a per-request deadline and a per-round timeout.
`emulate_rtt_s` / `emulate_jitter_s` delay each direction of the edge's link in user space.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc

from dsd.errors import DsdError
from dsd.runtime import protocol
from dsd.runtime.proto import dsd_pb2 as pb
from dsd.runtime.scheduler import CapacityError, Load, SessionClosed, VerifierCore
from dsd.runtime.speculative import SamplingParams, SparseDist

RETRYABLE = {
    grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED,
    grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.ABORTED, grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
}


class VerifierFailure(Exception):
    """The verifier died, stopped answering or refused for capacity: retry elsewhere."""


class VerifierRefused(DsdError):
    """The verifier refused the request for a reason another verifier would share."""


@dataclass(slots=True)
class Reply:
    token: int  # first token (open) or correction/bonus token (verify)
    accepted: int
    load: Load
    server_time_s: float
    rtt_s: float  # measured round trip minus the verifier's own time
    batch_size: int = 1


@dataclass
class Endpoint:
    """Shared state of one verifier for routing; subclasses implement sessions."""

    target_id: int
    name: str
    load: Load = field(default_factory=Load)
    rtt_ema: float = 0.0
    rtt_var: float = 0.0
    active: int = 0
    down_until: float = 0.0
    ready: bool = False
    max_gamma: int = protocol.MAX_GAMMA
    max_context: int = 1 << 30

    def healthy(self, now: float | None = None) -> bool:
        return (now or time.monotonic()) >= self.down_until

    def mark_down(self, seconds: float = 5.0) -> None:
        self.down_until = time.monotonic() + seconds
        self.ready = False

    def record(self, rtt_s: float, load: Load) -> None:
        self.load = load
        if self.rtt_ema == 0.0:
            self.rtt_ema = rtt_s
        else:
            diff = rtt_s - self.rtt_ema
            self.rtt_ema += 0.2 * diff
            self.rtt_var = 0.8 * (self.rtt_var + 0.2 * diff * diff)

    @property
    def rtt_std(self) -> float:
        return math.sqrt(max(self.rtt_var, 0.0))


class LocalEndpoint(Endpoint):
    """A verifier core in the same process (fused and cloud-only modes): no network."""

    def __init__(self, core: VerifierCore, target_id: int = 0, name: str = "local") -> None:
        super().__init__(target_id=target_id, name=name, ready=True,
                         max_context=core.runner.max_context)
        self.core = core
        self.fingerprint = core.runner.fingerprint

    async def connect(self, fingerprint: str, vocab_size: int, edge_id: str = "") -> None:
        if fingerprint and fingerprint != self.fingerprint:
            raise VerifierRefused("tokenizer mismatch: the draft and target models must share "
                                  "a tokenizer")
        await self.core.start()
        self.ready = True

    def session(self, request_id: str, deadline_s: float, round_timeout_s: float):
        return LocalSession(self)

    async def close(self) -> None:
        await self.core.stop()


class LocalSession:
    def __init__(self, ep: LocalEndpoint) -> None:
        self.ep = ep
        self.key: int | None = None

    async def open(self, prompt_ids, params, max_new_tokens, fingerprint,
                   on_sent: Callable[[], None] | None = None) -> Reply:
        t0 = time.perf_counter()
        if on_sent is not None:  # nothing to send: the core has the prompt at once
            on_sent()
        try:
            self.key, first = await self.ep.core.open("local", list(prompt_ids), params)
        except CapacityError as exc:
            raise VerifierFailure(str(exc)) from None
        return Reply(first, 0, self.ep.core.load(), time.perf_counter() - t0, 0.0)

    async def verify(self, rnd, draft, proposals) -> Reply:
        t0 = time.perf_counter()
        try:
            out = await self.ep.core.verify(self.key, list(draft), proposals)
        except SessionClosed as exc:
            raise VerifierFailure(str(exc)) from None
        return Reply(out.next_token, out.accepted, self.ep.core.load(),
                     time.perf_counter() - t0, 0.0, out.batch_size)

    async def close(self) -> None:
        if self.key is not None:
            self.ep.core.close(self.key)
            self.key = None


def _load(report: pb.LoadReport) -> Load:
    return Load(report.queue_depth, report.running, report.outstanding_tokens,
                max(1, report.capacity), report.batch_occupancy)


class RemoteEndpoint(Endpoint):
    def __init__(
        self,
        target_id: int,
        address: str,
        token: str | None = None,
        tls: protocol.TlsConfig | None = None,
        emulate_rtt_s: float = 0.0,
        emulate_jitter_s: float = 0.0,
        connect_timeout_s: float = 5.0,
        seed: int = 0,
    ) -> None:
        super().__init__(target_id=target_id, name=address)
        host, port = protocol.parse_address(address)
        target = f"{host}:{port}"
        opts = protocol.channel_options()
        if tls is not None:
            self.channel = grpc.aio.secure_channel(target, tls.channel_credentials(), opts)
        else:
            self.channel = grpc.aio.insecure_channel(target, opts)
        self.stub = protocol.VerifierStub(self.channel)
        self.metadata = protocol.auth_metadata(token)
        self.emulate_rtt_s = emulate_rtt_s
        self.emulate_jitter_s = emulate_jitter_s
        self.connect_timeout_s = connect_timeout_s
        self._rng = random.Random(seed + target_id)
        self.info: pb.HelloReply | None = None

    async def delay(self) -> None:
        """One direction of the emulated link: RTT/2 plus uniform jitter of +-jitter/2."""
        if self.emulate_rtt_s <= 0 and self.emulate_jitter_s <= 0:
            return
        d = self.emulate_rtt_s / 2 + self._rng.uniform(-0.5, 0.5) * self.emulate_jitter_s
        if d > 0:
            await asyncio.sleep(d)

    async def connect(self, fingerprint: str, vocab_size: int, edge_id: str = "") -> None:
        """Version + tokenizer handshake. Raises VerifierRefused on mismatch,
        VerifierFailure if unreachable."""
        req = pb.HelloRequest(protocol_version=protocol.PROTOCOL_VERSION,
                              tokenizer_fingerprint=fingerprint, vocab_size=vocab_size,
                              edge_id=edge_id)
        t0 = time.perf_counter()
        try:
            reply = await self.stub.hello(req, timeout=self.connect_timeout_s,
                                          metadata=self.metadata, wait_for_ready=False)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.FAILED_PRECONDITION,
                              grpc.StatusCode.UNAUTHENTICATED):
                raise VerifierRefused(f"verifier {self.name}: {exc.details()}") from None
            self.mark_down()
            raise VerifierFailure(f"verifier {self.name} unreachable: {exc.code().name}") from None
        self.info = reply
        self.max_gamma = reply.max_gamma or protocol.MAX_GAMMA
        self.max_context = reply.max_context or self.max_context
        self.record(time.perf_counter() - t0, _load(reply.load))
        self.ready = True
        self.down_until = 0.0

    def session(self, request_id: str, deadline_s: float, round_timeout_s: float):
        return RemoteSession(self, request_id, deadline_s, round_timeout_s)

    async def close(self) -> None:
        await self.channel.close()


class RemoteSession:
    def __init__(self, ep: RemoteEndpoint, request_id: str, deadline_s: float,
                 round_timeout_s: float) -> None:
        self.ep = ep
        self.request_id = request_id
        self.round_timeout_s = round_timeout_s
        self.call = ep.stub.session(timeout=deadline_s, metadata=ep.metadata)

    async def _exchange(self, msg: pb.EdgeMessage, on_sent: Callable[[], None] | None = None
                        ) -> tuple[pb.VerifierMessage, float]:
        t0 = time.perf_counter()
        try:
            await self.ep.delay()
            # One deadline for the exchange; asyncio.timeout wraps no extra task per await.
            async with asyncio.timeout(self.round_timeout_s):
                await self.call.write(msg)
                if on_sent is not None:
                    on_sent()
                reply = await self.call.read()
            await self.ep.delay()
        except TimeoutError:
            self.call.cancel()
            raise VerifierFailure(f"verifier {self.ep.name} did not answer within "
                                  f"{self.round_timeout_s:.1f}s") from None
        except grpc.aio.AioRpcError as exc:
            if exc.code() in RETRYABLE:
                raise VerifierFailure(f"verifier {self.ep.name}: {exc.code().name} "
                                      f"{exc.details() or ''}".strip()) from None
            raise VerifierRefused(f"verifier {self.ep.name} refused: {exc.details()}") from None
        except (grpc.aio.UsageError, grpc.RpcError, asyncio.InvalidStateError) as exc:
            raise VerifierFailure(f"verifier {self.ep.name}: connection lost "
                                  f"({type(exc).__name__})") from None
        if reply is grpc.aio.EOF:
            raise VerifierFailure(f"verifier {self.ep.name} closed the session")
        return reply, time.perf_counter() - t0

    async def open(self, prompt_ids, params: SamplingParams, max_new_tokens, fingerprint,
                   on_sent: Callable[[], None] | None = None) -> Reply:
        """Open the session: send the prompt, return the target's first token. `on_sent` is
        called once the prompt is on the wire (the edge starts its draft prefill then, so
        that on a CPU shared by both the prompt leaves first)."""
        sp = pb.SamplingParams(temperature=params.temperature, top_p=params.top_p,
                               top_k=params.top_k, has_seed=params.seed is not None,
                               seed=(params.seed or 0) & 0xFFFF_FFFF_FFFF_FFFF)
        msg = pb.EdgeMessage(open=pb.Open(
            protocol_version=protocol.PROTOCOL_VERSION, request_id=self.request_id,
            prompt_ids=list(prompt_ids), sampling=sp, max_new_tokens=max_new_tokens,
            tokenizer_fingerprint=fingerprint))
        reply, elapsed = await self._exchange(msg, on_sent)
        o = reply.opened
        load = _load(o.load)
        rtt = max(0.0, elapsed - o.server_time_s)
        self.ep.record(rtt, load)
        return Reply(o.first_token, 0, load, o.server_time_s, rtt)

    async def verify(self, rnd: int, draft: list[int], proposals: list[SparseDist] | None) -> Reply:
        v = pb.Verify(round=rnd, draft_ids=draft)
        if proposals:
            v.proposals.extend(pb.SparseDist(ids=q.ids.tolist(), probs=q.probs.tolist())
                               for q in proposals)
        reply, elapsed = await self._exchange(pb.EdgeMessage(verify=v))
        d = reply.verdict
        load = _load(d.load)
        rtt = max(0.0, elapsed - d.server_time_s)
        self.ep.record(rtt, load)
        return Reply(d.next_token, d.accepted, load, d.server_time_s, rtt, d.batch_size)

    async def close(self) -> None:
        try:
            if not self.call.done():
                await asyncio.wait_for(self.call.done_writing(), 1.0)
        except Exception:  # noqa: BLE001 - best effort, the stream is cancelled below
            pass
        self.call.cancel()

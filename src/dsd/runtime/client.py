"""Verifier endpoints as the edge sees them: the shared routing state, and the remote (gRPC)
endpoint. The in-process endpoint of the fused and cloud-only modes lives in fused.py.

An endpoint gives the edge sessions (`open` -> first token, `verify` -> verdict, `close`)
and keeps what the router needs: the load the verifier last reported, the RTT the edge
measured (EMA and spread), health. Remote sessions use one bidirectional stream on the
endpoint's persistent channel, with a per-request deadline and a per-round timeout.
`emulate_rtt_s` / `emulate_jitter_s` delay each direction of the edge's link in user space.

Health: a remote endpoint probes its verifier in the background with the standard gRPC
health check (every `probe_interval_s` while up, every `reconnect_interval_s` while down),
redoes the handshake when it comes back, and refreshes the reported load when this edge's
last session on it ends and every `load_refresh_s`, so the edge's `/health` and router see
the verifier's real state without waiting for a request. A
capacity refusal (RESOURCE_EXHAUSTED) is `VerifierBusy`, not a failure: the verifier stays up.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from dsd.errors import DsdError
from dsd.runtime import protocol
from dsd.runtime.proto import dsd_pb2 as pb
from dsd.runtime.scheduler import Load
from dsd.runtime.speculative import SamplingParams, SparseDist
from dsd.runtime.tasks import cancel_and_wait

log = logging.getLogger("dsd.runtime.client")

# The verifier is gone or unreachable: retry elsewhere and mark it down until it answers.
DOWN = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
# This session failed on a live verifier: retry the request, the verifier stays up.
SESSION_LOST = {grpc.StatusCode.CANCELLED, grpc.StatusCode.ABORTED, grpc.StatusCode.INTERNAL,
                grpc.StatusCode.UNKNOWN}


class VerifierFailure(Exception):
    """The verifier died, stopped answering or lost the session: retry elsewhere. `down`
    says whether the verifier itself looks gone (else only this session failed); `silent`
    that it stopped answering while its connection stayed up (a hung target)."""

    def __init__(self, message: str, down: bool = True, silent: bool = False) -> None:
        super().__init__(message)
        self.down = down
        self.silent = silent


class VerifierBusy(Exception):
    """The verifier refused for capacity (its queue is full): wait and retry; it is up."""


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
    active: int = 0  # sessions this edge has open on it
    ready: bool = False  # handshake done and the last health probe passed
    max_gamma: int = protocol.MAX_GAMMA
    max_context: int = 1 << 30
    vocab_size: int = 0  # the target's logit width (0: unknown)
    load_at: float = 0.0  # monotonic time of the last load report
    down_until: float = 0.0  # no reconnect before this (monotonic), after a silent failure

    def mark_down(self, cool_down_s: float = 0.0) -> None:
        """Out of routing until the health probe passes again, and not before cool_down_s:
        a verifier whose connection is up but whose target hangs still passes the probe."""
        self.ready = False
        self.down_until = max(self.down_until, time.monotonic() + cool_down_s)

    def start_probe(self, fingerprint: str, vocab_size: int, edge_id: str = "") -> None:
        """Background health probing (remote endpoints only)."""

    def session_closed(self) -> None:
        """Called by the edge when one of its sessions on this endpoint ends."""

    def record(self, rtt_s: float, load: Load) -> None:
        self.load = load
        self.load_at = time.monotonic()
        if self.rtt_ema == 0.0:
            self.rtt_ema = rtt_s
        else:
            diff = rtt_s - self.rtt_ema
            self.rtt_ema += 0.2 * diff
            self.rtt_var = 0.8 * (self.rtt_var + 0.2 * diff * diff)

    @property
    def rtt_std(self) -> float:
        return math.sqrt(max(self.rtt_var, 0.0))


def _load(report: pb.LoadReport) -> Load:
    return Load(report.queue_depth, report.running, report.outstanding_tokens,
                max(1, report.capacity), report.batch_occupancy, report.remaining_tokens,
                report.est_step_s)


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
        probe_interval_s: float = 1.0,
        reconnect_interval_s: float = 0.1,
        probe_timeout_s: float = 2.0,
        probe_failures_down: int = 2,
        load_refresh_s: float = 5.0,
    ) -> None:
        super().__init__(target_id=target_id, name=address)
        host, port = protocol.parse_address(address)
        self.host, self.port = host, port
        target = f"{host}:{port}"
        opts = protocol.edge_channel_options()
        self.tls = tls
        if tls is not None:
            self.channel = grpc.aio.secure_channel(target, tls.channel_credentials(), opts)
        else:
            self.channel = grpc.aio.insecure_channel(target, opts)
        self.stub = protocol.VerifierStub(self.channel)
        self.health_stub = health_pb2_grpc.HealthStub(self.channel)
        self.metadata = protocol.auth_metadata(token)
        self.emulate_rtt_s = emulate_rtt_s
        self.emulate_jitter_s = emulate_jitter_s
        self.connect_timeout_s = connect_timeout_s
        self.probe_interval_s = probe_interval_s
        self.reconnect_interval_s = reconnect_interval_s
        self.probe_timeout_s = probe_timeout_s
        self.probe_failures_down = probe_failures_down
        self.load_refresh_s = load_refresh_s  # idle edges refresh the reported load this often
        self._rng = random.Random(seed + target_id)
        self._probe_task: asyncio.Task | None = None
        self._probe_now: asyncio.Event | None = None  # made in the loop that probes
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
            raise VerifierFailure(f"verifier {self.name} unreachable: {exc.code().name} "
                                  f"({_first_clause(exc.details())})") from None
        self.info = reply
        self.max_gamma = reply.max_gamma or protocol.MAX_GAMMA
        self.max_context = reply.max_context or self.max_context
        self.vocab_size = reply.vocab_size
        self.record(time.perf_counter() - t0, _load(reply.load))
        self.ready = True

    def session(self, request_id: str, deadline_s: float, round_timeout_s: float):
        return RemoteSession(self, request_id, deadline_s, round_timeout_s)

    def listening(self, timeout_s: float = 2.0) -> bool:
        """Whether something accepts TCP connections at the verifier's address."""
        try:
            with socket.create_connection((self.host, self.port), timeout=timeout_s):
                return True
        except OSError:
            return False

    def diagnose(self, failure: VerifierFailure) -> str:
        """One line for a verifier that accepts connections but fails the gRPC handshake:
        almost always TLS on one side only, or a certificate the edge does not trust."""
        text = str(failure)
        if "CERTIFICATE_VERIFY_FAILED" in text:
            hint = ("its TLS certificate is not trusted: pass the CA that signed it with "
                    "--tls-ca")
        elif "WRONG_VERSION_NUMBER" in text or (self.tls is not None and "handshake" in text):
            hint = ("the TLS handshake failed: the verifier probably serves plain gRPC "
                    "(drop --tls, or start the verifier with --tls-cert/--tls-key)")
        elif self.tls is None:
            hint = ("the verifier closed the connection during the handshake: it probably "
                    "serves TLS (add --tls, and --tls-ca if its certificate is self-signed)")
        else:
            hint = text
        return f"verifier {self.name} accepts connections but the gRPC handshake failed: {hint}"

    # ---- background health probing ---------------------------------------------------------

    def start_probe(self, fingerprint: str, vocab_size: int, edge_id: str = "") -> None:
        if self._probe_task is None:
            self._probe_now = asyncio.Event()
            self._probe_task = asyncio.create_task(
                self._probe_loop(fingerprint, vocab_size, edge_id), name=f"probe:{self.name}")

    def session_closed(self) -> None:
        if self.active == 0 and self._probe_now is not None:
            self._probe_now.set()  # refresh the load now: /health should not show stale sessions

    async def _serving(self) -> bool:
        try:
            reply = await self.health_stub.Check(
                health_pb2.HealthCheckRequest(service=protocol.SERVICE),
                timeout=self.probe_timeout_s, metadata=self.metadata, wait_for_ready=False)
        except grpc.aio.AioRpcError:
            return False
        return reply.status == health_pb2.HealthCheckResponse.SERVING

    async def _probe_loop(self, fingerprint: str, vocab_size: int, edge_id: str) -> None:
        failures = 0
        while True:
            interval = self.probe_interval_s if self.ready else self.reconnect_interval_s
            forced = False
            try:
                async with asyncio.timeout(interval):
                    await self._probe_now.wait()
                forced = True  # this edge's last session ended: the load report is stale
                await asyncio.sleep(0.05)  # let the verifier see the stream end first
            except TimeoutError:
                pass
            self._probe_now.clear()
            if not await self._serving():
                failures += 1
                # One lost probe on a loaded machine is not an outage; a few in a row are.
                if self.ready and failures >= self.probe_failures_down:
                    log.warning("verifier %s stopped answering health checks; marked down",
                                self.name)
                    self.mark_down()
                continue
            failures = 0
            if not self.ready and time.monotonic() < self.down_until:
                continue  # cooling down after it stopped answering a request
            stale = time.monotonic() - self.load_at > self.load_refresh_s
            if self.ready and not (stale or forced):
                continue
            was_ready = self.ready
            try:
                await self.connect(fingerprint, vocab_size, edge_id)  # also reports the load
            except VerifierRefused as exc:  # e.g. restarted with another model or token
                log.error("%s", exc)
                self.mark_down()
            except VerifierFailure:
                pass
            else:
                if not was_ready:
                    log.info("verifier %s is up", self.name)

    async def close(self) -> None:
        await cancel_and_wait(self._probe_task)
        self._probe_task = None
        await self.channel.close()


def _first_clause(details: str | None) -> str:
    text = (details or "").strip().splitlines()[0] if details else ""
    return text[:300]


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
                                  f"{self.round_timeout_s:.1f}s", silent=True) from None
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
            what = f"verifier {self.ep.name}: {code.name} {exc.details() or ''}".strip()
            if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
                raise VerifierBusy(what) from None
            if code in DOWN or code in SESSION_LOST:
                raise VerifierFailure(what, down=code in DOWN) from None
            raise VerifierRefused(f"verifier {self.ep.name} refused: {exc.details()}") from None
        except (grpc.aio.UsageError, grpc.RpcError, asyncio.InvalidStateError) as exc:
            raise VerifierFailure(f"verifier {self.ep.name}: connection lost "
                                  f"({type(exc).__name__})") from None
        if reply is grpc.aio.EOF:
            raise VerifierFailure(f"verifier {self.ep.name} closed the session")
        return reply, time.perf_counter() - t0

    async def open(self, prompt_ids, params: SamplingParams, max_new_tokens, fingerprint,
                   on_sent: Callable[[], None] | None = None, vocab_size: int = 0) -> Reply:
        """Open the session: send the prompt, return the target's first token. `on_sent` is
        called once the prompt is on the wire (the edge starts its draft prefill then, so
        that on a CPU shared by both the prompt leaves first)."""
        sp = pb.SamplingParams(temperature=params.temperature, top_p=params.top_p,
                               top_k=params.top_k, has_seed=params.seed is not None,
                               seed=(params.seed or 0) & 0xFFFF_FFFF_FFFF_FFFF)
        msg = pb.EdgeMessage(open=pb.Open(
            protocol_version=protocol.PROTOCOL_VERSION, request_id=self.request_id,
            prompt_ids=list(prompt_ids), sampling=sp, max_new_tokens=max_new_tokens,
            tokenizer_fingerprint=fingerprint, vocab_size=vocab_size))
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

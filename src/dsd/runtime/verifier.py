"""The cloud verifier: a gRPC server in front of `VerifierCore`.

Serves `Hello` (version + tokenizer handshake), one bidirectional `Session` stream per
request, and the standard gRPC health service (`grpc.health.v1.Health`, open without the
token) that edges and load balancers probe. Every reply carries the current load. Optional
TLS, optional bearer token, message size limits from `protocol`.

Bounds per session: messages are validated before the model; a session idle (no message
from its edge) for `idle_timeout_s` is closed; one peer (connection) holds at most
`max_sessions_per_peer` sessions; a session refused at the context limit gets OUT_OF_RANGE.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import Counter
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio

from dsd.errors import DsdError
from dsd.runtime import protocol
from dsd.runtime.backends.compat import VocabMismatch, check_pair
from dsd.runtime.proto import dsd_pb2 as pb
from dsd.runtime.scheduler import (
    CapacityError,
    ContextLimitError,
    Load,
    SessionClosed,
    SessionFailed,
    VerifierCore,
)
from dsd.runtime.speculative import SamplingParams, SparseDist

log = logging.getLogger("dsd.runtime.verifier")


def load_pb(load: Load) -> pb.LoadReport:
    return pb.LoadReport(
        queue_depth=load.queue_depth,
        running=load.running,
        outstanding_tokens=load.outstanding_tokens,
        capacity=load.capacity,
        batch_occupancy=load.batch_occupancy,
        remaining_tokens=load.remaining_tokens,
        est_step_s=load.est_step_s,
    )


def params_from_pb(s: pb.SamplingParams) -> SamplingParams:
    return SamplingParams(
        temperature=float(s.temperature),
        top_p=float(s.top_p) if s.top_p > 0 else 1.0,
        top_k=int(s.top_k),
        seed=int(s.seed) if s.has_seed else None,
    )


def proposals_from_pb(v: pb.Verify, vocab_size: int) -> list[SparseDist] | None:
    """The proposals as tensors, or None if their values are malformed. Checked on the
    tensors: a Python loop over every id and probability cost more than the conversion."""
    import torch

    out = [SparseDist(torch.tensor(list(q.ids), dtype=torch.int64),
                      torch.tensor(list(q.probs), dtype=torch.float32)) for q in v.proposals]
    if out:
        ids = torch.cat([d.ids for d in out])
        probs = torch.cat([d.probs for d in out])
        if (int(ids.max()) >= vocab_size or not bool(torch.isfinite(probs).all())
                or bool((probs < 0).any())):
            return None
    return out


@dataclass
class Fault:
    """Test hook: after `after` verify rounds (server-wide), `hang` or `abort`."""

    mode: str  # "hang" | "abort"
    after: int = 0


class VerifierService:
    def __init__(self, core: VerifierCore, verifier_id: str | None = None,
                 idle_timeout_s: float = 30.0, max_sessions_per_peer: int | None = None) -> None:
        self.core = core
        self.backend = core.backend
        self.verifier_id = verifier_id or uuid.uuid4().hex[:8]
        self.idle_timeout_s = idle_timeout_s
        # Sessions (open or queued) per peer connection; an edge keeps one connection.
        self.max_sessions_per_peer = max_sessions_per_peer or (
            core.max_sessions + core.admission.max_waiting)
        self.per_peer: Counter[str] = Counter()
        self.health = health_aio.HealthServicer()
        self.fault: Fault | None = None
        self._verifies = 0

    async def hello(self, request: pb.HelloRequest, context) -> pb.HelloReply:
        if request.protocol_version != protocol.PROTOCOL_VERSION:
            self.core.metrics.errors.labels(code="version").inc()
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"protocol version {request.protocol_version} not supported "
                f"(verifier speaks {protocol.PROTOCOL_VERSION})",
            )
        reason = self.pairing_refusal(request.tokenizer_fingerprint, request.vocab_size)
        if reason:
            self.core.metrics.errors.labels(code="vocab").inc()
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, reason)
        return pb.HelloReply(
            protocol_version=protocol.PROTOCOL_VERSION,
            verifier_id=self.verifier_id,
            target_model=self.backend.name,
            tokenizer_fingerprint=self.backend.fingerprint,
            vocab_size=self.backend.vocab_size,
            max_gamma=protocol.MAX_GAMMA,
            max_context=self.core.max_context,
            load=load_pb(self.core.load()),
        )

    def pairing_refusal(self, fingerprint: str, vocab_size: int) -> str | None:
        """One line if a draft with this tokenizer and vocabulary cannot speculate for the
        target (compat.check_vocab_pair: sizes within 128, same token texts), else None."""
        target = self.backend
        if not vocab_size:  # an edge without a draft model (cloud-only): tokenizer only
            if fingerprint and fingerprint != target.fingerprint:
                return (f"tokenizer mismatch: edge tokenizer {fingerprint[:12]} != target "
                        f"tokenizer {target.fingerprint[:12]} of {target.name}")
            return None
        try:
            check_pair(vocab_size, fingerprint, target.vocab_size, target.fingerprint)
        except VocabMismatch as exc:
            return f"draft cannot pair with target {target.name}: {exc}"
        return None

    def _open_pairing(self, msg: pb.Open) -> str | None:
        return self.pairing_refusal(msg.tokenizer_fingerprint, msg.vocab_size)

    async def _refuse(self, context, code: grpc.StatusCode, reason: str):
        self.core.metrics.errors.labels(code=code.name.lower()).inc()
        await context.abort(code, reason)

    async def _maybe_fault(self, context) -> None:
        self._verifies += 1
        if self.fault is None or self._verifies <= self.fault.after:
            return
        if self.fault.mode == "hang":
            await asyncio.Event().wait()  # until the edge's deadline cancels the call
        await context.abort(grpc.StatusCode.UNAVAILABLE, "verifier failure (injected)")

    async def _next(self, messages, context):
        """The edge's next message, or None when it closed the stream. A session idle for
        `idle_timeout_s` (a stopped or vanished edge) is closed with DEADLINE_EXCEEDED."""
        try:
            async with asyncio.timeout(self.idle_timeout_s):
                return await anext(messages)
        except StopAsyncIteration:
            return None
        except TimeoutError:
            self.core.metrics.idle_timeouts.inc()
            await self._refuse(context, grpc.StatusCode.DEADLINE_EXCEEDED,
                               f"session idle for more than {self.idle_timeout_s:g}s")

    async def session(self, request_iterator, context):
        key = None
        params: SamplingParams | None = None
        peer = context.peer() or "?"
        counted = False
        vocab = self.backend.vocab_size  # ids at or past it are refused (the pair's shared size)
        messages = aiter(request_iterator)
        try:
            while (msg := await self._next(messages, context)) is not None:
                kind = msg.WhichOneof("kind")
                t0 = time.perf_counter()
                if kind == "open":
                    if key is not None:
                        await self._refuse(context, grpc.StatusCode.INVALID_ARGUMENT,
                                           "session already open")
                    vocab = min(msg.open.vocab_size or self.backend.vocab_size,
                                self.backend.vocab_size)
                    reason = (protocol.check_open(msg.open, self.backend.fingerprint,
                                                  self.core.max_context, vocab)
                              or self._open_pairing(msg.open))
                    if reason:
                        code = (grpc.StatusCode.FAILED_PRECONDITION
                                if any(w in reason for w in ("tokenizer", "protocol", "pair"))
                                else grpc.StatusCode.INVALID_ARGUMENT)
                        await self._refuse(context, code, reason)
                    if self.per_peer[peer] >= self.max_sessions_per_peer:
                        await self._refuse(context, grpc.StatusCode.RESOURCE_EXHAUSTED,
                                           f"peer holds {self.per_peer[peer]} sessions (limit "
                                           f"{self.max_sessions_per_peer} per connection)")
                    self.per_peer[peer] += 1
                    counted = True
                    params = params_from_pb(msg.open.sampling)
                    left = context.time_remaining()
                    try:
                        key, first = await self.core.open(
                            msg.open.request_id, list(msg.open.prompt_ids), params,
                            queue_timeout_s=None if left is None else min(
                                left, self.core.queue_timeout_s),
                            max_new_tokens=msg.open.max_new_tokens, vocab_limit=vocab)
                    except CapacityError as exc:
                        await self._refuse(context, grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
                    except SessionFailed as exc:
                        await self._refuse(context, grpc.StatusCode.ABORTED, str(exc))
                    yield pb.VerifierMessage(opened=pb.Opened(
                        first_token=first,
                        context_len=len(msg.open.prompt_ids),
                        load=load_pb(self.core.load()),
                        server_time_s=time.perf_counter() - t0,
                    ))
                elif kind == "verify":
                    if key is None:
                        await self._refuse(context, grpc.StatusCode.FAILED_PRECONDITION,
                                           "verify before open")
                    v = msg.verify
                    reason = protocol.check_verify(v, params.greedy, vocab)
                    if reason:
                        await self._refuse(context, grpc.StatusCode.INVALID_ARGUMENT, reason)
                    await self._maybe_fault(context)
                    proposals = None
                    if not params.greedy:
                        proposals = proposals_from_pb(v, vocab)
                        if proposals is None:
                            await self._refuse(context, grpc.StatusCode.INVALID_ARGUMENT,
                                               "malformed proposal distribution (ids out of "
                                               "the vocabulary, or probabilities negative "
                                               "or not finite)")
                    try:
                        out = await self.core.verify(key, list(v.draft_ids), proposals)
                    except ContextLimitError as exc:
                        await self._refuse(context, grpc.StatusCode.OUT_OF_RANGE, str(exc))
                    except (SessionClosed, SessionFailed) as exc:
                        await self._refuse(context, grpc.StatusCode.ABORTED, str(exc))
                    yield pb.VerifierMessage(verdict=pb.Verdict(
                        round=v.round,
                        accepted=out.accepted,
                        next_token=out.next_token,
                        load=load_pb(self.core.load()),
                        server_time_s=time.perf_counter() - t0,
                        batch_size=out.batch_size,
                    ))
                elif kind == "close":
                    break
                else:  # an empty message (no field of the oneof set)
                    await self._refuse(context, grpc.StatusCode.INVALID_ARGUMENT,
                                       "empty message: expected open, verify or close")
        finally:
            if key is not None:
                self.core.close(key)
            if counted:
                self.per_peer[peer] -= 1
                if self.per_peer[peer] <= 0:
                    del self.per_peer[peer]


async def start_verifier_server(
    service: VerifierService,
    host: str = "127.0.0.1",
    port: int = 0,
    token: str | None = None,
    tls: protocol.TlsConfig | None = None,
) -> tuple[grpc.aio.Server, int]:
    """Start the gRPC server (and the core's scheduler). Returns (server, bound port)."""
    interceptors = [protocol.BearerAuthInterceptor(token)] if token else []
    server = grpc.aio.server(interceptors=interceptors, options=protocol.server_options())
    server.add_generic_rpc_handlers((protocol.generic_handler(service.hello, service.session),))
    health_pb2_grpc.add_HealthServicer_to_server(service.health, server)
    addr = f"{host}:{port}"
    try:
        if tls is not None and (tls.cert or tls.key):
            bound = server.add_secure_port(addr, tls.server_credentials())
        else:
            bound = server.add_insecure_port(addr)
    except RuntimeError:  # grpcio raises on a port it cannot bind (in use, bad address)
        bound = 0
    if not bound:
        raise DsdError(f"cannot listen on {addr}: address in use or not available "
                       "(choose another --port)")
    await service.core.start()
    await server.start()
    await service.health.set(protocol.SERVICE, health_pb2.HealthCheckResponse.SERVING)
    log.info("verifier %s serving %s on %s:%d", service.verifier_id, service.backend.name,
             host, bound)
    return server, bound


async def start_metrics_server(registry, host: str, port: int, token: str | None = None):
    """Prometheus /metrics over HTTP on the service's host, behind the same bearer token as
    the gRPC service. Returns the HttpServer."""
    from prometheus_client import make_asgi_app

    from dsd.runtime.http_guard import RequestGuard
    from dsd.runtime.http_server import HttpLimits, start_http

    app = RequestGuard(make_asgi_app(registry), api_key=token, max_body_bytes=0)
    try:
        return await start_http(app, host, port, HttpLimits(max_connections=64))
    except DsdError as exc:
        raise DsdError(f"metrics server: {exc} (choose another --metrics-port, 0 = off)"
                       ) from None

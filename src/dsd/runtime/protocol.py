"""Edge <-> verifier wire protocol: version, limits, auth, TLS, gRPC bindings, conversions.

The messages are defined in `proto/dsd.proto` (generated `proto/dsd_pb2.py`). The service
bindings are written here with grpc's generic handlers instead of generated `_grpc` stubs,
so the runtime works with any grpcio >= 1.60 rather than only the grpcio-tools release
that generated them.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from pathlib import Path

import grpc

from dsd.errors import DsdError
from dsd.runtime.proto import dsd_pb2 as pb

PROTOCOL_VERSION = 1
SERVICE = "dsd.v1.Verifier"
HELLO_METHOD = f"/{SERVICE}/Hello"
SESSION_METHOD = f"/{SERVICE}/Session"

MAX_MESSAGE_BYTES = 8 * 1024 * 1024  # a 32k-token prompt or gamma=32 x 256-token proposals fit
MAX_GAMMA = 32
MAX_PROPOSAL_SUPPORT = 4096
MAX_PROMPT_TOKENS = 131_072
AUTH_HEADER = "authorization"
HEALTH_SERVICE_PREFIX = "/grpc.health.v1.Health/"  # open: it tells only whether we serve


def channel_options() -> list[tuple[str, int]]:
    return [
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.keepalive_time_ms", 20_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
    ]


def edge_channel_options() -> list[tuple[str, int]]:
    """The edge's channel: reconnect quickly (gRPC's default backoff grows to 120 s, so a
    restarted verifier would sit unused for many seconds)."""
    return channel_options() + [
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.min_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 300),
    ]


def server_options() -> list[tuple[str, int]]:
    # so_reuseport 0: a second verifier on a busy port must fail, not share it silently.
    return channel_options() + [("grpc.http2.min_ping_interval_without_data_ms", 5_000),
                                ("grpc.so_reuseport", 0)]


@dataclass(slots=True)
class TlsConfig:
    cert: str | None = None  # server: certificate chain (PEM); edge: unused
    key: str | None = None  # server: private key (PEM)
    ca: str | None = None  # edge: CA bundle to trust (PEM); None = system roots

    @staticmethod
    def _read(path: str | None) -> bytes | None:
        if path is None:
            return None
        p = Path(path).expanduser()
        if not p.is_file():
            raise DsdError(f"TLS file {p} does not exist")
        return p.read_bytes()

    def server_credentials(self) -> grpc.ServerCredentials:
        if not (self.cert and self.key):
            raise DsdError("TLS on the verifier needs both --tls-cert and --tls-key")
        return grpc.ssl_server_credentials([(self._read(self.key), self._read(self.cert))])

    def channel_credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(root_certificates=self._read(self.ca))


class BearerAuthInterceptor(grpc.aio.ServerInterceptor):
    """Rejects calls whose `authorization: Bearer <token>` metadata does not match."""

    def __init__(self, token: str) -> None:
        self._expected = f"Bearer {token}".encode()

        async def deny(request, context):  # noqa: ARG001
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")

        self._deny_unary = grpc.unary_unary_rpc_method_handler(deny)

        async def deny_stream(request_iterator, context):  # noqa: ARG001
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")
            yield  # pragma: no cover

        self._deny_stream = grpc.stream_stream_rpc_method_handler(deny_stream)

    async def intercept_service(self, continuation, handler_call_details):
        md = dict(handler_call_details.invocation_metadata or ())
        got = md.get(AUTH_HEADER, "")
        got = got.encode() if isinstance(got, str) else got
        if hmac.compare_digest(got, self._expected) or handler_call_details.method.startswith(
                HEALTH_SERVICE_PREFIX):
            return await continuation(handler_call_details)
        if handler_call_details.method == SESSION_METHOD:
            return self._deny_stream
        return self._deny_unary


def auth_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    return ((AUTH_HEADER, f"Bearer {token}"),) if token else ()


def generic_handler(hello, session) -> grpc.GenericRpcHandler:
    """Bind the async `hello(request, context)` and `session(request_iter, context)`."""
    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Hello": grpc.unary_unary_rpc_method_handler(
                hello,
                request_deserializer=pb.HelloRequest.FromString,
                response_serializer=pb.HelloReply.SerializeToString,
            ),
            "Session": grpc.stream_stream_rpc_method_handler(
                session,
                request_deserializer=pb.EdgeMessage.FromString,
                response_serializer=pb.VerifierMessage.SerializeToString,
            ),
        },
    )


class VerifierStub:
    """Client-side callables for the two RPCs on a grpc.aio channel."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.hello = channel.unary_unary(
            HELLO_METHOD,
            request_serializer=pb.HelloRequest.SerializeToString,
            response_deserializer=pb.HelloReply.FromString,
        )
        self.session = channel.stream_stream(
            SESSION_METHOD,
            request_serializer=pb.EdgeMessage.SerializeToString,
            response_deserializer=pb.VerifierMessage.FromString,
        )


def parse_address(addr: str) -> tuple[str, int]:
    host, sep, port = addr.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise DsdError(f"bad verifier address {addr!r}: expected HOST:PORT")
    return host.strip("[]"), int(port)


def check_open(msg: pb.Open, fingerprint: str, max_context: int, vocab_size: int) -> str | None:
    """Validate an Open message; returns a one-line reason if it must be refused. Runs
    before the model: an out-of-range id can be a device assert that kills a CUDA process."""
    if msg.protocol_version != PROTOCOL_VERSION:
        return (f"protocol version {msg.protocol_version} not supported "
                f"(verifier speaks {PROTOCOL_VERSION})")
    if msg.tokenizer_fingerprint and msg.tokenizer_fingerprint != fingerprint:
        return "tokenizer mismatch: the draft and target models must share a tokenizer"
    if not msg.prompt_ids:
        return "empty prompt"
    if len(msg.prompt_ids) > min(MAX_PROMPT_TOKENS, max_context):
        return f"prompt of {len(msg.prompt_ids)} tokens exceeds the context limit {max_context}"
    if max(msg.prompt_ids) >= vocab_size:
        bad = next(i for i, t in enumerate(msg.prompt_ids) if t >= vocab_size)
        return (f"prompt token id {msg.prompt_ids[bad]} at position {bad} is out of the "
                f"vocabulary (size {vocab_size})")
    s = msg.sampling
    if not (0.0 <= s.temperature <= 100.0) or not (0.0 < s.top_p <= 1.0):
        return "bad sampling parameters"
    return None


def check_verify(msg: pb.Verify, greedy: bool, vocab_size: int) -> str | None:
    """Validate a Verify message; returns a one-line reason if it must be refused."""
    gamma = len(msg.draft_ids)
    if gamma > MAX_GAMMA:
        return f"gamma {gamma} exceeds the limit {MAX_GAMMA}"
    if msg.draft_ids and max(msg.draft_ids) >= vocab_size:
        return f"draft token id out of the vocabulary (size {vocab_size})"
    if greedy:
        return None
    if len(msg.proposals) != gamma:
        return f"sampling needs one proposal per draft token ({len(msg.proposals)} != {gamma})"
    for q in msg.proposals:  # shapes only; the values are checked on tensors by the verifier
        if not q.ids or len(q.ids) != len(q.probs) or len(q.ids) > MAX_PROPOSAL_SUPPORT:
            return "malformed proposal distribution"
    return None

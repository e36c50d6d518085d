"""Hostile and unlucky clients for the runtime hardening tests: short, bounded, 127.0.0.1 only.

HTTP: streams that hang up, slow-loris connections, idle connections, chunked bodies.
gRPC: rogue verifier sessions (out-of-vocabulary ids, a 10-byte varint for -1, bad gamma,
malformed proposals, messages out of order, empty messages).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import select
import selectors
import socket
import time

HOST = "127.0.0.1"


# ---- HTTP ----------------------------------------------------------------------------------


async def stream_completion(client, body: dict, path: str = "/v1/completions") -> dict:
    """One streaming request read to the end: {'status', 'events', 'done', 'error', 'final',
    'text', 'headers'}. Never raises for HTTP-level outcomes."""
    out = {"status": None, "events": [], "done": False, "error": None, "final": None,
           "text": "", "headers": {}}
    async with client.stream("POST", path, json={**body, "stream": True}) as r:
        out["status"], out["headers"] = r.status_code, dict(r.headers)
        if r.status_code != 200:
            out["error"] = json.loads(await r.aread())["error"]
            return out
        async for line in r.aiter_lines():
            if not line.startswith("data: "):
                continue
            data = line[6:]
            out["events"].append(data)
            if data == "[DONE]":
                out["done"] = True
                continue
            obj = json.loads(data)
            if "error" in obj:
                out["error"] = obj["error"]
                continue
            ch = obj["choices"][0]
            out["text"] += ch.get("text") or (ch.get("delta") or {}).get("content") or ""
            if ch.get("finish_reason"):
                out["final"] = obj
    return out


async def hang_up(client, body: dict, after_s: float) -> None:
    """Start a streaming request and drop the connection after `after_s` seconds."""
    with contextlib.suppress(TimeoutError, Exception):
        async with asyncio.timeout(after_s):
            async with client.stream("POST", "/v1/completions",
                                     json={**body, "stream": True}) as r:
                async for _ in r.aiter_bytes():
                    pass


def slowloris(port: int, n: int) -> list[socket.socket]:
    """n connections that send a partial request head and then nothing."""
    socks = []
    for i in range(n):
        s = socket.create_connection((HOST, port), timeout=10)
        s.sendall(f"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow-{i}: ".encode())
        socks.append(s)
    return socks


def idle_connections(port: int, n: int) -> list[socket.socket]:
    """n connections that never send a byte."""
    return [socket.create_connection((HOST, port), timeout=10) for _ in range(n)]


def count_closed(socks: list[socket.socket], wait_s: float, enough: int | None = None) -> int:
    """How many of `socks` the server closed (EOF or reset) within `wait_s` seconds (or
    until `enough` of them are)."""
    enough = len(socks) if enough is None else enough
    closed = 0
    with selectors.DefaultSelector() as sel:  # epoll: no 1024-descriptor ceiling
        for s in socks:
            sel.register(s, selectors.EVENT_READ)
        deadline = time.monotonic() + wait_s
        while closed < enough and (left := deadline - time.monotonic()) > 0:
            for key, _ in sel.select(min(left, 0.1)):
                try:
                    data = key.fileobj.recv(4096)
                except OSError:
                    data = b""
                if not data:
                    closed += 1
                    sel.unregister(key.fileobj)
    return closed


def close_all(socks: list[socket.socket]) -> None:
    for s in socks:
        with contextlib.suppress(OSError):
            s.close()


def http_get(port: int, path: str = "/health", timeout: float = 10.0) -> tuple[int, float]:
    """A plain HTTP/1.1 GET on a fresh connection: (status, seconds)."""
    t0 = time.perf_counter()
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        head = s.recv(64)
    return int(head.split()[1]), time.perf_counter() - t0


def chunked_post(port: int, total_bytes: int, chunk_bytes: int = 1 << 16,
                 path: str = "/v1/completions") -> int:
    """POST a chunked JSON-ish body of `total_bytes` without Content-Length; returns the
    HTTP status the server answered (the server may stop reading early)."""
    with socket.create_connection((HOST, port), timeout=30) as s:
        s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  "Transfer-Encoding: chunked\r\n\r\n".encode())
        piece = b"[" + b"1," * (chunk_bytes // 2 - 1) + b"1"
        sent = 0
        with contextlib.suppress(OSError):
            while sent < total_bytes:
                s.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                sent += len(piece)
                if select.select([s], [], [], 0)[0]:
                    break  # the server answered already
            s.sendall(b"0\r\n\r\n")
        head = b""
        with contextlib.suppress(OSError):
            while b"\r\n" not in head:
                data = s.recv(1024)
                if not data:
                    break
                head += data
    return int(head.split()[1]) if head else 0


# ---- gRPC ----------------------------------------------------------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(num: int, wire: int, payload: bytes) -> bytes:
    key = _varint(num << 3 | wire)
    return key + (_varint(len(payload)) + payload if wire == 2 else payload)


def open_with_minus_one() -> bytes:
    """An EdgeMessage{open} whose prompt holds -1 as a 10-byte varint (int64 encoding sent
    into a uint32 field: parsers truncate it to 4294967295)."""
    ids = _varint(5) + (b"\xff" * 9 + b"\x01") + _varint(7)
    sampling = _field(2, 5, b"\x00\x00\x80\x3f")  # top_p = 1.0 (fixed32 float)
    open_msg = _field(1, 0, _varint(1)) + _field(3, 2, ids) + _field(4, 2, sampling)
    return _field(1, 2, open_msg)


async def cancel_mid_verify(port: int, vocab: int, rng: random.Random) -> None:
    """What an edge does when its client hangs up: open a session, send a verify, and
    cancel the stream while the verifier is (likely) running that verify."""
    import grpc

    from dsd.runtime import protocol
    from dsd.runtime.proto import dsd_pb2 as pb

    async with grpc.aio.insecure_channel(f"{HOST}:{port}") as ch:
        call = protocol.VerifierStub(ch).session(timeout=20)
        prompt = [rng.randrange(vocab - 3) for _ in range(rng.randint(4, 24))]
        with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError):
            await call.write(pb.EdgeMessage(open=pb.Open(
                protocol_version=1, prompt_ids=prompt,
                sampling=pb.SamplingParams(temperature=0.0, top_p=1.0))))
            await call.read()
            for _ in range(rng.randint(1, 3)):
                draft = [rng.randrange(vocab - 3) for _ in range(4)]
                await call.write(pb.EdgeMessage(verify=pb.Verify(round=1, draft_ids=draft)))
                await call.read()
            await call.write(pb.EdgeMessage(verify=pb.Verify(round=2, draft_ids=[1, 2, 3])))
            await asyncio.sleep(rng.uniform(0.0, 0.004))
        call.cancel()


ROGUE_KINDS = ("oov_prompt", "minus_one", "oov_draft", "big_gamma", "verify_first",
               "double_open", "empty", "bad_proposal", "nan_proposal", "oov_proposal",
               "bad_sampling", "open_and_leave")


async def rogue_session(port: int, kind: str, vocab: int, rng: random.Random,
                        token: str | None = None) -> str:
    """One rogue session of `kind` on its own stream; returns the status it ended with."""
    import grpc

    from dsd.runtime import protocol
    from dsd.runtime.proto import dsd_pb2 as pb

    md = protocol.auth_metadata(token)
    async with grpc.aio.insecure_channel(f"{HOST}:{port}") as ch:
        raw = ch.stream_stream(protocol.SESSION_METHOD, request_serializer=lambda b: b,
                               response_deserializer=pb.VerifierMessage.FromString)
        call = raw(timeout=20, metadata=md)
        prompt = [rng.randrange(vocab) for _ in range(rng.randint(1, 40))]
        greedy = pb.SamplingParams(temperature=0.0, top_p=1.0)
        sampled = pb.SamplingParams(temperature=1.0, top_p=1.0)

        def open_msg(ids, sp=greedy):
            return pb.EdgeMessage(open=pb.Open(protocol_version=1, prompt_ids=ids,
                                               sampling=sp)).SerializeToString()

        def verify_msg(ids, proposals=()):
            return pb.EdgeMessage(verify=pb.Verify(round=1, draft_ids=ids,
                                                   proposals=list(proposals))
                                  ).SerializeToString()

        script = {
            "oov_prompt": [open_msg(prompt + [vocab + rng.randrange(1 << 20)])],
            "minus_one": [open_with_minus_one()],
            "oov_draft": [open_msg(prompt), verify_msg([vocab + 5])],
            "big_gamma": [open_msg(prompt), verify_msg([1] * (protocol.MAX_GAMMA + 1))],
            "verify_first": [verify_msg([1, 2])],
            "double_open": [open_msg(prompt), open_msg(prompt)],
            "empty": [pb.EdgeMessage().SerializeToString()],
            "bad_proposal": [open_msg(prompt, sampled),
                             verify_msg([3], [pb.SparseDist(ids=[3, 4], probs=[1.0])])],
            "nan_proposal": [open_msg(prompt, sampled),
                             verify_msg([3], [pb.SparseDist(ids=[3], probs=[float("nan")])])],
            "oov_proposal": [open_msg(prompt, sampled),
                             verify_msg([3], [pb.SparseDist(ids=[3, vocab], probs=[0.5, 0.5])])],
            "bad_sampling": [open_msg(prompt, pb.SamplingParams(temperature=-1.0, top_p=2.0))],
            "open_and_leave": [open_msg(prompt)],
        }[kind]
        try:
            for msg in script:
                await call.write(msg)
                reply = await call.read()
                if reply is grpc.aio.EOF:
                    break
            if kind == "open_and_leave":
                call.cancel()
                return "CANCELLED"
            await call.done_writing()
            await call.read()
            return (await call.code()).name
        except grpc.aio.AioRpcError as exc:
            return exc.code().name

"""`dsd serve verifier|edge|fused|cloud|proxy`: the real distributed runtime."""

from __future__ import annotations

import argparse
import asyncio
import os

from dsd.cli.secrets import read_secret, secret_args


def _model_args(p: argparse.ArgumentParser, flag: str, dest: str, gguf_dest: str) -> None:
    p.add_argument(flag, dest=dest, required=True, metavar="PATH",
                   help="local model directory or .gguf file")
    p.add_argument(f"{flag}-gguf-file" if flag != "--model" else "--gguf-file", dest=gguf_dest,
                   metavar="F", help="GGUF file name inside PATH")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", default="auto", choices=("auto", "hf", "llamacpp"),
                   help="inference engine: auto picks by file type (.gguf -> llama.cpp, a "
                        "model directory -> HF transformers)")
    p.add_argument("--device", default="auto", help="HF: auto | cpu | cuda[:N] (default auto)")
    p.add_argument("--dtype", default="auto", help="HF: auto (fp32 on CPU, bf16 on CUDA) | "
                   "fp32 | bf16 | fp16")
    p.add_argument("--kv-tokens", type=int, default=16384,
                   help="llama.cpp: KV cells shared by all sessions (default 16384); sessions "
                        "beyond it wait")
    p.add_argument("--threads", type=int, default=None,
                   help="llama.cpp: CPU threads (default: every CPU this process may use)")
    p.add_argument("--ubatch", default="auto", type=_ubatch,
                   help="llama.cpp: tokens computed together (default auto: 1 for quantized "
                        "GGUFs, whose logits otherwise depend on the micro-batch, so output "
                        "equals plain llama.cpp decoding; the whole batch for float weights)")
    p.add_argument("--log-level", default="info")
    p.add_argument("--plain-logs", action="store_true", help="text logs instead of JSON lines")


def _ubatch(text: str):
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a positive integer, got {text!r}")
    return value


def _batch_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-batch", type=int, default=32, help="max sessions per verify forward")
    p.add_argument("--prefill-chunk", type=int, default=256,
                   help="prompt tokens prefilled per step, mixed into the verifies (default "
                        "256): a long prompt does not stall running sessions")
    p.add_argument("--batcher", default="fifo", help="batcher policy name (dsd.policies.BATCHERS)")
    p.add_argument("--max-wait-ms", type=float, default=0.0,
                   help="wait up to this long to fill a batch (default 0)")


def _edge_args(p: argparse.ArgumentParser, port: int = 8000) -> None:
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=port)
    p.add_argument("--served-model-name", default=None)
    p.add_argument("--max-tokens-limit", type=int, default=4096)
    p.add_argument("--round-timeout-s", type=float, default=30.0,
                   help="deadline for each verifier reply (then retry elsewhere)")
    p.add_argument("--request-timeout-s", type=float, default=600.0)
    p.add_argument("--max-support", type=int, default=256,
                   help="max tokens in a sampled draft proposal sent to the verifier")
    p.add_argument("--max-running", type=int, default=256,
                   help="requests served at once; more wait in the queue (default 256)")
    p.add_argument("--max-queue", type=int, default=1024,
                   help="requests waiting beyond --max-running; more get 429 (default 1024)")
    p.add_argument("--queue-timeout-s", type=float, default=300.0,
                   help="longest wait in the queue, then 429 (default 300; a client that "
                        "leaves the queue is dropped at once)")
    p.add_argument("--max-connections", type=int, default=4096,
                   help="open HTTP connections; over it the oldest idle one is closed "
                        "(clamped below the file-descriptor limit; default 4096)")
    p.add_argument("--header-timeout-s", type=float, default=10.0,
                   help="time a client has to send a request's headers (default 10)")
    p.add_argument("--body-timeout-s", type=float, default=30.0,
                   help="time a client has to send a request's body (default 30)")
    secret_args(p, "--api-key", "DSD_API_KEY",
                 "API key required as 'Authorization: Bearer KEY' on /v1/*, /metrics, /docs")


def _window_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--window", default="static",
                   help="window policy name (dsd.policies.WINDOWS): static | dynamic | ...")
    p.add_argument("--gamma", type=int, default=None, help="gamma for --window static (4)")


def register(sub) -> None:
    p = sub.add_parser("serve", help="run the runtime: verifier, edge, fused, cloud, proxy")
    modes = p.add_subparsers(dest="serve_mode", metavar="MODE")

    v = modes.add_parser("verifier", help="cloud verifier (target model, gRPC)")
    _model_args(v, "--model", "model", "gguf_file")
    v.add_argument("--host", default="127.0.0.1")
    v.add_argument("--port", type=int, default=50051)
    _batch_args(v)
    v.add_argument("--max-sessions", type=int, default=256,
                   help="open sessions (KV caches); more wait in the queue (default 256)")
    v.add_argument("--max-queue", type=int, default=1024,
                   help="sessions waiting beyond --max-sessions; more are refused (default 1024)")
    v.add_argument("--queue-timeout-s", type=float, default=300.0,
                   help="longest wait for a session slot (default 300)")
    v.add_argument("--session-idle-timeout-s", type=float, default=30.0,
                   help="close a session whose edge sent nothing for this long (default 30)")
    v.add_argument("--max-sessions-per-peer", type=int, default=None,
                   help="sessions (open or queued) one connection may hold (default: no "
                        "limit below --max-sessions + --max-queue)")
    v.add_argument("--metrics-port", type=int, default=9400,
                   help="Prometheus /metrics HTTP port on --host, token-protected (0 = off)")
    secret_args(v, "--token", "DSD_TOKEN", "bearer token required on gRPC and /metrics")
    v.add_argument("--tls-cert", default=None)
    v.add_argument("--tls-key", default=None)
    _common(v)
    v.set_defaults(handler=_verifier)

    e = modes.add_parser("edge", help="edge drafter + OpenAI-compatible API")
    _model_args(e, "--draft-model", "draft_model", "draft_gguf_file")
    e.add_argument("--verifier", required=True, help="HOST:PORT[,HOST:PORT...]")
    _edge_args(e)
    _window_args(e)
    e.add_argument("--router", default="jsq", help="router policy name (dsd.policies.ROUTERS)")
    e.add_argument("--emulate-rtt-ms", type=float, default=0.0,
                   help="add this round-trip delay on the edge's link (user space)")
    e.add_argument("--emulate-jitter-ms", type=float, default=0.0)
    secret_args(e, "--token", "DSD_TOKEN", "bearer token sent to the verifiers")
    e.add_argument("--tls", action="store_true", help="connect to verifiers with TLS")
    e.add_argument("--tls-ca", default=None, help="CA bundle for --tls (default system roots)")
    _common(e)
    e.set_defaults(handler=_edge)

    f = modes.add_parser("fused", help="draft + target in one process, OpenAI API")
    _model_args(f, "--model", "model", "gguf_file")
    _model_args(f, "--draft-model", "draft_model", "draft_gguf_file")
    _edge_args(f)
    _window_args(f)
    _batch_args(f)
    _common(f)
    f.set_defaults(handler=_fused)

    c = modes.add_parser("cloud", help="target only (no speculation), OpenAI API")
    _model_args(c, "--model", "model", "gguf_file")
    _edge_args(c)
    _batch_args(c)
    _common(c)
    c.set_defaults(handler=_cloud)

    x = modes.add_parser("proxy", help="TCP delay proxy between edge and verifier")
    x.add_argument("--listen", default="127.0.0.1:50052", help="HOST:PORT to listen on")
    x.add_argument("--upstream", required=True, help="HOST:PORT of the verifier")
    x.add_argument("--delay-ms", type=float, default=5.0, help="one-way delay")
    x.add_argument("--jitter-ms", type=float, default=0.0, help="uniform +- jitter per chunk")
    x.add_argument("--bandwidth-mbps", type=float, default=0.0, help="0 = unlimited")
    x.add_argument("--log-level", default="info")
    x.add_argument("--plain-logs", action="store_true")
    x.set_defaults(handler=_proxy)
    p.set_defaults(handler=lambda args: (p.print_help(), 2)[1])


def _setup(args) -> None:
    from dsd.runtime.logs import setup_logging

    # gRPC's core logs each failed handshake at INFO straight to stderr, unthrottled (a
    # client with the wrong TLS setting would add a line per attempt); keep its errors only.
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

    setup_logging(args.log_level, json_logs=not args.plain_logs)


def _load(args, path, gguf, sessions: int):
    """Load a model on the engine `--backend` picks; `sessions` sizes llama.cpp's slots."""
    from pathlib import Path

    from dsd.runtime.backends import load_backend, resolve_backend

    path = Path(path).expanduser() / gguf if gguf else path
    kind = resolve_backend(path, args.backend)
    if kind == "llamacpp":
        from dsd.runtime.backends.llamacpp import MAX_SEQUENCES

        return load_backend(path, kind, kv_tokens=args.kv_tokens, n_threads=args.threads,
                            max_sessions=max(1, min(sessions, MAX_SEQUENCES)),
                            n_ubatch=args.ubatch)
    return load_backend(path, kind, device=args.device, dtype=args.dtype)


def _one_torch_thread(*backends) -> None:
    """Where llama.cpp does all the model work, torch only runs the sampling math: one
    thread, so that its OpenMP pool does not fight llama.cpp's threads for the cores."""
    if backends and all(b.__class__.__name__ == "LlamaCppBackend" for b in backends):
        import torch

        torch.set_num_threads(1)


def _policy(registry, name, **kw):
    from dsd.errors import DsdError
    from dsd.policies import UnknownPolicyError

    try:
        return registry.create(name, **kw)
    except (UnknownPolicyError, ValueError) as exc:
        raise DsdError(str(exc)) from None


def _batcher(args):
    from dsd.policies import BATCHERS

    kw = {"max_batch": args.max_batch}
    if args.max_wait_ms:
        kw["max_wait_ms"] = args.max_wait_ms
    return _policy(BATCHERS, args.batcher, **kw)


def _window(args):
    from dsd.policies import WINDOWS

    return _policy(WINDOWS, args.window, **({"gamma": args.gamma} if args.gamma else {}))


def _run(coro) -> int:
    try:
        asyncio.run(coro)
    except KeyboardInterrupt:
        pass
    return 0


def _require_model(path: str) -> None:
    """Fail fast on a missing model path, before any port or model work."""
    from pathlib import Path

    from dsd.errors import DsdError

    if not Path(path).expanduser().exists():
        raise DsdError(f"model path {path} does not exist (a local directory or .gguf file)")


def _verifier(args) -> int:
    _setup(args)
    from dsd.runtime.http_server import check_port_free

    _require_model(args.model)
    token = read_secret(args, "--token", "DSD_TOKEN")
    check_port_free(args.host, args.port, "--port")
    if args.metrics_port:
        check_port_free(args.host, args.metrics_port, "--metrics-port")
    batcher = _batcher(args)
    target = _load(args, args.model, args.gguf_file, args.max_sessions)
    _one_torch_thread(target)

    async def main():
        from dsd.runtime.protocol import TlsConfig
        from dsd.runtime.scheduler import VerifierCore
        from dsd.runtime.verifier import (
            VerifierService,
            start_metrics_server,
            start_verifier_server,
        )

        core = VerifierCore(target, batcher, max_sessions=args.max_sessions,
                            max_queue=args.max_queue, queue_timeout_s=args.queue_timeout_s,
                            prefill_chunk=args.prefill_chunk)
        service = VerifierService(core, idle_timeout_s=args.session_idle_timeout_s,
                                  max_sessions_per_peer=args.max_sessions_per_peer)
        tls = TlsConfig(args.tls_cert, args.tls_key) if (args.tls_cert or args.tls_key) else None
        if args.metrics_port:
            await start_metrics_server(core.metrics.registry, args.host, args.metrics_port,
                                       token)
        server, port = await start_verifier_server(service, args.host, args.port,
                                                   token=token, tls=tls)
        kv = f"{target.kv_capacity} KV tokens" if target.kv_capacity else "KV unbounded"
        print(f"dsd verifier: {target.name} on {args.host}:{port} ({_engine(target)}, "
              f"batcher {args.batcher}, max batch {args.max_batch}, max sessions "
              f"{core.max_sessions}, {kv}, metrics "
              f"{f'{args.host}:{args.metrics_port}' if args.metrics_port else 'off'})",
              flush=True)
        await server.wait_for_termination()

    return _run(main())


def _engine(backend) -> str:
    return "llama.cpp" if backend.__class__.__name__ == "LlamaCppBackend" else "HF transformers"


def _core_kwargs(args) -> dict:
    return {"prefill_chunk": args.prefill_chunk, "max_sessions": args.max_running}


def _edge_kwargs(args) -> dict:
    return {"round_timeout_s": args.round_timeout_s, "request_timeout_s": args.request_timeout_s,
            "max_support": args.max_support, "max_running": args.max_running,
            "max_queue": args.max_queue, "queue_timeout_s": args.queue_timeout_s}


def _edge_checks(args) -> str | None:
    """Checks before the (slow) model load: the HTTP port, the API key. Returns the key."""
    from dsd.runtime.http_server import check_port_free

    key = read_secret(args, "--api-key", "DSD_API_KEY")
    check_port_free(args.host, args.port, "--port")
    return key


async def _serve_engine(engine, tokenizer, name, args, max_context, api_key):
    from dsd.runtime.launch import HttpLimits, start_edge_server, wait_forever

    limits = HttpLimits(max_connections=args.max_connections,
                        header_timeout_s=args.header_timeout_s,
                        body_timeout_s=args.body_timeout_s)
    srv = await start_edge_server(engine, tokenizer, name, args.host, args.port,
                                  args.max_tokens_limit, max_context, api_key=api_key,
                                  limits=limits, strict_start=True)
    print(f"dsd {args.serve_mode}: OpenAI API on http://{args.host}:{srv.port}/v1 "
          f"(model {name})", flush=True)
    try:
        await wait_forever()
    finally:
        await srv.stop()


def _edge(args) -> int:
    _setup(args)
    from dsd.policies import ROUTERS
    from dsd.runtime.protocol import TlsConfig, parse_address

    addrs = [a for a in args.verifier.split(",") if a.strip()]
    for a in addrs:
        parse_address(a)
    window, router = _window(args), _policy(ROUTERS, args.router)
    _require_model(args.draft_model)
    token = read_secret(args, "--token", "DSD_TOKEN")
    api_key = _edge_checks(args)
    draft = _load(args, args.draft_model, args.draft_gguf_file, args.max_running)
    _one_torch_thread(draft)

    async def main():
        from dsd.runtime.client import RemoteEndpoint
        from dsd.runtime.edge import EdgeEngine

        tls = TlsConfig(ca=args.tls_ca) if args.tls else None
        eps = [RemoteEndpoint(i, a.strip(), token=token, tls=tls,
                              emulate_rtt_s=args.emulate_rtt_ms / 1e3,
                              emulate_jitter_s=args.emulate_jitter_ms / 1e3)
               for i, a in enumerate(addrs)]
        engine = EdgeEngine(draft, eps, window, router, **_edge_kwargs(args))
        name = args.served_model_name or draft.name
        await _serve_engine(engine, draft.tokenizer, name, args, draft.max_context, api_key)

    return _run(main())


def _fused(args) -> int:
    _setup(args)
    from dsd.runtime.fused import fused_engine

    window, batcher = _window(args), _batcher(args)
    _require_model(args.model)
    _require_model(args.draft_model)
    api_key = _edge_checks(args)
    target = _load(args, args.model, args.gguf_file, args.max_running)
    draft = _load(args, args.draft_model, args.draft_gguf_file, args.max_running)
    _one_torch_thread(target, draft)
    engine = fused_engine(draft, target, window, batcher, _core_kwargs(args),
                          **_edge_kwargs(args))
    name = args.served_model_name or target.name
    return _run(_serve_engine(engine, target.tokenizer, name, args, target.max_context,
                              api_key))


def _cloud(args) -> int:
    _setup(args)
    from dsd.runtime.fused import cloud_only_engine

    batcher = _batcher(args)
    _require_model(args.model)
    api_key = _edge_checks(args)
    target = _load(args, args.model, args.gguf_file, args.max_running)
    _one_torch_thread(target)
    engine = cloud_only_engine(target, batcher, _core_kwargs(args), **_edge_kwargs(args))
    name = args.served_model_name or target.name
    return _run(_serve_engine(engine, target.tokenizer, name, args, target.max_context,
                              api_key))


def _proxy(args) -> int:
    _setup(args)
    from dsd.runtime.protocol import parse_address
    from dsd.runtime.proxy import DelayProxy, LinkConfig

    lhost, lport = parse_address(args.listen)
    uhost, uport = parse_address(args.upstream)
    cfg = LinkConfig(args.delay_ms / 1e3, args.jitter_ms / 1e3, args.bandwidth_mbps * 1e6)

    async def main():
        proxy = DelayProxy(uhost, uport, cfg)
        port = await proxy.start(lhost, lport)
        print(f"dsd proxy: {lhost}:{port} -> {uhost}:{uport} (one-way {args.delay_ms} ms "
              f"+- {args.jitter_ms} ms)", flush=True)
        await asyncio.Event().wait()

    return _run(main())

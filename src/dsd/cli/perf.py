"""`dsd perf predict`: one forward step's predicted latency and its breakdown, e.g.
"what does a verify of 16 x 5 tokens cost on 4xH100?"

    dsd perf predict --gpu H100 --model llama-2-70b --tp 4 --op verify --batch 16 \\
        --query 5 --context 1024 [--latency fitted|roofline|vidur|vidur:DIR] [--json]
"""

from __future__ import annotations

import argparse
import json

OPS = ("prefill", "decode", "verify", "draft_step")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("perf", help="latency model queries (predict one step)",
                       description="Query dsd's latency models.")
    what = p.add_subparsers(dest="perf_cmd", metavar="CMD")
    pr = what.add_parser(
        "predict", help="predict one forward step and its breakdown",
        description="Predict one forward step of BATCH sequences, each feeding QUERY tokens "
                    "on top of CONTEXT cached ones, and break it into the VIDUR operator set "
                    "(linear), LM head, attention, tensor-parallel all-reduces (comm) and "
                    "host overhead.")
    pr.add_argument("--gpu", required=True, help="catalog GPU, e.g. H100")
    pr.add_argument("--model", required=True, help="catalog model, e.g. llama-2-70b")
    pr.add_argument("--tp", type=int, default=1, help="tensor-parallel GPUs (default 1)")
    pr.add_argument("--op", required=True, metavar="OP",
                    help=f"one of {', '.join(OPS)} (a label: every op is one forward)")
    pr.add_argument("--batch", type=int, default=1, help="sequences in the step (default 1)")
    pr.add_argument("--query", type=int, default=None,
                    help="tokens fed per sequence (prompt length for prefill; default 1, "
                         "5 for verify)")
    pr.add_argument("--context", type=int, default=0,
                    help="tokens already cached per sequence (default 0)")
    pr.add_argument("--contexts", default=None, metavar="LIST",
                    help="a ragged batch instead of --batch/--context: cached tokens of "
                         "each sequence, e.g. 8000,100*15 (one 8k sequence, fifteen of 100)")
    pr.add_argument("--latency", default="fitted",
                    help="fitted (default), roofline, vidur (shipped profiles) or vidur:DIR")
    pr.add_argument("--catalog", action="append", default=[], metavar="FILE",
                    help="extra catalog files (e.g. a `dsd calibrate latency` overlay)")
    pr.add_argument("--json", action="store_true", help="print one JSON object")
    pr.set_defaults(handler=_predict)
    p.set_defaults(handler=lambda args: p.print_help() or 2)


def _predictor(spec: str):
    from dsd.errors import DsdError
    from dsd.perf import make_predictor

    name, _, path = spec.partition(":")
    if name not in ("fitted", "roofline", "vidur") or (path and name != "vidur"):
        raise DsdError(f"--latency: unknown {spec!r} (use fitted, roofline, vidur or "
                       "vidur:DIR)")
    return make_predictor({"type": name, "path": path or None})


def _contexts(text: str) -> list[int]:
    """'8000,100*15' -> [8000, 100, ..., 100]."""
    from dsd.errors import DsdError

    out: list[int] = []
    try:
        for item in text.split(","):
            value, _, count = item.strip().partition("*")
            out += [int(value)] * (int(count) if count else 1)
    except ValueError:
        raise DsdError(f"--contexts: expected e.g. 8000,100*15, got {text!r}") from None
    if not out or min(out) < 0:
        raise DsdError(f"--contexts: expected tokens >= 0, got {text!r}")
    return out


def _predict(args: argparse.Namespace) -> int:
    from dsd.catalog import load_catalog
    from dsd.errors import DsdError
    from dsd.perf import Deployment

    if args.op not in OPS:
        raise DsdError(f"unknown op {args.op!r} (known: {', '.join(OPS)})")
    query = args.query if args.query is not None else (5 if args.op == "verify" else 1)
    if args.batch < 1 or query < 1 or args.context < 0:
        raise DsdError("--batch and --query must be >= 1, --context >= 0")
    if args.op in ("decode", "draft_step") and query != 1:
        raise DsdError(f"a {args.op} feeds 1 token per sequence (got --query {query})")
    contexts = (_contexts(args.contexts) if args.contexts is not None
                else [args.context] * args.batch)
    if args.op in ("decode", "verify", "draft_step") and min(contexts) < 1:
        raise DsdError(f"a {args.op} needs contexts >= 1 (tokens already cached)")
    catalog = load_catalog(args.catalog)
    hw = Deployment(catalog.gpu(args.gpu), catalog.model(args.model), args.tp)
    step = _predictor(args.latency).bind(hw)
    from dsd.perf import BatchShape

    if max(contexts) == 0:  # prefills from an empty cache: causal attention
        n = len(contexts)
        shape = (n, n * query, 0, n * (query * (query + 1) // 2), 0)
    else:
        shape = BatchShape.of([(query, c) for c in contexts]).args()
    n, ctx = len(contexts), sum(contexts) // len(contexts)
    parts = {k: v * 1e3 for k, v in step.breakdown(*shape).items()}
    total = step.step_s(*shape) * 1e3
    validated = bool(getattr(step, "validated", False))
    out = {"gpu": hw.gpu.name, "model": hw.model.name, "tp": hw.tp, "op": args.op,
           "batch": n, "query": query, "context": ctx, "max_context": max(contexts),
           "latency": args.latency,
           "total_ms": total, **{f"{k}_ms": v for k, v in parts.items()},
           "validated": validated,
           "source": getattr(step, "source", "catalog specs (reference roofline)")}
    if args.json:
        print(json.dumps(out))
        return 0
    cached = (f"{ctx} cached" if len(set(contexts)) == 1
              else f"{ctx} cached on average, {max(contexts)} at most")
    print(f"{args.op}: {n} x {query} tokens on {cached}, {hw.label}, {args.latency}")
    print(f"  total      {total:10.3f} ms")
    for key, value in parts.items():
        print(f"  {key:<10s} {value:10.3f} ms")
    print(f"  validated  {'yes' if validated else 'no'} ({out['source']})")
    return 0

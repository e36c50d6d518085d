"""`dsd experiment NAME [--quick] [--out DIR]`: run one of the papers' experiments."""

from __future__ import annotations

import argparse

from dsd.cli.report import add_report_flag, write_after_run


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "experiment", help="run a paper experiment (policy-stack, rtt-sweep, ...)",
        description="Run a registered experiment; writes DIR/results.csv, DIR/summary.json "
                    "and PNG plots, and prints a table. `--list` shows the experiments.")
    p.add_argument("name", nargs="?", help="experiment name (see --list)")
    p.add_argument("--quick", action="store_true",
                   help="small version for smoke tests (under a minute each)")
    p.add_argument("--out", default=None, help="output folder (default runs/experiment-NAME)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--workers", type=int, default=None,
                   help="simulations run in parallel (default: all cores)")
    p.add_argument("--executor", default="local", help="dsd.sweep executor name (local, ray)")
    p.add_argument("--address", default=None, help="executor address (e.g. a Ray cluster)")
    p.add_argument("--reuse", action="store_true",
                   help="reuse the measurements an earlier run left in --out (sim-vs-real: "
                        "re-simulate without running the runtime again)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or table")
    add_report_flag(p)
    p.add_argument("--profiles", default=None, metavar="DIR",
                   help="gpu-fidelity: a VIDUR profile folder (default: the shipped subset)")
    p.add_argument("--models", default=None,
                   choices=("tiny", "tiny-gguf", "qwen", "qwen-gguf"),
                   help="sim-vs-real: the model pair and engine (tiny and qwen on HF "
                        "transformers, *-gguf on llama.cpp; default: qwen when installed "
                        "and not --quick, else tiny; or $DSD_SIM_VS_REAL_MODELS)")
    p.add_argument("--list", action="store_true", help="list the experiments and exit")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from dsd.experiments.executors import get_executor, workers_arg
    from dsd.experiments.registry import EXPERIMENTS, load_builtin, run_experiment

    if args.list or not args.name:
        load_builtin()
        for name in sorted(EXPERIMENTS):
            print(f"{name:16s} {EXPERIMENTS[name].description}")
        return 0 if args.list else 2
    workers = workers_arg(args.workers) if args.executor == "local" else args.workers
    executor = get_executor(workers, args.executor, args.address)
    options = {k: v for k, v in (("profiles", args.profiles), ("models", args.models)) if v}
    try:
        result = run_experiment(args.name, quick=args.quick, out=args.out,
                                executor=executor, seed=args.seed, reuse=args.reuse,
                                echo=not args.quiet, options=options or None)
    finally:
        close = getattr(executor, "close", None)
        if close:  # dsd.sweep executors hold a worker pool
            close()
    if args.report:
        write_after_run(result.out, args.quiet)
    return 0

"""`dsd profile --model PATH --out PROFILE`: measure prefill / decode / verify latency on this
machine into a table the simulator's `latency: {type: table}` reads; `--validate PROFILE`
measures held-out points and reports the table's (and the roofline's) prediction error."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "profile", help="measure a model's step latencies into a profile table",
        description="Time prefill, single-token decode and verify (gamma+1 query tokens) "
                    "forward steps of a model through the runtime's engine (HF transformers "
                    "or llama.cpp) over a grid of "
                    "batch sizes, context lengths and token counts; writes CSV (or Parquet "
                    "by suffix) with hardware and model metadata. With --validate PROFILE, "
                    "measures points between the grid points instead and prints the table "
                    "predictor's mean absolute percentage error.")
    p.add_argument("--model", action="append", required=True, metavar="PATH",
                   help="model directory or .gguf file (repeatable: one file, all models)")
    p.add_argument("--name", action="append", default=[],
                   help="catalog name stored per --model (default: the directory name)")
    p.add_argument("--gguf-file", default=None, help="GGUF file inside a --model directory")
    p.add_argument("--backend", default="auto", choices=["auto", "hf", "llamacpp"],
                   help="inference engine: auto picks by file type (.gguf -> llama.cpp, a "
                        "model directory -> HF transformers), as dsd serve")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="auto (cuda when available, else cpu; as dsd serve), cpu or cuda")
    p.add_argument("--dtype", default="auto", help="auto (fp32 on cpu, bf16 on cuda), fp32, "
                   "bf16, fp16")
    p.add_argument("--out", default=None, help="profile to write (.csv or .parquet)")
    p.add_argument("--validate", default=None, metavar="PROFILE",
                   help="measure held-out points and report the prediction error of PROFILE")
    p.add_argument("--batch-sizes", default="1,2,4")
    p.add_argument("--contexts", default="64,256,1024", help="cached tokens before a step")
    p.add_argument("--gammas", default="1,2,4,6,8", help="verify query = gamma + 1 tokens")
    p.add_argument("--prompts", default="16,64,256,1024", help="prefill prompt lengths")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--stat", default="median", choices=["median", "mean"],
                   help="latency_ms column: median (default) or mean of the repeats; mean "
                        "predicts averages such as TPOT on a machine shared with other load")
    p.add_argument("--threads", type=int, default=None,
                   help="torch intra-op threads, or llama.cpp threads for a .gguf (match the "
                        "runtime you will predict)")
    p.add_argument("--cpus", default=None, help="pin to these CPU ids, e.g. 0 or 0,1")
    p.add_argument("--gpu", default=None,
                   help="catalog GPU for the roofline comparison in --validate "
                        "(default: cpu, or the profile's device)")
    p.add_argument("--catalog", action="append", default=[],
                   help="extra catalog YAML for --validate model lookups")
    p.add_argument("--report", default=None, help="with --validate: write points + summary "
                   "JSON here")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from dsd.calibrate.grid import ProfileGrid, parse_ints
    from dsd.calibrate.profile import ModelToProfile, configure_cpu, run_profile
    from dsd.errors import ConfigError

    if bool(args.out) == bool(args.validate):
        raise ConfigError("give exactly one of --out PROFILE (measure) or --validate PROFILE")
    if args.name and len(args.name) != len(args.model):
        raise ConfigError(f"--name given {len(args.name)} times for {len(args.model)} --model")
    names = args.name or [None] * len(args.model)
    models = [ModelToProfile(path, name, args.gguf_file)
              for path, name in zip(args.model, names, strict=True)]
    configure_cpu(args.threads, parse_ints(args.cpus, "--cpus") if args.cpus else None)
    say = None if args.quiet else (lambda line: print(line, flush=True))
    if args.validate:
        return _validate(args, models, say)
    grid = ProfileGrid(parse_ints(args.batch_sizes, "--batch-sizes"),
                       parse_ints(args.contexts, "--contexts"),
                       parse_ints(args.gammas, "--gammas"),
                       parse_ints(args.prompts, "--prompts"))
    path = run_profile(models, grid, args.out, args.device, args.dtype, args.warmup,
                       args.repeats, say, args.stat, args.backend)
    if not args.quiet:
        print(f"wrote {path}")
    return 0


def _validate(args: argparse.Namespace, models, say) -> int:
    from dsd.calibrate.validate import summarize, validate_profile
    from dsd.perf.table import load_profile

    device_meta = load_profile(args.validate).metadata.get("device", "cpu")
    gpu = args.gpu or ("cpu" if device_meta == "cpu" else device_meta)
    points = validate_profile(args.validate, models, args.device, gpu, args.warmup,
                              args.repeats, tuple(args.catalog), say, args.backend)
    summary = summarize(points)
    if not args.quiet:
        print(f"{'model/op':32s} {'points':>6s} {'table MAPE':>11s} {'roofline MAPE':>14s}")
        for key, s in summary["by_op"].items():
            print(f"{key:32s} {s['points']:6d} {s['mape_table']:10.1%} "
                  f"{s['mape_roofline']:13.1%}")
        print(f"{'all':32s} {summary['points']:6d} {summary['mape_table']:10.1%} "
              f"{summary['mape_roofline']:13.1%}")
    if args.report:
        from dataclasses import asdict

        report = {"profile": args.validate, **summary,
                  "rows": [asdict(p) for p in points]}
        Path(args.report).parent.mkdir(parents=True, exist_ok=True)
        Path(args.report).write_text(json.dumps(report, indent=2) + "\n")
    return 0

"""`dsd awc dataset | train | bench`: the AWC pipeline from simulator data to shipped weights."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("awc", help="adaptive window control: dataset, training, benchmark",
                       description="Build the learned window controller (WC-DNN) for the "
                                   "'awc' window policy. See docs/awc.md.")
    steps = p.add_subparsers(dest="awc_command", metavar="STEP")

    d = steps.add_parser("dataset", help="simulate scenarios, label decision points with the "
                                         "oracle gamma, write Parquet (resumable)")
    d.add_argument("--out", default="runs/awc/train.parquet", help="output Parquet file")
    d.add_argument("--scenarios", type=int, default=300, help="number of training scenarios")
    d.add_argument("--duration", type=float, default=120.0, help="simulated seconds per run")
    d.add_argument("--seed", type=int, default=0, help="scenario grid seed")
    d.add_argument("--points-per-run", type=int, default=150,
                   help="decision points sampled per simulator run")
    d.add_argument("--gammas", default="1,2,3,4,5,6,8", help="candidate gammas (oracle set)")
    d.add_argument("--workers", type=int, default=None,
                   help="parallel workers (default: all cores)")
    d.add_argument("--executor", default="local", help="sweep executor: local or ray")
    d.add_argument("--address", default=None, help="ray cluster address (with --executor ray)")
    d.add_argument("--quiet", action="store_true", help="no progress bar")
    d.add_argument("--no-progress", dest="quiet", action="store_true",
                   help=argparse.SUPPRESS)  # the old spelling of --quiet
    d.set_defaults(handler=_dataset)

    t = steps.add_parser("train", help="train the WC-DNN (PyTorch) and write weights")
    t.add_argument("dataset", nargs="?", default="runs/awc/train.parquet")
    t.add_argument("--out", default="runs/awc/weights.npz", help="weights file (.npz)")
    t.add_argument("--hidden", type=int, default=16, help="hidden width")
    t.add_argument("--blocks", type=int, default=1, help="residual blocks")
    t.add_argument("--epochs", type=int, default=80)
    t.add_argument("--patience", type=int, default=10, help="early-stopping patience (epochs)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--quiet", action="store_true", help="print nothing but errors and warnings")
    t.set_defaults(handler=_train)

    b = steps.add_parser("bench", help="microseconds per AWC decision, per backend")
    b.add_argument("--weights", default=None, help="weights file (default: packaged)")
    b.add_argument("-n", type=int, default=2000, help="decisions per repeat")
    b.add_argument("--repeats", type=int, default=7)
    b.set_defaults(handler=_bench)
    p.set_defaults(handler=lambda args: (p.print_help(), 2)[1])


def _gammas(text: str) -> tuple[int, ...]:
    from dsd.errors import DsdError

    try:
        gammas = tuple(sorted({int(g) for g in text.split(",") if g.strip()}))
    except ValueError:
        raise DsdError(f"--gammas: expected comma-separated integers, got {text!r}") from None
    if not gammas or gammas[0] < 1:
        raise DsdError(f"--gammas: need gammas >= 1, got {text!r}")
    return gammas


def _dataset(args: argparse.Namespace) -> int:
    from dsd.awc.dataset import generate
    from dsd.awc.scenarios import training_scenarios

    scenarios = training_scenarios(args.scenarios, args.seed, args.duration)
    out = generate(scenarios, args.out, gammas=_gammas(args.gammas),
                   points_per_run=args.points_per_run, workers=args.workers,
                   executor=args.executor, address=args.address,
                   progress=not args.quiet)
    if not args.quiet:
        print(f"wrote {out}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from dsd.awc.train import TrainConfig, train

    cfg = TrainConfig(hidden=args.hidden, blocks=args.blocks, epochs=args.epochs,
                      patience=args.patience, seed=args.seed)
    report = train(args.dataset, args.out, cfg, log=_train_log(args.quiet))
    if args.quiet:
        return 0
    print(f"scenarios (train/val/test): {report.scenarios['train']}/{report.scenarios['val']}"
          f"/{report.scenarios['test']}, rows {report.rows['train']}/{report.rows['val']}"
          f"/{report.rows['test']}, best epoch {report.best_epoch} of {report.epochs_run}")
    for split, m in report.metrics.items():
        print(f"{split:5s} accuracy {m['accuracy']:.3f}  within-one {m['within_one']:.3f}  "
              f"mean regret {m['mean_regret']:.4f}  (static gamma=4: "
              f"{m.get('static4_regret', float('nan')):.4f}, best single static: "
              f"{m['best_single_static_regret']:.4f})")
    print(f"wrote {args.out} and {Path(args.out).with_suffix('.json')}")
    return 0


def _train_log(quiet: bool):  # noqa: ANN202
    """Training's log lines: all of them, or with --quiet only its warnings (on stderr)."""
    import sys

    if not quiet:
        return print

    def warnings_only(line: str) -> None:
        if line.startswith("warning:"):
            print(f"dsd awc: {line}", file=sys.stderr)

    return warnings_only


def _bench(args: argparse.Namespace) -> int:
    from dsd.awc.bench import run_bench

    results = run_bench(args.weights, args.n, args.repeats)
    for backend, r in results.items():
        print(f"{backend:8s} {r['median_us']:6.2f} us/decision (median; best {r['best_us']:.2f}; "
              f"network alone {r['network_only_us']:.2f} us)")
    best = min(r["median_us"] for r in results.values())
    print(f"goal < 20 us/decision: {'met' if best < 20 else 'NOT met'} ({best:.2f} us)")
    return 0

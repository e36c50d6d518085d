"""`dsd calibrate acceptance RUN_DIR... --out FILE.yaml`: fit per-position acceptance from
runtime logs into a file the simulator loads by path."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("calibrate", help="fit simulator inputs from runtime measurements",
                       description="Fit simulator models from what the runtime measured.")
    what = p.add_subparsers(dest="what", metavar="WHAT")
    acc = what.add_parser(
        "acceptance", help="fit per-position acceptance from runtime logs",
        description="Read per-request records (JSON lines: the edge's 'request done' log "
                    "records, or a bench's requests JSON) from run folders or files and "
                    "fit alpha_i = P(position i accepted | reached) per position.")
    acc.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders or log files")
    acc.add_argument("--out", required=True, help="fitted acceptance YAML to write")
    acc.add_argument("--draft", default=None, help="catalog name of the draft model")
    acc.add_argument("--target", default=None, help="catalog name of the target model")
    acc.add_argument("--dataset", default=None, help="dataset the runs used")
    acc.add_argument("--min-reached", type=int, default=20,
                     help="keep positions reached by at least this many rounds (default 20)")
    acc.add_argument("--quiet", action="store_true")
    acc.set_defaults(handler=run_acceptance)
    p.set_defaults(handler=lambda args: p.print_help() or 2)


def run_acceptance(args: argparse.Namespace) -> int:
    from dsd.acceptance.fitted import write_fitted
    from dsd.calibrate.acceptance import fit_acceptance, iter_records

    fit = fit_acceptance(iter_records(args.runs), args.draft, args.target, args.dataset,
                         args.min_reached)
    path = write_fitted(args.out, fit)
    if not args.quiet:
        alphas = ", ".join(f"{a:.3f}" for a in fit["alphas"])
        print(f"{fit['rounds']} rounds from {fit['requests']} requests: acceptance "
              f"{fit['acceptance_rate']:.3f}, alphas [{alphas}], spread {fit['spread']:.3f}")
        print(f"wrote {path}")
    return 0

"""`dsd calibrate acceptance RUN_DIR... --out FILE.yaml`: fit per-position acceptance from
runtime logs into a file the simulator loads by path.

`dsd calibrate latency [--vidur DIR ...] --out gpus.yaml`: fit the operator-level latency
model's per-GPU coefficients to VIDUR operator profiles into a catalog overlay."""

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
    lat = what.add_parser(
        "latency", help="fit per-GPU latency coefficients to VIDUR operator profiles",
        description="Fit the operator-level latency model (matmul FLOP/s and bandwidth, "
                    "elementwise bandwidth, smooth-roofline p, kernel costs, all-reduce) "
                    "of every catalog GPU the VIDUR profile folders measured, and write a "
                    "catalog overlay with them (validated: true). The shipped catalog's "
                    "coefficients come from this command on dsd's shipped profiles.")
    lat.add_argument("--vidur", action="append", metavar="DIR", default=None,
                     help="a VIDUR profile folder (compute/, network/); repeatable; "
                          "default: the subset shipped with dsd")
    lat.add_argument("--out", required=True, help="catalog overlay YAML to write")
    lat.add_argument("--catalog", action="append", default=[], metavar="FILE",
                     help="extra catalog files (GPUs and models the folders use)")
    lat.add_argument("--quiet", action="store_true")
    lat.set_defaults(handler=run_latency)
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


def run_latency(args: argparse.Namespace) -> int:
    from dsd.catalog import load_catalog
    from dsd.errors import DsdError
    from dsd.perf.calibration import write_overlay
    from dsd.perf.fit import calibrate
    from dsd.perf.vidur_data import builtin_profiles

    catalog = load_catalog(args.catalog)
    folders = args.vidur or [str(builtin_profiles())]
    notes: list[str] = []
    errors: dict[str, float] = {}
    fitted = calibrate(folders, catalog, notes, errors)
    if not fitted:
        raise DsdError(f"no catalog GPU profiled in {', '.join(folders)}")
    path = write_overlay(args.out, fitted, folders)
    if not args.quiet:
        from dsd.perf.calibration import summarize

        for line in [*notes, *summarize(fitted, errors, catalog)]:
            print(line)
        print(f"wrote {path}")
    return 0

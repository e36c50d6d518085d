"""The `dsd` command. Each subcommand lives in its own module exposing `register(subparsers)`;
heavy imports (torch, ray) happen inside the handlers so `dsd --help` stays instant."""

from __future__ import annotations

import argparse
import importlib
import sys

from dsd import __version__
from dsd.errors import DsdError

# Module names under dsd.cli, in the order they appear in `dsd --help`.
COMMAND_MODULES = ["simulate", "trace", "sweep", "experiment", "capacity", "awc", "serve",
                   "models", "bench", "profile", "calibrate", "perf"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dsd", description="Distributed speculative decoding: simulator, policies, runtime."
    )
    parser.add_argument("--version", action="version", version=f"dsd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"dsd.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"dsd.cli.{name}":
                continue  # command not built yet
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except DsdError as exc:
        print(f"dsd {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"dsd {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

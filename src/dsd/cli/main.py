"""The `dsd` command. Each subcommand lives in its own module exposing `register(subparsers)`;
heavy imports (torch, ray) happen inside the handlers so `dsd --help` stays instant, and
`dsd COMMAND ...` imports only that command's module (start-up is part of every run)."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
import warnings
from collections.abc import Iterator

from dsd import __version__
from dsd.errors import DsdError

# Module names under dsd.cli, in the order they appear in `dsd --help`.
COMMAND_MODULES = ["simulate", "trace", "sweep", "experiment", "capacity", "awc", "serve",
                   "models", "bench", "profile", "calibrate", "perf", "report"]

# Optional dependencies (pyproject.toml extras) by top-level module name.
EXTRA_OF_MODULE = {
    **dict.fromkeys(("torch", "transformers", "tokenizers", "grpc", "google", "fastapi",
                     "uvicorn", "httpx", "prometheus_client", "safetensors", "accelerate",
                     "gguf"), "runtime"),
    "pandas": "awc",
    "ray": "ray",
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or of `only` that one when it is known."""
    parser = argparse.ArgumentParser(
        prog="dsd", description="Distributed speculative decoding: simulator, policies, runtime."
    )
    parser.add_argument("--version", action="version", version=f"dsd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in [only] if only in COMMAND_MODULES else COMMAND_MODULES:
        try:
            module = importlib.import_module(f"dsd.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"dsd.cli.{name}":
                continue  # command not built yet
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(next((a for a in argv if not a.startswith("-")), None))
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        with _one_line_warnings(args.command):
            return int(args.handler(args) or 0)
    except DsdError as exc:
        print(f"dsd {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        hint = missing_extra(args.command, exc.name)
        if hint is None:
            raise
        print(f"dsd {args.command}: error: {hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"dsd {args.command}: interrupted", file=sys.stderr)
        return 130


@contextlib.contextmanager
def _one_line_warnings(command: str) -> Iterator[None]:
    """dsd's own warnings print as `dsd COMMAND: warning: ...`; others keep Python's form."""
    default = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001
        if category.__module__.startswith("dsd."):
            print(f"dsd {command}: warning: {message}", file=file or sys.stderr)
        else:
            default(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = default


def missing_extra(command: str, module: str | None) -> str | None:
    """One line naming the extra that installs a missing optional `module`, or None."""
    root = (module or "").split(".")[0]
    extra = EXTRA_OF_MODULE.get(root)
    if extra is None:
        return None
    if command == "awc" and root in ("torch", "pandas"):
        extra = "awc"  # training needs torch and pandas, not the runtime
    return f"this needs the '{extra}' extra (no module named {root!r}): pip install 'dsd[{extra}]'"


if __name__ == "__main__":
    sys.exit(main())

"""Secrets on the command line: `--X-file`, else `--X` (with a warning), else `$ENV`."""

from __future__ import annotations

import argparse
import os


def secret_args(p: argparse.ArgumentParser, flag: str, env: str, what: str) -> None:
    p.add_argument(flag, default=None, metavar="SECRET",
                   help=f"{what} (visible in the process list: prefer ${env} or {flag}-file)")
    p.add_argument(f"{flag}-file", default=None, metavar="PATH",
                   help=f"read the {what} from this file (default ${env})")


def read_secret(args, flag: str, env: str) -> str | None:
    """--X-file, else --X (with a warning: argv is world-readable), else $ENV. A parser may
    define only `--X-file`."""
    from dsd.errors import DsdError

    dest = flag.lstrip("-").replace("-", "_")
    path = getattr(args, f"{dest}_file", None)
    if path:
        try:
            value = open(os.path.expanduser(path), encoding="utf-8").read().strip()
        except OSError as exc:
            raise DsdError(f"cannot read {flag}-file {path}: {exc.strerror}") from None
        if not value:
            raise DsdError(f"{flag}-file {path} is empty")
        return value
    if getattr(args, dest, None):
        import logging

        logging.getLogger("dsd.cli").warning(
            "%s on the command line is visible to every user in the process list; prefer "
            "$%s or %s-file", flag, env, flag)
        return getattr(args, dest)
    return os.environ.get(env) or None

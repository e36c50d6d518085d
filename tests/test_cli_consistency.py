"""One CLI: a flag that several commands take means the same and has the same default."""

from __future__ import annotations

import argparse

from dsd.cli.main import build_parser
from dsd.config.schema import PoliciesSpec


def _commands() -> dict[str, argparse.ArgumentParser]:
    """Every (sub)command parser by its path, e.g. "awc dataset", "serve verifier"."""
    out: dict[str, argparse.ArgumentParser] = {}

    def walk(parser: argparse.ArgumentParser, path: str) -> None:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if path:
            out[path] = parser
        for action in subs:
            for name, child in action.choices.items():
                walk(child, f"{path} {name}".strip())

    walk(build_parser(), "")
    return out


def _default(parser: argparse.ArgumentParser, flag: str):
    action = next(a for a in parser._actions if flag in a.option_strings)
    return action.default


def test_shared_flags_share_defaults():
    cmds = _commands()
    with_workers = [c for c, p in cmds.items()
                    if any("--workers" in a.option_strings for a in p._actions)]
    assert {"sweep", "experiment", "capacity", "awc dataset"} <= set(with_workers)
    assert all(_default(cmds[c], "--workers") is None for c in with_workers)  # all cores
    batch = PoliciesSpec().batcher.params["max_batch"]
    for c in ("serve verifier", "serve fused", "serve cloud"):
        assert _default(cmds[c], "--max-batch") == batch
    assert _default(cmds["profile"], "--device") == _default(cmds["serve verifier"], "--device")


def test_every_long_command_has_quiet():
    cmds = _commands()
    for c in ("simulate", "trace", "sweep", "experiment", "capacity", "awc dataset",
              "awc train", "models tiny", "bench runtime", "profile", "calibrate acceptance",
              "report"):
        assert any("--quiet" in a.option_strings for a in cmds[c]._actions), c
    old = next(a for a in cmds["awc dataset"]._actions if "--no-progress" in a.option_strings)
    assert old.dest == "quiet" and old.help == argparse.SUPPRESS  # the old spelling still works

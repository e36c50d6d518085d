"""Replayed acceptance: each simulated session accepts what a measured request accepted.

For checking the simulator's timing against a real run (`dsd experiment sim-vs-real`),
acceptance sampled from a fitted model adds noise of its own: with greedy decoding a real
request's acceptance is fixed by its prompt, so a few requests that happen to finish
together (and collide in the verifier's queue) are a property of those prompts. Replaying
each request's per-round (gamma, accepted) log removes that noise and leaves the latency
model to be judged.

Sessions take the logs in the order they start (the n-th session of the pool pair replays
the n-th log). A round asks for `gamma`; a logged rejection after `a` tokens gives
min(a, gamma); a logged full acceptance of `g` tokens gives gamma if gamma <= g, else g plus
what the fitted model samples for the rest. Past its log, or once the logs run out, a
session samples from the fitted model.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path

from dsd.acceptance.models import AcceptanceModel, TokenAcceptance
from dsd.errors import ConfigError

RoundLog = Sequence[Sequence[int]]  # [[gamma, accepted], ...] of one request


class ReplaySession:
    """One session's logged rounds, then the fitted model."""

    __slots__ = ("log", "next", "fallback")

    def __init__(self, log: RoundLog, fallback: TokenAcceptance) -> None:
        self.log = log
        self.next = 0
        self.fallback = fallback

    def accepted(self, gamma: int, u: float) -> int:
        if self.next >= len(self.log):
            return self.fallback.accepted(gamma, u)
        g, a = self.log[self.next]
        self.next += 1
        if a < g:
            return min(a, gamma)
        return gamma if gamma <= g else g + self.fallback.accepted(gamma - g, u)

    def expected_tokens(self, gamma: int) -> float:
        """The fitted model's estimate (what an engine could know before the verdict)."""
        return self.fallback.expected_tokens(gamma)


class ReplayAcceptance:
    """Hands out logged sessions in order, then sessions of the fitted `model`."""

    def __init__(self, logs: Sequence[RoundLog], model: AcceptanceModel) -> None:
        self.logs = list(logs)
        self.model = model
        self.started = 0

    def session(self, rng: random.Random) -> ReplaySession | TokenAcceptance:
        fallback = self.model.session(rng)
        if self.started >= len(self.logs):
            return fallback
        log = self.logs[self.started]
        self.started += 1
        return ReplaySession(log, fallback)


def load_round_logs(source: str | Sequence[RoundLog]) -> list[RoundLog]:
    """Round logs given inline, or read from a JSON-lines file of request records (the
    runtime's, with `rounds_log`), in file order."""
    if not isinstance(source, str):
        logs = [list(log) for log in source]
        where = "acceptance.replay"
    else:
        path = Path(source)
        where = str(path)
        try:
            lines = path.read_text().splitlines()
        except OSError as exc:
            raise ConfigError(f"acceptance.replay: cannot read {path} ({exc.strerror})") from None
        logs = []
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                logs.append(json.loads(line)["rounds_log"])
            except (ValueError, KeyError, TypeError):
                raise ConfigError(f"{path}:{n}: not a request record with 'rounds_log'") from None
    for i, log in enumerate(logs):
        for rnd in log:
            if (len(rnd) != 2 or not all(isinstance(x, int) for x in rnd)
                    or not 0 <= rnd[1] <= rnd[0]):
                raise ConfigError(f"{where}: request {i}: round {rnd!r} is not "
                                  "[gamma, accepted] with 0 <= accepted <= gamma")
    return logs

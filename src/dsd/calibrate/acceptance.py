"""Fit per-position acceptance from runtime logs (`dsd calibrate acceptance RUN_DIR...`).

alpha_i = P(draft position i accepted | position i reached), estimated as
accepted_i / reached_i over all speculation rounds, where a round of window gamma that
accepted a tokens reached positions 0..min(a, gamma-1) and accepted positions 0..a-1.

Input records are per-request JSON objects (JSON lines in *.jsonl / *.log files, or a JSON
list in *.json), as the runtime's edge logs them. Each needs either per-round data
(`rounds_log: [[gamma, accepted], ...]`, `round_gammas` + `round_accepted`, or the edge's
`gamma_history` + `accepted_history`) or the aggregate `gamma_history` + `accepted_per_pos`
of older logs; the aggregate is exact only when a request kept one gamma, so variable-gamma
requests without per-round data are skipped.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dsd.errors import DataError

_SUFFIXES = (".jsonl", ".json", ".log")


@dataclass
class AcceptanceCounts:
    reached: list[int] = field(default_factory=list)
    accepted: list[int] = field(default_factory=list)
    rounds: int = 0
    sessions: list[tuple[int, int]] = field(default_factory=list)  # (accepted, drafted)
    skipped: int = 0

    def _grow(self, n: int) -> None:
        while len(self.reached) < n:
            self.reached.append(0)
            self.accepted.append(0)

    def add_round(self, gamma: int, accepted: int) -> None:
        if gamma <= 0:
            return  # a plain decode step drafts nothing
        accepted = max(0, min(accepted, gamma))
        self._grow(gamma)
        self.rounds += 1
        for i in range(min(accepted + 1, gamma)):
            self.reached[i] += 1
        for i in range(accepted):
            self.accepted[i] += 1

    def add_record(self, rec: dict[str, Any]) -> bool:
        """Add one request's rounds; False if the record carries no usable round data."""
        rounds = _rounds_of(rec)
        if rounds is not None:
            acc = drafted = 0
            for g, a in rounds:
                self.add_round(g, a)
                if g > 0:
                    acc += min(a, g)
                    drafted += g
            if drafted:
                self.sessions.append((acc, drafted))
            return True
        gammas = rec.get("gamma_history")
        per_pos = rec.get("accepted_per_pos")
        if not isinstance(gammas, list) or not isinstance(per_pos, list):
            return False
        drafts = [int(g) for g in gammas if int(g) > 0]
        if not drafts:
            return True
        if len(set(drafts)) > 1:
            self.skipped += 1
            return True
        g, n = drafts[0], len(drafts)
        per_pos = [int(x) for x in per_pos] + [0] * max(0, g - len(per_pos))
        self._grow(g)
        self.rounds += n
        self.reached[0] += n
        for i in range(g):
            if i > 0:
                self.reached[i] += per_pos[i - 1]
            self.accepted[i] += per_pos[i]
        self.sessions.append((sum(per_pos[:g]), g * n))
        return True


def _rounds_of(rec: dict[str, Any]) -> list[tuple[int, int]] | None:
    log = rec.get("rounds_log")
    if isinstance(log, list):
        return [(int(g), int(a)) for g, a in log]
    for gamma_key, accepted_key in (("round_gammas", "round_accepted"),
                                    ("gamma_history", "accepted_history")):
        gs, accs = rec.get(gamma_key), rec.get(accepted_key)
        if isinstance(gs, list) and isinstance(accs, list):
            return [(int(g), int(a)) for g, a in zip(gs, accs, strict=False)]
    return None


def iter_records(paths: Iterable[str | Path]) -> Iterator[dict[str, Any]]:
    """JSON objects from run folders or files (JSON lines, or a JSON list/object)."""
    files: list[Path] = []
    for raw in paths:
        p = Path(raw).expanduser()
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.suffix in _SUFFIXES and f.is_file())
        elif p.is_file():
            files.append(p)
        else:
            raise DataError(f"run folder or log {p} does not exist")
    for f in files:
        text = f.read_text(errors="replace")
        stripped = text.lstrip()
        if f.suffix == ".json" and stripped[:1] in "[{":
            try:
                data = json.loads(text)
            except ValueError:
                data = None
            if data is not None:
                yield from (data if isinstance(data, list) else data.get("requests", [data]))
                continue
        for line in text.splitlines():
            line = line.strip()
            if line.startswith("{"):
                try:
                    obj = json.loads(line)
                except ValueError:
                    continue
                if isinstance(obj, dict):
                    yield obj


def estimate_spread(sessions: list[tuple[int, int]], mean: float) -> float:
    """Std of per-session acceptance beyond sampling noise (method of moments)."""
    if len(sessions) < 2 or not 0.0 < mean < 1.0:
        return 0.0
    rates = [a / d for a, d in sessions]
    avg = sum(rates) / len(rates)
    var = sum((r - avg) ** 2 for r in rates) / (len(rates) - 1)
    noise = sum(mean * (1 - mean) / d for _, d in sessions) / len(sessions)
    spread = math.sqrt(max(0.0, var - noise))
    # AcceptanceModel needs spread^2 < m (1 - m); keep clear of the bound.
    return min(spread, 0.95 * math.sqrt(mean * (1 - mean)))


def fit_acceptance(
    records: Iterable[dict[str, Any]],
    draft: str | None = None,
    target: str | None = None,
    dataset: str | None = None,
    min_reached: int = 1,
) -> dict[str, Any]:
    """Per-position acceptance (and session spread) from request records."""
    counts = AcceptanceCounts()
    used = 0
    meta: dict[str, Any] = {}
    for rec in records:
        if counts.add_record(rec):
            used += 1
            for key, alt in (("draft", "draft_model"), ("target", "target_model"),
                             ("dataset", "dataset")):
                value = rec.get(key, rec.get(alt))
                if isinstance(value, str):
                    meta.setdefault(key, value)
    if counts.rounds == 0:
        raise DataError("no speculation rounds found in the given runs (need per-request "
                        "records with rounds_log or gamma_history + accepted_per_pos)")
    n = 0
    while n < len(counts.reached) and counts.reached[n] >= min_reached:
        n += 1
    alphas = [counts.accepted[i] / counts.reached[i] for i in range(max(n, 1))]
    drafted = sum(d for _, d in counts.sessions)
    mean = sum(a for a, _ in counts.sessions) / drafted if drafted else alphas[0]
    fit = {
        "draft": draft or meta.get("draft"),
        "target": target or meta.get("target"),
        "dataset": dataset or meta.get("dataset"),
        "alphas": [round(a, 4) for a in alphas],
        "spread": round(estimate_spread(counts.sessions, mean), 4),
        "rounds": counts.rounds,
        "requests": used,
        "skipped_requests": counts.skipped,
        "acceptance_rate": round(mean, 4),
        "reached": counts.reached[: len(alphas)],
        "accepted": counts.accepted[: len(alphas)],
    }
    return {k: v for k, v in fit.items() if v is not None}

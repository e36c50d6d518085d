"""Request traces: JSONL files of timed requests the simulator and the runtime bench replay.

One JSON object per line (blank lines ignored):

    {"arrival_s": 0.82, "prompt_tokens": 57, "output_tokens": 115,
     "device": 3, "dataset": "gsm8k", "prompt": "Janet's ducks ..."}

arrival_s (seconds from the start, non-decreasing), prompt_tokens and output_tokens (positive
integers) are required; device (edge device index), dataset and prompt (the text, so the
runtime bench can send the same prompts) are optional. Unknown keys are ignored, so newer
writers stay readable.
"""

from __future__ import annotations

import json
import math
import os
import random
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dsd.errors import ConfigError, DataError
from dsd.workload.arrivals import make_arrivals
from dsd.workload.datasets import iter_dataset, open_text
from dsd.workload.lengths import PROFILES
from dsd.workload.tokens import make_token_counter


@dataclass(slots=True)
class TraceRecord:
    arrival_s: float
    prompt_tokens: int
    output_tokens: int
    device: int | None = None
    dataset: str | None = None
    prompt: str | None = None

    def to_json(self) -> str:
        obj: dict[str, Any] = {
            "arrival_s": self.arrival_s,
            "prompt_tokens": self.prompt_tokens,
            "output_tokens": self.output_tokens,
        }
        for key in ("device", "dataset", "prompt"):
            value = getattr(self, key)
            if value is not None:
                obj[key] = value
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def read_trace(path: str | Path) -> Iterator[TraceRecord]:
    """Stream the records of a trace file, validating each line (DataError names the line)."""
    name = str(path)
    last = -math.inf
    with open_text(path) as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{name} line {lineno}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{where}: invalid JSON ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise DataError(f"{where}: expected a JSON object, got {type(obj).__name__}")
            record = _record(obj, where)
            if record.arrival_s < last:
                raise DataError(
                    f"{where}: arrival_s must be non-decreasing, got {record.arrival_s} "
                    f"after {last}"
                )
            last = record.arrival_s
            yield record


def _record(obj: Mapping[str, Any], where: str) -> TraceRecord:
    for key in ("arrival_s", "prompt_tokens", "output_tokens"):
        if key not in obj:
            raise DataError(f"{where}: missing required field {key}")
    arrival = obj["arrival_s"]
    if (
        isinstance(arrival, bool)
        or not isinstance(arrival, (int, float))
        or not math.isfinite(arrival)
        or arrival < 0
    ):
        raise DataError(f"{where}: arrival_s must be a number >= 0, got {arrival!r}")
    for key in ("prompt_tokens", "output_tokens"):
        v = obj[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise DataError(f"{where}: {key} must be a positive integer, got {v!r}")
    device = obj.get("device")
    if device is not None and (
        isinstance(device, bool) or not isinstance(device, int) or device < 0
    ):
        raise DataError(f"{where}: device must be an integer >= 0 or null, got {device!r}")
    for key in ("dataset", "prompt"):
        v = obj.get(key)
        if v is not None and not isinstance(v, str):
            raise DataError(f"{where}: {key} must be a string or null, got {v!r}")
    return TraceRecord(
        float(arrival),
        obj["prompt_tokens"],
        obj["output_tokens"],
        device,
        obj.get("dataset"),
        obj.get("prompt"),
    )


def write_trace(path: str | Path, records: Iterable[TraceRecord]) -> int:
    """Write records as JSONL (parent directories created); returns how many were written."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    # Write beside the target and rename, so a failure halfway leaves no truncated trace.
    tmp = p.with_name(p.name + ".partial")
    n = 0
    try:
        with tmp.open("w", encoding="utf-8") as fh:
            for record in records:
                fh.write(record.to_json())
                fh.write("\n")
                n += 1
        os.replace(tmp, p)
    finally:
        tmp.unlink(missing_ok=True)
    return n


def build_trace(
    dataset_path: str | Path,
    out_path: str | Path,
    *,
    tokenizer: str = "approx",
    arrival: Mapping[str, Any] | None = None,
    limit: int | None = None,
    seed: int = 0,
    keep_text: bool = True,
) -> int:
    """Turn a dataset file into a trace; returns the number of records written.

    Prompt lengths are the token count of the prompt text (no chat template). Output lengths
    are the token count of the dataset's answer where it has one, else a draw from the
    category's length profile (see dsd.workload.datasets). The first request arrives at 0 s,
    later ones after gaps from `arrival` (default Poisson at 1 req/s). Arrivals and sampled
    lengths use separate seeded streams, so changing one does not reshuffle the other.
    """
    arrivals = make_arrivals(arrival if arrival is not None else {"type": "poisson", "rate": 1.0})
    count = make_token_counter(tokenizer)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ConfigError(f"limit must be an integer >= 0, got {limit!r}")
    arrival_rng = random.Random(seed)
    length_rng = random.Random(f"dsd-trace-lengths-{seed}")

    def records() -> Iterator[TraceRecord]:
        t = 0.0
        for i, item in enumerate(iter_dataset(dataset_path)):
            if limit is not None and i >= limit:
                return
            if i:
                t += arrivals.next_gap(arrival_rng)
            if item.output_text is not None:
                out = max(1, count(item.output_text))
            else:
                out = PROFILES[item.profile].output.sample(length_rng)
            yield TraceRecord(
                arrival_s=round(t, 6),
                prompt_tokens=max(1, count(item.prompt)),
                output_tokens=out,
                dataset=item.dataset,
                prompt=item.prompt if keep_text else None,
            )

    return write_trace(out_path, records())


def load_prompts(
    dataset_path: str | Path, limit: int | None = None, *, tokenizer: str = "approx"
) -> list[tuple[str, int | None]]:
    """(prompt text, reference output tokens or None) per prompt of a dataset or trace file,
    for the runtime bench to send real prompts. A trace must have kept its prompt text."""
    first = _first_object(dataset_path)
    if first is not None and "prompt_tokens" in first:
        out: list[tuple[str, int | None]] = []
        for rec in read_trace(dataset_path):
            if limit is not None and len(out) >= limit:
                break
            if rec.prompt is None:
                raise DataError(
                    f"{dataset_path}: trace has no prompt text (rebuild it with keep_text=True)"
                )
            out.append((rec.prompt, rec.output_tokens))
        return out
    count = make_token_counter(tokenizer)
    prompts: list[tuple[str, int | None]] = []
    for item in iter_dataset(dataset_path):
        if limit is not None and len(prompts) >= limit:
            break
        ref = max(1, count(item.output_text)) if item.output_text is not None else None
        prompts.append((item.prompt, ref))
    return prompts


def _first_object(path: str | Path) -> dict[str, Any] | None:
    """The first JSON object of a JSONL file (None if not JSONL-shaped), to tell traces apart."""
    if str(path).removesuffix(".gz").endswith(".json"):
        return None
    with open_text(path) as fh:
        for line in fh:
            if line.strip():
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError:
                    return None
                return obj if isinstance(obj, dict) else None
    return None

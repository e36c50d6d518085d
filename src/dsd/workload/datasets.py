"""Readers for the prompt datasets traces are built from; the format is detected per record.

- GSM8K (question, answer): prompt = question, output = answer (chain of thought).
- Spec-Bench / MT-bench (turns, category[, reference]): prompt = turns[0], output = reference
  for some categories (below).
- HumanEval, .jsonl or .jsonl.gz (prompt, canonical_solution): output = canonical_solution.
- ShareGPT (conversations): prompt = first user turn, output = the reply after it.
- generic (prompt[, output | completion | response]).
Where ShareGPT or generic records have no answer, output lengths come from the sharegpt profile.

Spec-Bench `reference` is a model-style answer only for summarization (CNN/DM highlights),
math_reasoning (GSM8K answers) and translation; for rag it is a list of answer spans and for
MT-bench categories a grader's hint ("Area is 3"), so there the output length is sampled from
the category's length profile instead: summarization -> cnndm, math_reasoning -> gsm8k,
coding -> humaneval, everything else -> mtbench.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from dsd.errors import DataError

# Spec-Bench / MT-bench category -> (dataset label on trace records, length profile).
MTBENCH_CATEGORIES = frozenset(
    {"writing", "roleplay", "reasoning", "math", "coding", "extraction", "stem", "humanities"}
)
CATEGORY_DATASET = {"summarization": "cnndm", "math_reasoning": "gsm8k", "coding": "humaneval"}
CATEGORY_PROFILE = {"summarization": "cnndm", "math_reasoning": "gsm8k", "coding": "humaneval"}
REFERENCE_IS_OUTPUT = frozenset({"summarization", "math_reasoning", "translation"})
GENERIC_OUTPUT_KEYS = ("output", "completion", "response")


@dataclass(slots=True)
class DatasetItem:
    """One prompt of a dataset. `output_text` is None when the dataset has no usable answer;
    then `profile` names the length profile to sample the output length from."""

    prompt: str
    output_text: str | None
    dataset: str | None
    profile: str
    line: int


def open_text(path: str | Path) -> IO[str]:
    """Open a text file for reading, transparently un-gzipping `*.gz`."""
    p = Path(path)
    try:
        if p.suffix == ".gz":
            return gzip.open(p, "rt", encoding="utf-8")
        return p.open(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, expected a file") from None


def iter_json_objects(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) per non-blank line of a JSONL file, or per item of a JSON array
    file (`.json`, numbered from 1). Bad JSON raises DataError naming file and line."""
    name = str(path)
    with open_text(path) as fh:
        try:
            if name.removesuffix(".gz").endswith(".json"):
                data = json.load(fh)
                if not isinstance(data, list):
                    raise DataError(f"{name}: expected a JSON array of objects")
                for i, obj in enumerate(data, 1):
                    yield i, _object(obj, name, i, "item")
                return
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{name} line {lineno}: invalid JSON ({exc.msg})") from None
                yield lineno, _object(obj, name, lineno, "line")
        except UnicodeDecodeError:
            raise DataError(f"{name}: not UTF-8 text") from None
        except (OSError, EOFError) as exc:  # truncated or corrupt gzip
            raise DataError(f"{name}: cannot read ({exc})") from None
        except json.JSONDecodeError as exc:
            raise DataError(f"{name} line {exc.lineno}: invalid JSON ({exc.msg})") from None


def _object(obj: Any, name: str, n: int, unit: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise DataError(f"{name} {unit} {n}: expected a JSON object, got {type(obj).__name__}")
    return obj


def iter_dataset(path: str | Path) -> Iterator[DatasetItem]:
    """Prompts (and answers when known) of a dataset file, in file order."""
    name = str(path)
    for lineno, obj in iter_json_objects(path):
        item = _parse(obj, name, lineno)
        if item is not None:
            yield item


def _parse(obj: dict[str, Any], name: str, line: int) -> DatasetItem | None:
    where = f"{name} line {line}"
    if "question" in obj and "answer" in obj:
        q, a = _text(obj, "question", where), _text(obj, "answer", where)
        return DatasetItem(q, a, "gsm8k", "gsm8k", line)
    if "turns" in obj:
        return _spec_bench(obj, where, line)
    if "prompt" in obj and "canonical_solution" in obj:
        p, s = _text(obj, "prompt", where), _text(obj, "canonical_solution", where)
        return DatasetItem(p, s, "humaneval", "humaneval", line)
    if "conversations" in obj:
        return _sharegpt(obj, where, line)
    if "prompt" in obj:
        out = next((_text(obj, k, where) for k in GENERIC_OUTPUT_KEYS if k in obj), None)
        ds = obj.get("dataset") if isinstance(obj.get("dataset"), str) else None
        return DatasetItem(_text(obj, "prompt", where), out, ds, "sharegpt", line)
    raise DataError(
        f"{where}: unrecognised record with keys {sorted(obj)[:6]}; expected question/answer "
        "(GSM8K), turns (Spec-Bench, MT-bench), prompt/canonical_solution (HumanEval), "
        "conversations (ShareGPT) or prompt"
    )


def _spec_bench(obj: dict[str, Any], where: str, line: int) -> DatasetItem:
    turns = obj["turns"]
    if not isinstance(turns, list) or not turns or not isinstance(turns[0], str):
        raise DataError(f"{where}: turns must be a non-empty list of strings")
    category = obj.get("category")
    category = category if isinstance(category, str) else "writing"
    output = None
    ref = obj.get("reference")
    if category in REFERENCE_IS_OUTPUT and isinstance(ref, list) and ref:
        if isinstance(ref[0], str) and ref[0].strip():
            output = ref[0]
    if category in CATEGORY_DATASET:
        dataset = CATEGORY_DATASET[category]
    elif category in MTBENCH_CATEGORIES:
        dataset = "mtbench"
    else:
        dataset = category  # translation, qa, rag: their own sources
    return DatasetItem(turns[0], output, dataset, CATEGORY_PROFILE.get(category, "mtbench"), line)


def _sharegpt(obj: dict[str, Any], where: str, line: int) -> DatasetItem | None:
    conv = obj["conversations"]
    if not isinstance(conv, list):
        raise DataError(f"{where}: conversations must be a list")
    for i, turn in enumerate(conv):
        if isinstance(turn, dict) and turn.get("from") in ("human", "user"):
            prompt = turn.get("value")
            if not isinstance(prompt, str) or not prompt.strip():
                return None
            reply = conv[i + 1] if i + 1 < len(conv) else None
            out = reply.get("value") if isinstance(reply, dict) else None
            return DatasetItem(
                prompt, out if isinstance(out, str) else None, "sharegpt", "sharegpt", line
            )
    return None  # conversations that never have a user turn carry no prompt: skipped


def _text(obj: dict[str, Any], key: str, where: str) -> str:
    value = obj[key]
    if not isinstance(value, str):
        raise DataError(f"{where}: {key} must be a string, got {type(value).__name__}")
    return value

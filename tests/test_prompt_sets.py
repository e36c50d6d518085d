"""The prompt sets shipped with dsd: unchanged upstream files with their licences, found by
name from any working directory."""

from __future__ import annotations

import gzip
import hashlib
import re
from pathlib import Path

import pytest

from dsd.cli.main import main
from dsd.errors import DataError
from dsd.workload import read_trace
from dsd.workload.prompt_sets import SHIPPED, dataset_path, prompt_set_name

DATA = Path(dataset_path("gsm8k")).parent
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


def _provenance() -> dict[str, tuple[int, str]]:
    """file -> (rows, sha256) from the table in PROVENANCE.md."""
    rows = {}
    for line in (DATA / "PROVENANCE.md").read_text().splitlines():
        m = re.match(r"\| (\S+\.jsonl\.gz) \|.*\| (\d+) \| ([0-9a-f]{64}) \|$", line)
        if m:
            rows[m[1]] = (int(m[2]), m[3])
    return rows


def test_shipped_files_match_their_provenance():
    table = _provenance()
    assert set(table) == set(SHIPPED.values())
    for name, (rows, sha) in table.items():
        raw = gzip.decompress((DATA / name).read_bytes())
        assert hashlib.sha256(raw).hexdigest() == sha, name
        assert raw.count(b"\n") == rows, name
        shared = SHARED / name.removesuffix(".gz")
        if shared.is_file():  # the reference copy beside the repository, when present
            assert shared.read_bytes() == raw
    assert "MIT License" in (DATA / "LICENSE-GSM8K").read_text()
    assert "Copyright (c) 2021 OpenAI" in (DATA / "LICENSE-GSM8K").read_text()
    assert "Apache License" in (DATA / "LICENSE-Spec-Bench").read_text()


def test_names_paths_and_unknowns(tmp_path, monkeypatch):
    assert prompt_set_name("GSM8K") == "gsm8k" and prompt_set_name("Spec-Bench") == "specbench"
    assert prompt_set_name("human-eval") == "humaneval" and prompt_set_name("x") is None
    own = tmp_path / "gsm8k"  # a file of that name wins over the shipped set
    own.write_text('{"prompt": "hi"}\n')
    monkeypatch.chdir(tmp_path)
    assert dataset_path("gsm8k") == Path("gsm8k")
    with pytest.raises(DataError, match="not a prompt set name"):
        dataset_path("nope.jsonl")


def test_trace_by_name_from_any_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["trace", "specbench", "--out", "t.jsonl", "--limit", "7"]) == 0
    assert len(list(read_trace(tmp_path / "t.jsonl"))) == 7
    assert "wrote 7 records" in capsys.readouterr().out

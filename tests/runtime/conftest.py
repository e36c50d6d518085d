"""Shared fixtures for runtime tests: tiny models built in memory, servers on OS ports."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("grpc")


@pytest.fixture(scope="session")
def tiny():
    """(tokenizer, target_model, draft_model) - a 259-token byte-level Llama pair."""
    from dsd.runtime.tiny import build_pair, build_tokenizer

    tok = build_tokenizer()
    target, draft = build_pair(len(tok), seed=0)
    return tok, target, draft


@pytest.fixture(scope="session")
def runners(tiny):
    from dsd.runtime.backend import runner_from_model

    tok, target, draft = tiny
    return (runner_from_model(target, tok, "tiny-target"),
            runner_from_model(draft, tok, "tiny-draft"))

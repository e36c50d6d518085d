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


# Engines the hardening tests run against; they see only the HTTP API and the gRPC protocol,
# so another backend joins by adding its name here and a branch in `backend_runners`.
HARDENING_BACKENDS = ["hf"]


@pytest.fixture(scope="session", params=HARDENING_BACKENDS)
def backend_runners(request, runners):
    """(target_runner, draft_runner) of the tiny pair on the backend under test."""
    if request.param == "hf":
        return runners
    raise NotImplementedError(request.param)

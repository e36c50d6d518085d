"""Shared fixtures for runtime tests: tiny models built in memory, servers on OS ports."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("grpc")

from backend_helpers import HAVE_LLAMA, tiny_dir  # noqa: E402

# The tiny models' forwards are a few hundred microseconds: on a 2-core machine shared with
# other jobs a second torch thread mostly waits at barriers for the OS to run it (a target-
# only run of 8 x 40 tokens: 6.6 s on 2 threads, 0.43 s on 1), and llama.cpp runs beside.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny():
    """(tokenizer, target_model, draft_model) - a 259-token byte-level Llama pair."""
    from dsd.runtime.tiny import build_pair, build_tokenizer

    tok = build_tokenizer()
    target, draft = build_pair(len(tok), seed=0)
    return tok, target, draft


@pytest.fixture(scope="session")
def runners(tiny):
    """(target, draft) of the tiny pair on the HF transformers backend."""
    from dsd.runtime.backends.hf import HFBackend

    tok, target, draft = tiny
    return (HFBackend(target, tok, "tiny-target"),
            HFBackend(draft, tok, "tiny-draft"))


@pytest.fixture(scope="session")
def llama_runners():
    """(target, draft) of the same tiny pair as GGUF on llama.cpp (`dsd models tiny
    --gguf`): f32 KV cache, so its logits match HF transformers to ~1e-5."""
    if not HAVE_LLAMA:
        pytest.skip("llama-cpp-python is not installed (pip install 'dsd[llamacpp]')")
    from dsd.runtime.backends import load_backend

    root = tiny_dir()
    pair = tuple(load_backend(root / f"{which}.gguf", "llamacpp", n_threads=1,
                              kv_tokens=65536, max_sessions=256, kv_type="f32",
                              name=f"tiny-{which}")
                 for which in ("target", "draft"))
    yield pair
    for backend in pair:
        backend.close()


# Engines the hardening tests that exercise the engine (sessions, steps, KV, admission,
# isolation) run against; the tests of HTTP, TLS and protocol validation alone take `runners`
# (HF) only, which keeps CI time in check.
HARDENING_BACKENDS = ["hf", "llamacpp"]


@pytest.fixture(scope="session", params=HARDENING_BACKENDS)
def backend_runners(request):
    """(target, draft) of the tiny pair on the engine under test."""
    if request.param == "hf":
        return request.getfixturevalue("runners")
    return request.getfixturevalue("llama_runners")

"""Helpers for the backend tests: the tiny pair on disk in both formats, one copy per run."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

import pytest

try:
    import llama_cpp  # noqa: F401

    HAVE_LLAMA = True
except Exception:  # not installed, or its shared library does not load
    HAVE_LLAMA = False

needs_llama = pytest.mark.skipif(
    not HAVE_LLAMA, reason="llama-cpp-python is not installed (pip install 'dsd[llamacpp]')")

# hf-sequential: one forward per session instead of one padded forward;
# llamacpp-streams: one KV stream per session (kv_unified=False) instead of one shared pool
KINDS = ["hf", "hf-sequential", pytest.param("llamacpp", marks=needs_llama),
         pytest.param("llamacpp-streams", marks=needs_llama)]


@functools.cache
def tiny_dir() -> Path:
    """DIR with target/, draft/ (HF) and target.gguf, draft.gguf: the same tiny weights."""
    from dsd.cli.main import main

    root = Path(tempfile.mkdtemp(prefix="dsd-tiny-"))
    atexit.register(shutil.rmtree, root, True)
    assert main(["models", "tiny", str(root), "--gguf"]) == 0
    return root


def open_backend(kind: str, which: str = "target", **options):
    from dsd.runtime.backends import load_backend

    root = tiny_dir()
    if kind.startswith("llamacpp"):
        options.setdefault("n_threads", 1)
        options.setdefault("kv_unified", kind == "llamacpp")
        return load_backend(root / f"{which}.gguf", "llamacpp", **options)
    if kind == "hf-sequential":
        options.setdefault("batching", "sequential")
    return load_backend(root / which, "hf", device="cpu", **options)

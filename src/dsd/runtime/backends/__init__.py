"""Inference engines behind one seam (`base.Backend`); `load_backend` picks one for a path.

`backend="auto"` picks by file type: a `.gguf` file runs on llama.cpp, a directory with a
`config.json` on HF transformers. `backend="hf"` also loads a `.gguf` (dequantized by
transformers), and `backend="llamacpp"` needs a `.gguf` file.
"""

from __future__ import annotations

from pathlib import Path

from dsd.runtime.backends.base import (
    Backend,
    BackendError,
    KVBudgetError,
    KVHandle,
    Step,
    tokenizer_fingerprint,
)

BACKENDS = ("auto", "hf", "llamacpp")

__all__ = ["BACKENDS", "Backend", "BackendError", "KVBudgetError", "KVHandle", "Step",
           "load_backend", "resolve_backend", "tokenizer_fingerprint"]


def resolve_backend(path: str | Path, backend: str = "auto") -> str:
    """The engine `load_backend` would use for `path`: "hf" or "llamacpp"."""
    if backend not in BACKENDS:
        raise BackendError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    path = Path(path).expanduser()
    if not path.exists():
        raise BackendError(f"model path {path} does not exist (a .gguf file or a model directory)")
    is_gguf = path.is_file() and path.suffix == ".gguf"
    if backend == "auto":
        return "llamacpp" if is_gguf else "hf"
    if backend == "llamacpp" and not is_gguf:
        raise BackendError(f"the llama.cpp backend needs a .gguf file, got {path}")
    return backend


def load_backend(path: str | Path, backend: str = "auto", **options) -> Backend:
    """Load a model for the runtime. `options` go to the engine's loader:
    hf: device, dtype, name, kv_capacity, max_sessions, batching;
    llamacpp: kv_tokens, max_sessions, n_batch, n_threads, kv_type, flash_attn, kv_unified,
    name."""
    kind = resolve_backend(path, backend)
    if kind == "llamacpp":
        from dsd.runtime.backends.llamacpp import LlamaCppBackend

        return LlamaCppBackend(path, **options)
    from dsd.runtime.backends.hf import load_hf

    return load_hf(path, **options)

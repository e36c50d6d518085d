"""llama.cpp backend (llama-cpp-python's low-level ctypes API).

One llama context holds every session: a session is a sequence id (`seq_id`) in one KV cache
that all sequences share (`kv_unified`), so the KV budget is the context's `n_ctx` cells
across sessions, used as sessions need them. A ragged batch goes into ONE `llama_batch`:
each session's new tokens with their own positions and seq_id, flagged for logits only at
the positions asked for. No padding, no KV copies: attention masks by sequence inside the
engine. A rejected draft is trimmed with `llama_memory_seq_rm`, and a released session's
cells are freed the same way. A batch longer than `n_batch` tokens is fed in several
`llama_decode` calls (the KV cache carries over between them).

The batch arrays are numpy buffers owned here and pointed to by one `llama_batch` struct, so
filling a step is a few vectorized copies rather than a ctypes call per token. A llama
context is not thread-safe: call a backend from one thread at a time.

Flash attention is off by default (as in llama-cpp-python's `Llama`): on CPU it rounds
attention in f16 and its result depends on where a sequence's cells sit in the shared KV
cache, so the same tokens' logits move by ~1e-3 between batch compositions (tests measure
1e-5 without it). That is enough to flip a greedy near-tie, i.e. to break token-for-token
equality with target-only decoding. The f16 KV cache rounds each cell once, the same in
every batch, so it stays the default (`kv_type="f32"` matches HF transformers to ~1e-5).

Micro-batches: llama.cpp computes a batch in micro-batches of `n_ubatch` tokens, and on
quantized weights its CPU kernels give a token's logits that depend on how many tokens
its micro-batch holds (Qwen2.5-Coder-1.5B Q4_K_M: up to ~0.6 apart between one token alone
and the same token beside others; f32 weights: ~1e-5; a known llama.cpp property, issue
4479). Verifying a draft in one micro-batch is then lossless with respect to those
batched logits, but its greedy output can differ from plain one-token-at-a-time decoding
where two tokens nearly tie. `n_ubatch=1` computes every token alone: logits and greedy
output equal plain decoding bit for bit, for the price of one weight pass per token (on
one CPU core no price: there a pass over k tokens costs about k passes anyway, the
kernels being compute-bound). `n_ubatch="auto"` (the default) is 1 for quantized GGUFs
and the whole batch for f32/f16/bf16 weights, whose batched logits agree to ~1e-5.
"""

from __future__ import annotations

import ctypes
import logging
import threading
from pathlib import Path

import numpy as np
import torch

from dsd.runtime.backends.base import (
    Backend,
    BackendError,
    KVBudgetError,
    KVHandle,
    Step,
    tokenizer_fingerprint,
)

log = logging.getLogger("dsd.runtime.backends.llamacpp")

MAX_SEQUENCES = 256  # llama.cpp's LLAMA_MAX_SEQ
FLOAT_FILE_TYPES = {0, 1, 32, None}  # general.file_type: ALL_F32, MOSTLY_F16, MOSTLY_BF16
KV_TYPES = {"f16": 1, "f32": 0}  # ggml_type of the KV cache (GGML_TYPE_F16, GGML_TYPE_F32)
_LOG_LEVELS = {3: logging.WARNING, 4: logging.ERROR}  # ggml_log_level WARN, ERROR

_init_lock = threading.Lock()
_initialised = False
_log_callback = None  # the ctypes callback must outlive every llama.cpp call


def _lib():
    """Import llama_cpp once, route its log to Python logging, init the ggml backends."""
    global _initialised, _log_callback
    try:
        import llama_cpp
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise BackendError(
            "the llama.cpp backend needs llama-cpp-python: pip install 'dsd[llamacpp]' "
            f"({exc})") from None
    with _init_lock:
        if not _initialised:
            engine_log = logging.getLogger("dsd.llama_cpp")

            @llama_cpp.llama_log_callback
            def _route(level, text, _user):
                msg = text.decode("utf-8", errors="replace").rstrip()
                if msg:
                    engine_log.log(_LOG_LEVELS.get(level, logging.DEBUG), msg)

            _log_callback = _route
            llama_cpp.llama_log_set(_log_callback, ctypes.c_void_p(0))
            llama_cpp.llama_backend_init()
            _initialised = True
    return llama_cpp


class LlamaKV(KVHandle):
    __slots__ = ("seq_id",)

    def __init__(self, backend: Backend, seq_id: int) -> None:
        super().__init__(backend)
        self.seq_id = seq_id


class _Model:
    """Owns the llama_model and llama_context pointers; frees them once."""

    def __init__(self, lib, model, ctx) -> None:
        self.lib, self.model, self.ctx = lib, model, ctx

    def free(self) -> None:
        if self.ctx:
            self.lib.llama_free(self.ctx)
            self.ctx = None
        if self.model:
            self.lib.llama_model_free(self.model)
            self.model = None

    def __del__(self) -> None:  # pragma: no cover - best effort at interpreter exit
        try:
            self.free()
        except Exception:
            pass


class _Batch:
    """A llama_batch over numpy arrays we own (one seq_id per token)."""

    def __init__(self, lib, capacity: int) -> None:
        self.capacity = capacity
        self.token = np.zeros(capacity, dtype=np.int32)
        self.pos = np.zeros(capacity, dtype=np.int32)
        self.n_seq_id = np.ones(capacity, dtype=np.int32)
        self.seq = np.zeros(capacity, dtype=np.int32)
        self.logits = np.zeros(capacity, dtype=np.int8)
        i32 = ctypes.POINTER(ctypes.c_int32)
        base = self.seq.ctypes.data
        self._seq_ptrs = (i32 * capacity)(*[ctypes.cast(base + 4 * i, i32)
                                            for i in range(capacity)])
        self.struct = lib.llama_batch()
        self.struct.token = self.token.ctypes.data_as(i32)
        self.struct.embd = ctypes.POINTER(ctypes.c_float)()
        self.struct.pos = self.pos.ctypes.data_as(i32)
        self.struct.n_seq_id = self.n_seq_id.ctypes.data_as(i32)
        self.struct.seq_id = ctypes.cast(self._seq_ptrs, ctypes.POINTER(i32))
        self.struct.logits = self.logits.ctypes.data_as(ctypes.POINTER(ctypes.c_int8))


class LlamaCppBackend(Backend):
    def __init__(
        self,
        path: str | Path,
        kv_tokens: int = 16384,
        max_sessions: int = 64,
        n_batch: int = 512,
        n_threads: int | None = None,
        kv_type: str = "f16",
        flash_attn: bool | None = False,
        kv_unified: bool = True,
        name: str | None = None,
        repack: bool = True,
        n_ubatch: int | str = "auto",
    ) -> None:
        super().__init__()
        lib = _lib()
        path = Path(path).expanduser()
        if not path.is_file():
            raise BackendError(f"GGUF file {path} does not exist")
        if not 1 <= max_sessions <= MAX_SEQUENCES:
            raise BackendError(f"max_sessions must be in [1, {MAX_SEQUENCES}] for llama.cpp")
        if kv_type not in KV_TYPES:
            raise BackendError(f"kv_type must be one of {', '.join(KV_TYPES)}, got {kv_type!r}")
        mparams = lib.llama_model_default_params()
        mparams.n_gpu_layers = 0
        mparams.use_extra_bufts = repack
        model = lib.llama_model_load_from_file(str(path).encode(), mparams)
        if not model:
            raise BackendError(f"llama.cpp cannot load {path} (not a valid GGUF model?)")
        threads = n_threads or _default_threads()
        cparams = lib.llama_context_default_params()
        cparams.n_ctx = kv_tokens
        n_batch = max(n_batch, max_sessions)  # llama.cpp sizes outputs for a token per sequence
        cparams.n_batch = n_batch
        if n_ubatch == "auto":  # exact on quantized weights (module docstring)
            n_ubatch = 1 if _file_type(lib, model) not in FLOAT_FILE_TYPES else n_batch
        if not isinstance(n_ubatch, int) or n_ubatch < 1:
            lib.llama_model_free(model)
            raise BackendError(f"n_ubatch must be 'auto' or a positive integer, got {n_ubatch!r}")
        cparams.n_ubatch = min(n_batch, n_ubatch)
        cparams.n_seq_max = max_sessions
        cparams.n_outputs_max_per_seq = 0  # a verify wants gamma + 1 rows of one sequence
        cparams.type_k = cparams.type_v = KV_TYPES[kv_type]
        if flash_attn is not None:  # None: llama.cpp decides (on, for CPU)
            cparams.flash_attn_type = int(flash_attn)
        cparams.n_threads = threads
        cparams.n_threads_batch = threads
        cparams.kv_unified = kv_unified
        cparams.no_perf = True
        ctx = lib.llama_init_from_model(model, cparams)
        if not ctx:
            lib.llama_model_free(model)
            raise BackendError(f"llama.cpp cannot create a context for {path} "
                               f"(n_ctx={kv_tokens}, n_seq_max={max_sessions})")
        self._lib = lib
        self._own = _Model(lib, model, ctx)
        self._mem = lib.llama_get_memory(ctx)
        vocab = lib.llama_model_get_vocab(model)
        from dsd.runtime.backends.gguf_tokenizer import GGUFTokenizer

        self.tokenizer = GGUFTokenizer(lib, model, vocab, owner=self._own)
        self.name = name or path.stem
        self.path = path
        self.vocab_size = int(lib.llama_vocab_n_tokens(vocab))
        self.kv_capacity = int(lib.llama_n_ctx(ctx))
        per_session = int(lib.llama_n_ctx_seq(ctx))  # n_ctx unified, n_ctx / n_seq_max split
        self.max_context = min(per_session, int(lib.llama_model_n_ctx_train(model)))
        self.max_sessions = max_sessions
        self.n_batch = int(lib.llama_n_batch(ctx))
        self.n_threads = threads
        self.fingerprint = tokenizer_fingerprint(self.tokenizer)
        self.eos_ids = frozenset(self.tokenizer.eog_ids())
        self.n_ubatch = int(lib.llama_n_ubatch(ctx))
        self._options = {"kv_type": kv_type, "flash_attn": flash_attn, "kv_unified": kv_unified,
                         "repack": repack, "n_ubatch": n_ubatch}
        self._free_seqs = list(range(max_sessions - 1, -1, -1))
        self._batch = _Batch(lib, self.n_batch)

    # ---- sessions -------------------------------------------------------------------------

    def _new_kv(self) -> LlamaKV:
        self._check_open()
        if not self._free_seqs:  # the base class checks max_sessions first
            raise KVBudgetError(f"{self.name}: no free llama.cpp sequence")
        return LlamaKV(self, self._free_seqs.pop())

    def _crop(self, kv: LlamaKV, n: int) -> None:
        self._check_open()
        if not self._lib.llama_memory_seq_rm(self._mem, kv.seq_id, n, -1):
            raise BackendError(f"llama.cpp could not trim sequence {kv.seq_id} to {n} tokens")

    def _release(self, kv: LlamaKV) -> None:
        if self._own.ctx is not None:  # after close() the whole context is gone already
            self._lib.llama_memory_seq_rm(self._mem, kv.seq_id, -1, -1)  # never fails
        self._free_seqs.append(kv.seq_id)

    def isolated(self, kv_tokens: int, max_sessions: int, n_batch: int = 512) -> LlamaCppBackend:
        """A second context on the same GGUF (llama.cpp maps the file: the weights' pages
        are shared). Its own KV pool: in one pool every query attends over all used cells,
        so another session's idle cache would slow the steps being measured."""
        return LlamaCppBackend(self.path, kv_tokens=kv_tokens, max_sessions=max_sessions,
                               n_batch=n_batch, n_threads=self.n_threads, name=self.name,
                               **self._options)

    def close(self) -> None:
        """Free the context and the model; later calls raise, releases are no-ops."""
        self._own.free()

    def _check_open(self) -> None:
        if self._own.ctx is None:
            raise BackendError(f"{self.name}: backend is closed")

    # ---- the ragged forward ---------------------------------------------------------------

    def _forward(self, steps: list[Step]) -> list[torch.Tensor]:
        self._check_open()
        sizes = [len(s.tokens) for s in steps]
        total = sum(sizes)
        tokens = np.fromiter((t for s in steps for t in s.tokens), dtype=np.int32, count=total)
        seq = np.repeat(np.array([s.kv.seq_id for s in steps], dtype=np.int32), sizes)
        starts = np.repeat(np.array([s.kv.length for s in steps], dtype=np.int32), sizes)
        offsets = np.repeat(np.cumsum([0] + sizes[:-1]).astype(np.int32), sizes)
        pos = starts + np.arange(total, dtype=np.int32) - offsets
        want = np.zeros(total, dtype=np.int8)
        ends = np.cumsum(sizes)
        for step, end in zip(steps, ends, strict=True):
            want[end - step.n_keep:end] = 1
        rows = self._decode(tokens, pos, seq, want, steps)
        out, row = [], 0
        for step in steps:
            k = step.n_keep
            out.append(torch.from_numpy(rows[row:row + k]))
            row += k
        return out

    def _decode(self, tokens, pos, seq, want, steps) -> np.ndarray:
        lib, ctx, b = self._lib, self._own.ctx, self._batch
        vocab = self.vocab_size
        n_out = int(want.sum())
        rows = np.empty((n_out, vocab), dtype=np.float32)
        got = 0
        for start in range(0, len(tokens), b.capacity):
            stop = min(start + b.capacity, len(tokens))
            n = stop - start
            b.token[:n] = tokens[start:stop]
            b.pos[:n] = pos[start:stop]
            b.seq[:n] = seq[start:stop]
            b.logits[:n] = want[start:stop]
            b.struct.n_tokens = n
            rc = lib.llama_decode(ctx, b.struct)
            if rc != 0:
                for step in steps:  # whatever was decoded goes: caches stay as before the batch
                    lib.llama_memory_seq_rm(self._mem, step.kv.seq_id, step.kv.length, -1)
                if rc == 1:
                    raise KVBudgetError(f"{self.name}: llama.cpp found no KV slot for "
                                        f"{len(tokens)} tokens (n_ctx {self.kv_capacity})")
                raise BackendError(f"{self.name}: llama_decode failed with code {rc}")
            k = int(want[start:stop].sum())
            if k:
                ptr = lib.llama_get_logits(ctx)
                rows[got:got + k] = np.ctypeslib.as_array(ptr, shape=(k, vocab))
                got += k
        return rows


def _file_type(lib, model) -> int | None:
    """The GGUF's `general.file_type` (llama_ftype), None when absent."""
    buf = ctypes.create_string_buffer(32)
    if lib.llama_model_meta_val_str(model, b"general.file_type", buf, len(buf)) <= 0:
        return None
    try:
        return int(buf.value)
    except ValueError:
        return None


def _default_threads() -> int:
    import os

    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)

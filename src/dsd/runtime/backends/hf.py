"""HF transformers backend, on transformers' public API only.

Each session owns a `DynamicCache`; every forward passes it to the model, which appends
in place (the argument is `cache` since transformers 5.2x, `past_key_values` before: the
name is read from the model's signature). `Cache.crop` trims it and `logits_to_keep`
limits the LM head to the positions asked for.

`Cache.crop` takes a negative count (tokens to remove): transformers 5.x refuses a positive
one, and 4.x reads a negative one the same way, so it is the one form both accept.

A ragged batch of sessions that all hold tokens runs as ONE padded forward
(`batching="padded"`, the default): the caches are read by iterating them and stacked
left-padded into a fresh `DynamicCache` with `Cache.update`, the queries right-padded, an
attention mask hides the padding and position ids continue each session's own sequence;
each session then gets a new cache of its own rows (`Cache.update` again). That copies every
session's KV twice per step, which is what the llama.cpp backend avoids; but one weight pass
for the batch instead of one per session is worth it on CPU (docs/backends.md has the
figures). `batching="sequential"` runs one forward per session: no padding, no copies.
Empty sessions (prefills) and steps longer than a verify (prefill chunks) always run on
their own: padding the others to them would multiply the batch's work.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import torch

from dsd.runtime.backends.base import Backend, BackendError, KVHandle, Step, tokenizer_fingerprint

PADDED_MAX_TOKENS = 33  # the longest step that joins the padded batch (gamma 32 + 1)

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
          "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}


class HFKV(KVHandle):
    __slots__ = ("cache",)

    def __init__(self, backend: Backend) -> None:
        super().__init__(backend)
        self.cache = None  # a transformers DynamicCache once the session has tokens


class HFBackend(Backend):
    def __init__(
        self,
        model,
        tokenizer,
        name: str = "model",
        kv_capacity: int | None = None,
        max_sessions: int | None = None,
        batching: str = "padded",
    ) -> None:
        super().__init__()
        if batching not in ("padded", "sequential"):
            raise BackendError(f"batching must be 'padded' or 'sequential', got {batching!r}")
        self.batching = batching
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.device = next(model.parameters()).device
        cfg = model.config
        head = model.get_output_embeddings()
        self.vocab_size = int(getattr(head, "out_features", None) or cfg.vocab_size)
        self.max_context = int(getattr(cfg, "max_position_embeddings", None) or 4096)
        self.fingerprint = tokenizer_fingerprint(tokenizer) if tokenizer is not None else ""
        self.eos_ids = frozenset(_eos_ids(model, tokenizer))
        self.kv_capacity = kv_capacity
        self.max_sessions = max_sessions
        params = inspect.signature(model.forward).parameters
        self._cache_arg = "cache" if "cache" in params else "past_key_values"

    def _new_kv(self) -> HFKV:
        return HFKV(self)

    @torch.inference_mode()
    def _forward(self, steps: list[Step]) -> list[torch.Tensor]:
        out: dict[int, torch.Tensor] = {}
        # Pad together only short steps (verifies): a prefill chunk would pad every row of
        # the batch to its length, and every cache to the longest one.
        cached = [i for i, s in enumerate(steps)
                  if s.kv.length > 0 and len(s.tokens) <= PADDED_MAX_TOKENS]
        if self.batching == "padded" and len(cached) > 1:
            rows = self._padded([steps[i] for i in cached])  # touches no cache if it fails
            out.update(zip(cached, rows, strict=True))
        done: list[Step] = []
        try:
            for i, step in enumerate(steps):
                if i not in out:
                    done.append(step)
                    out[i] = self._one(step.kv, step.tokens, step.n_keep)
        except Exception:
            for step in done:  # leave every cache as it was before the batch
                if step.kv.cache is not None:
                    self._crop(step.kv, step.kv.length)
            raise
        return [out[i] for i in range(len(steps))]

    def _padded(self, steps: list[Step]) -> list[torch.Tensor]:
        """One forward for sessions that all hold tokens (see the module docstring)."""
        from transformers import DynamicCache

        dev, bsz = self.device, len(steps)
        lmax = max(s.kv.length for s in steps)
        qmax = max(len(s.tokens) for s in steps)
        batch = DynamicCache()
        per_session = [list(s.kv.cache) for s in steps]  # per layer: (keys, values, ...)
        for layer in range(len(per_session[0])):
            k0, v0 = per_session[0][layer][:2]
            keys = k0.new_zeros((bsz, k0.shape[1], lmax, k0.shape[3]))
            vals = v0.new_zeros((bsz, v0.shape[1], lmax, v0.shape[3]))
            for row, step in enumerate(steps):
                k, v = per_session[row][layer][:2]
                keys[row, :, lmax - step.kv.length:] = k[0, :, :step.kv.length]
                vals[row, :, lmax - step.kv.length:] = v[0, :, :step.kv.length]
            batch.update(keys, vals, layer)
        ids = torch.zeros((bsz, qmax), dtype=torch.long, device=dev)
        mask = torch.zeros((bsz, lmax + qmax), dtype=torch.long, device=dev)
        pos = torch.zeros((bsz, qmax), dtype=torch.long, device=dev)
        for row, step in enumerate(steps):
            n, length = len(step.tokens), step.kv.length
            ids[row, :n] = torch.tensor(list(step.tokens), dtype=torch.long)
            mask[row, lmax - length:lmax + n] = 1
            pos[row] = torch.arange(length, length + qmax)
        res = self.model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True,
                         logits_to_keep=qmax, **{self._cache_arg: batch})
        layers = [kv[:2] for kv in batch]
        out = []
        for row, step in enumerate(steps):
            n, length = len(step.tokens), step.kv.length
            start, stop = lmax - length, lmax + n
            own = DynamicCache()
            for layer, (k, v) in enumerate(layers):
                own.update(k[row:row + 1, :, start:stop], v[row:row + 1, :, start:stop], layer)
            step.kv.cache = own
            out.append(res.logits[row, n - step.n_keep:n].float().cpu())
        return out

    def _one(self, kv: HFKV, tokens, keep: int) -> torch.Tensor:
        from transformers import DynamicCache

        n = len(tokens)
        ids = torch.tensor([list(tokens)], dtype=torch.long, device=self.device)
        pos = torch.arange(kv.length, kv.length + n, device=self.device).unsqueeze(0)
        if kv.cache is None:
            kv.cache = DynamicCache()
        res = self.model(input_ids=ids, position_ids=pos, use_cache=True,
                         logits_to_keep=max(keep, 1),  # 0 would mean "all"
                         **{self._cache_arg: kv.cache})
        logits = res.logits[0, res.logits.shape[1] - keep:]
        return logits.float().cpu()

    def _crop(self, kv: HFKV, n: int) -> None:
        if n == 0:
            kv.cache = None
            return
        cached = kv.cache.get_seq_length()
        if cached > n:
            kv.cache.crop(n - cached)  # negative: the number of tokens to remove

    def _release(self, kv: HFKV) -> None:
        kv.cache = None


def _eos_ids(model, tokenizer) -> set[int]:
    ids: set[int] = set()
    gen = getattr(model, "generation_config", None)
    for src in (getattr(gen, "eos_token_id", None), getattr(tokenizer, "eos_token_id", None)):
        if isinstance(src, int):
            ids.add(src)
        elif isinstance(src, (list, tuple)):
            ids.update(int(x) for x in src)
    return ids


def load_hf(
    path: str | Path,
    device: str = "auto",
    dtype: str = "auto",
    name: str | None = None,
    kv_capacity: int | None = None,
    max_sessions: int | None = None,
    batching: str = "padded",
) -> HFBackend:
    """Load a transformers model directory (config.json) or a .gguf file (dequantized)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path).expanduser()
    kwargs = {}
    if path.is_file() and path.suffix == ".gguf":
        path, kwargs = path.parent, {"gguf_file": path.name}
    elif not (path / "config.json").is_file():
        raise BackendError(f"{path} has no config.json: not a transformers model directory")
    dev = _device(device)
    if dtype == "auto":
        tdtype = torch.float32 if dev.type == "cpu" else torch.bfloat16
    elif dtype in DTYPES:
        tdtype = DTYPES[dtype]
    else:
        raise BackendError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
    try:
        tok = AutoTokenizer.from_pretrained(str(path), **kwargs)
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=tdtype, device_map=dev,
                                                     **kwargs)
    except BaseException as exc:  # tokenizers' Rust side raises a BaseException on a panic
        if not isinstance(exc, Exception) and type(exc).__name__ != "PanicException":
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        where = path / kwargs["gguf_file"] if kwargs else path
        raise BackendError(f"transformers cannot load {where}: {first}") from None
    label = name or (Path(kwargs["gguf_file"]).stem if kwargs else path.name)
    return HFBackend(model, tok, label, kv_capacity=kv_capacity, max_sessions=max_sessions,
                     batching=batching)


def _device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BackendError(f"device {device!r} requested but CUDA is not available; use cpu")
    return torch.device(device)

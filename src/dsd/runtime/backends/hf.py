"""HF transformers backend, on transformers' public API only.

Each session owns a `DynamicCache`; every forward passes it to the model, which appends
in place (the argument is `cache` since transformers 5.2x, `past_key_values` before: the
name is read from the model's signature). `Cache.crop` trims it and `logits_to_keep`
limits the LM head to the positions asked for.

`Cache.crop` takes a negative count (tokens to remove): transformers 5.x refuses a positive
one, and 4.x reads a negative one the same way, so it is the one form both accept.

A ragged batch runs one forward per session: no padding and no KV copies, at the price of
one weight pass per session instead of one per batch. The llama.cpp backend is the one that
batches ragged sessions into one engine step (see README, "Backends", for the measured cost).
"""

from __future__ import annotations

import inspect
from pathlib import Path

import torch

from dsd.runtime.backends.base import Backend, BackendError, KVHandle, Step, tokenizer_fingerprint

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
    ) -> None:
        super().__init__()
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
        out: list[torch.Tensor] = []
        try:
            for step in steps:
                out.append(self._one(step.kv, step.tokens, step.n_keep))
        except Exception:
            for step in steps[:len(out) + 1]:  # leave every cache as it was before the batch
                if step.kv.cache is not None:
                    self._crop(step.kv, step.kv.length)
            raise
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
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BackendError(f"cannot load model from {path}: {first}") from None
    label = name or (Path(kwargs["gguf_file"]).stem if kwargs else path.name)
    return HFBackend(model, tok, label, kv_capacity=kv_capacity, max_sessions=max_sessions)


def _device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BackendError(f"device {device!r} requested but CUDA is not available; use cpu")
    return torch.device(device)

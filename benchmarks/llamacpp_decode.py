"""Plain decoding speed of GGUF models on the llama.cpp backend, one CPU core.

For each model: target-only greedy decoding through the backend (`spec_loop.generate` with
no draft) of `--tokens` tokens after a chat prompt, and the cost of one forward of k tokens
in one sequence (k = 1, 5, 20, 64) at a 64-token context: how much one core gains from
feeding several tokens at once, the ceiling of any batching. The process pins itself to
`--core`; llama.cpp and torch use one thread. Medians of `--reps`; the models alternate.

    python benchmarks/llamacpp_decode.py .cache/models/qwen2.5-coder-0.5b-q4_k_m.gguf \
        .cache/models/qwen2.5-coder-1.5b-q4_k_m.gguf [--tokens 32] [--reps 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

WIDTHS = (1, 5, 20, 64)


def decode_s_per_token(backend, tokens: int) -> float:
    from dsd.runtime.spec_loop import generate

    tok = backend.tokenizer
    chat = [{"role": "user", "content": "Write a Python function that checks for primes."}]
    text = tok.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    ids = tok(text, add_special_tokens=False).input_ids
    t0 = time.perf_counter()
    _, stats = generate(backend, None, [ids], tokens)
    return (time.perf_counter() - t0 - stats.prefill_s) / (tokens - 1)


def width_s(backend, kv, width: int, context: int = 64) -> float:
    t0 = time.perf_counter()
    backend.forward(kv, [(11 * j) % (backend.vocab_size - 3) for j in range(width)], keep=1)
    elapsed = time.perf_counter() - t0
    kv.crop(context)
    return elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--core", type=int, default=0)
    args = ap.parse_args()
    os.sched_setaffinity(0, {args.core})
    import torch

    torch.set_num_threads(1)
    from dsd.runtime.backends import load_backend

    backends = [load_backend(m, kv_tokens=1024, max_sessions=2, n_threads=1)
                for m in args.models]
    kvs = []
    for b in backends:
        kv = b.new_kv()
        b.prefill(kv, [(7 * j) % (b.vocab_size - 3) for j in range(64)])
        kvs.append(kv)
    decode = {b.name: [] for b in backends}
    widths = {(b.name, w): [] for b in backends for w in WIDTHS}
    for rep in range(args.reps):
        order = list(zip(backends, kvs, strict=True))
        for b, kv in order if rep % 2 == 0 else reversed(order):
            decode[b.name].append(decode_s_per_token(b, args.tokens))
            for w in WIDTHS:
                widths[(b.name, w)].append(width_s(b, kv, w))
    print(f"one core (core {args.core}), 1 thread; medians of {args.reps} reps")
    for b in backends:
        d = statistics.median(decode[b.name])
        print(f"{b.name}: decode {d * 1e3:.1f} ms/token = {1 / d:.1f} tokens/s "
              f"({args.tokens} tokens after a chat prompt)")
        row = ", ".join(f"{w} tokens {w / statistics.median(widths[(b.name, w)]):.1f}"
                        for w in WIDTHS)
        print(f"  one forward of k tokens in one sequence, tokens/s: {row}")
        b.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

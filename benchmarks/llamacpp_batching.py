"""Batching gain of the llama.cpp verifier: tokens/s at 32 concurrent sessions vs 1.

One CPU core: the process pins itself to `--core`; llama.cpp and torch use one thread each.
S=1 and S=32 alternate (1, 32, 32, 1, ...); medians over `--reps`, and the ratio.

loop (default): the in-process speculative loop (`dsd.runtime.spec_loop`) on the tiny GGUF
  pair (`dsd models tiny DIR --gguf`), greedy, gamma 4. Each round is one ragged draft
  `forward_batch` per draft position and ONE ragged target `forward_batch` for all
  sessions. Figure: accepted tokens (accepted drafts + the correction or bonus token) per
  second of verify time (target forward + verification math); the draft is not counted, as
  it runs on the edge.
verify (`--verify-only [--model X.gguf]`): the verify step alone on any GGUF (default the
  tiny target): S sessions holding `--context` tokens each verify gamma + 1 tokens in one
  `forward_batch`, then crop back. Figure: verified tokens per second.

    python benchmarks/llamacpp_batching.py [--reps 5] [--tokens 64]
    python benchmarks/llamacpp_batching.py --verify-only --model .cache/models/X.gguf \
        [--context 128] [--reps 3] [--no-kv-unified]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

TEXTS = ["The quick brown fox", "hello", "Once upon a time there was", "def f(x):\n  return",
         "1, 2, 3,", "zzz", "A longer prompt: sessions of different lengths", "import os"]


def loop_figure(target, draft, prompts, tokens: int, gamma: int) -> tuple[float, float]:
    """(accepted tokens per verify second, acceptance) of one speculative run."""
    from dsd.runtime.spec_loop import generate

    _, stats = generate(target, draft, prompts, tokens, gamma=gamma)
    return stats.emitted / stats.verify_s, stats.acceptance


def prefilled(target, sessions: int, context: int, offset: int = 0) -> list:
    """`sessions` KV handles holding `context` distinct prompt tokens each."""
    kvs = [target.new_kv() for _ in range(sessions)]
    for i, kv in enumerate(kvs):
        n = offset + i
        target.prefill(kv, [(7 * n + j) % (target.vocab_size - 1) for j in range(context)],
                       chunk=256)
    return kvs


def verify_figure(target, kvs: list, context: int, gamma: int, steps: int = 3) -> float:
    """Verified tokens per second: every session verifies gamma + 1 tokens in one step."""
    from dsd.runtime.backends import Step

    query = list(range(1, gamma + 2))
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        target.forward_batch([Step(kv, query) for kv in kvs])
        times.append(time.perf_counter() - t0)
        for kv in kvs:
            kv.crop(context)
    return len(kvs) * len(query) / statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", default="1,32")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--gamma", type=int, default=4)
    ap.add_argument("--core", type=int, default=0, help="CPU core to pin to (-1: no pinning)")
    ap.add_argument("--tokens", type=int, default=64, help="loop: tokens per session")
    ap.add_argument("--verify-only", action="store_true")
    ap.add_argument("--model", help="verify: a GGUF target (default: the tiny target)")
    ap.add_argument("--context", type=int, default=64, help="verify: tokens cached per session")
    ap.add_argument("--no-kv-unified", dest="kv_unified", action="store_false",
                    help="one KV stream per session instead of one shared pool")
    ap.add_argument("--flash-attn", action="store_true",
                    help="llama.cpp flash attention (faster over a big pool; not batch-invariant)")
    args = ap.parse_args()
    if args.core >= 0:
        os.sched_setaffinity(0, {args.core})
    import torch

    torch.set_num_threads(1)
    from dsd.runtime.backends import load_backend
    from dsd.runtime.tiny_gguf import write_tiny_gguf_pair

    sizes = [int(s) for s in args.sessions.split(",")]
    opts = {"max_sessions": max(sizes), "n_threads": 1, "kv_unified": args.kv_unified,
            "flash_attn": args.flash_attn}
    results: dict[int, list[float]] = {s: [] for s in sizes}
    with tempfile.TemporaryDirectory(prefix="dsd-bench-") as tmp:
        target_path, draft_path = write_tiny_gguf_pair(tmp)
        if args.verify_only:
            per = args.context + args.gamma + 1
            opts["max_sessions"] = sum(sizes)
            target = load_backend(args.model or target_path, kv_tokens=per * sum(sizes),
                                  **opts)
            what = f"{target.name}, verify of {args.gamma + 1} tokens at context {args.context}"
            unit = "verified tok/s"
            t0 = time.perf_counter()
            kvs = {s: prefilled(target, s, args.context, offset=sum(sizes[:i]))
                   for i, s in enumerate(sizes)}
            print(f"prefilled {sum(sizes)} sessions in {time.perf_counter() - t0:.0f}s",
                  flush=True)
            for rep in range(args.reps):
                for s in sizes if rep % 2 == 0 else reversed(sizes):
                    results[s].append(verify_figure(target, kvs[s], args.context, args.gamma))
            target.close()
        else:
            target = load_backend(target_path, kv_tokens=16384, **opts)
            draft = load_backend(draft_path, kv_tokens=16384, **opts)
            tok = target.tokenizer
            prompts = [tok(f"{TEXTS[i % len(TEXTS)]} {i}").input_ids for i in range(max(sizes))]
            what = f"tiny GGUF pair, speculative loop, {args.tokens} tokens per session"
            unit = "accepted tok/s"
            loop_figure(target, draft, prompts[:2], 8, args.gamma)  # warm-up
            for rep in range(args.reps):
                for s in sizes if rep % 2 == 0 else reversed(sizes):
                    results[s].append(loop_figure(target, draft, prompts[:s], args.tokens,
                                                  args.gamma)[0])
            target.close()
            draft.close()
    print(f"{what}; 1 core (core {args.core}), gamma {args.gamma}, kv_unified "
          f"{args.kv_unified}, flash_attn {args.flash_attn}; medians of {args.reps} "
          f"interleaved reps")
    med = {s: statistics.median(results[s]) for s in sizes}
    for s in sizes:
        print(f"  {s:3d} sessions: {med[s]:10.1f} {unit}")
    lo, hi = min(sizes), max(sizes)
    print(f"batching gain {hi} vs {lo} sessions: {med[hi] / med[lo]:.1f}x (goal >= 4x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

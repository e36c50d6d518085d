"""What batching costs and buys on the HF transformers backend (public API only).

padded: `backends.hf.HFBackend`, the sessions' verifies in one padded forward.
sequential: the same backend with `batching="sequential"`: one forward per session.
Both run the same verify step: `batch` sessions with `context` cached tokens each verify
gamma + 1 = 5 tokens, then crop back. The variants rotate in order every rep; medians and
the ratio sequential / padded are printed per (model, batch, context). Models are random
(weights do not change speed): `tiny` is the test pair's shape, `qwen0.5b` has
Qwen2.5-0.5B's shape. (Until the runtime moved onto the engine seam this benchmark also
timed the legacy backend, which used private transformers and torch internals; its figures
are in docs/backends.md.)

    python benchmarks/hf_backend_cost.py [--models tiny,qwen0.5b] [--batches 1,4,16]
        [--contexts 64,512] [--reps 7] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

QUERY = 5  # gamma + 1


def build(shape: str):
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    if shape == "tiny":
        from dsd.runtime.tiny import build_pair

        return build_pair(vocab_size=259, seed=0)[0]
    if shape == "qwen0.5b":
        cfg = Qwen2Config(vocab_size=151936, hidden_size=896, intermediate_size=4864,
                          num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                          max_position_embeddings=4096, tie_word_embeddings=True)
        return Qwen2ForCausalLM(cfg).eval()
    raise SystemExit(f"unknown model shape {shape!r}")


def verify_public(backend, prompts, query, ctx: int):
    from dsd.runtime.backends.base import Step

    kvs = [backend.new_kv() for _ in prompts]
    for p, kv in zip(prompts, kvs, strict=True):
        backend.prefill(kv, p)

    def run():
        backend.forward_batch([Step(kv, q) for kv, q in zip(kvs, query, strict=True)])
        for kv in kvs:
            kv.crop(ctx)

    def cleanup():
        for kv in kvs:
            kv.release()

    return run, cleanup


def rotated(runs: list, reps: int) -> list[float]:
    """Median seconds per run; the order rotates every rep, after one warm-up each."""
    times: list[list[float]] = [[] for _ in runs]
    for run in runs:
        run()
    for rep in range(reps):
        for k in range(len(runs)):
            i = (k + rep) % len(runs)
            t0 = time.perf_counter()
            runs[i]()
            times[i].append(time.perf_counter() - t0)
    return [statistics.median(t) for t in times]


def main() -> int:
    import torch

    from dsd.runtime.backends.hf import HFBackend

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="tiny,qwen0.5b")
    ap.add_argument("--batches", default="1,4,16")
    ap.add_argument("--contexts", default="64,512")
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch threads {args.threads}; verify of {QUERY} tokens per session; medians of "
          f"{args.reps} rotated reps (ms per step; ratio = sequential / padded)")
    print(f"{'model':9s} {'batch':>5s} {'ctx':>5s} {'padded':>9s} {'sequential':>10s} "
          f"{'ratio':>6s}")
    for shape in args.models.split(","):
        model = build(shape)
        padded = HFBackend(model, None, "b")
        sequential = HFBackend(model, None, "c", batching="sequential")
        gen = torch.Generator().manual_seed(1)
        vocab = padded.vocab_size
        for batch in (int(b) for b in args.batches.split(",")):
            for ctx in (int(c) for c in args.contexts.split(",")):
                prompts = [torch.randint(0, vocab, (ctx,), generator=gen).tolist()
                           for _ in range(batch)]
                query = [torch.randint(0, vocab, (QUERY,), generator=gen).tolist()
                         for _ in range(batch)]
                variants = [verify_public(padded, prompts, query, ctx),
                            verify_public(sequential, prompts, query, ctx)]
                b, c = rotated([run for run, _ in variants], args.reps)
                for _, cleanup in variants:
                    cleanup()
                print(f"{shape:9s} {batch:5d} {ctx:5d} {b * 1e3:9.1f} {c * 1e3:10.1f} "
                      f"{c / b:6.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

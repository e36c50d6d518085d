"""What the public-API HF backend costs against the legacy one (runtime/backend.py).

A: legacy `ModelRunner.forward_batch`: caches left-padded and stacked into one forward
   (private `DynamicCache(ddp_cache_data=)` / `layer.keys`), oneDNN-prepacked linears
   (private `torch.ops.mkldnn` ops).
B: `backends.hf.HFBackend.forward_batch`: public API only, one forward per session, plain
   nn.Linear.
Both run the same verify step: `batch` sessions with `context` cached tokens each verify
gamma + 1 = 5 tokens, then crop back. A and B alternate (A,B,B,A,...) and the medians and
B/A ratio are printed per (model, batch, context). Models are random (weights do not change
speed): `tiny` is the test pair's shape, `qwen0.5b` has Qwen2.5-0.5B's shape.

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


def steps(legacy, public, batch: int, ctx: int):
    """Prefill `batch` sessions of `ctx` tokens on both; return (run_a, run_b, cleanup)."""
    import torch

    from dsd.runtime.backend import KVState
    from dsd.runtime.backends.base import Step

    gen = torch.Generator().manual_seed(1)
    vocab = public.vocab_size
    prompts = [torch.randint(0, vocab, (ctx,), generator=gen).tolist() for _ in range(batch)]
    query = [torch.randint(0, vocab, (QUERY,), generator=gen).tolist() for _ in range(batch)]
    a_kvs = [KVState() for _ in prompts]
    b_kvs = [public.new_kv() for _ in prompts]
    for p, a, b in zip(prompts, a_kvs, b_kvs, strict=True):
        legacy.forward(a, p, keep=1)
        public.prefill(b, p)

    def run_a():
        legacy.forward_batch(list(zip(a_kvs, query, strict=True)))
        for kv in a_kvs:
            kv.crop(ctx)

    def run_b():
        public.forward_batch([Step(kv, q) for kv, q in zip(b_kvs, query, strict=True)])
        for kv in b_kvs:
            kv.crop(ctx)

    def cleanup():
        for kv in b_kvs:
            kv.release()

    return run_a, run_b, cleanup


def interleaved(run_a, run_b, reps: int) -> tuple[float, float]:
    """Median seconds of A and B, alternating A,B / B,A each rep after one warm-up each."""
    times = {run_a: [], run_b: []}
    run_a(), run_b()
    for rep in range(reps):
        for fn in (run_a, run_b) if rep % 2 == 0 else (run_b, run_a):
            t0 = time.perf_counter()
            fn()
            times[fn].append(time.perf_counter() - t0)
    return statistics.median(times[run_a]), statistics.median(times[run_b])


def main() -> int:
    import copy

    import torch

    from dsd.runtime.backend import runner_from_model
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
          f"{args.reps} interleaved reps (ms per step)")
    print(f"{'model':9s} {'batch':>5s} {'ctx':>5s} {'legacy A':>9s} {'public B':>9s} {'B/A':>6s}")
    for shape in args.models.split(","):
        model = build(shape)
        legacy = runner_from_model(copy.deepcopy(model), None, "a", prepack=True)
        public = HFBackend(model, None, "b")
        for batch in (int(b) for b in args.batches.split(",")):
            for ctx in (int(c) for c in args.contexts.split(",")):
                run_a, run_b, cleanup = steps(legacy, public, batch, ctx)
                a, b = interleaved(run_a, run_b, args.reps)
                cleanup()
                print(f"{shape:9s} {batch:5d} {ctx:5d} {a * 1e3:9.1f} {b * 1e3:9.1f} "
                      f"{b / a:6.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

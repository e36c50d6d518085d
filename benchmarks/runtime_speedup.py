"""Speedup of distributed speculative decoding vs target-only decoding on this machine.

Qwen2.5-Coder 0.5B (draft) / 1.5B (target), installed by scripts/install_qwen_pair.py.
Greedy, GSM8K prompts (chat template), one request at a time. Modes, interleaved per prompt
(the machine drifts +-30%, so A/B runs alternate and medians are reported):
  target    target-only decoding (cloud-only engine: gamma = 0 every round)
  rtt=X     edge + verifier over gRPC on loopback, X ms emulated RTT on the edge's link
Checks that every speculative output equals the target-only output token for token.

    python benchmarks/runtime_speedup.py [--prompts 6] [--max-tokens 64] [--rtts 0,10,25,50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def gsm8k(n: int) -> list[str]:
    """The first `n` GSM8K test questions (shipped with dsd)."""
    from itertools import islice

    from dsd.workload import iter_dataset
    from dsd.workload.prompt_sets import dataset_path

    return [item.prompt for item in islice(iter_dataset(dataset_path("gsm8k")), n)]


async def run(args) -> dict:
    from dsd.policies import BATCHERS, ROUTERS, WINDOWS
    from dsd.runtime.backends import load_backend
    from dsd.runtime.client import RemoteEndpoint
    from dsd.runtime.edge import EdgeEngine, RequestStats
    from dsd.runtime.fused import cloud_only_engine
    from dsd.runtime.scheduler import VerifierCore
    from dsd.runtime.speculative import SamplingParams
    from dsd.runtime.verifier import VerifierService, start_verifier_server

    cache = Path(args.cache)
    t0 = time.perf_counter()
    target = load_backend(cache / "qwen2.5-coder-1.5b", "hf", device="cpu")
    draft = load_backend(cache / "qwen2.5-coder-0.5b", "hf", device="cpu")
    print(f"loaded models in {time.perf_counter() - t0:.0f}s", flush=True)
    tok = target.tokenizer
    prompts = [tok.apply_chat_template([{"role": "user", "content": q}], tokenize=False,
                                       add_generation_prompt=True) for q in gsm8k(args.prompts)]
    prompt_ids = [tok(p, add_special_tokens=False).input_ids for p in prompts]

    cloud = cloud_only_engine(target)
    await cloud.start()
    core = VerifierCore(target, BATCHERS.create("fifo", max_batch=8))
    server, port = await start_verifier_server(VerifierService(core), "127.0.0.1", 0)
    rtts = [float(x) for x in args.rtts.split(",")]
    edges = {}
    for rtt in rtts:
        ep = RemoteEndpoint(0, f"127.0.0.1:{port}", emulate_rtt_s=rtt / 1e3)
        eng = EdgeEngine(draft, [ep], WINDOWS.create("static", gamma=args.gamma),
                         ROUTERS.create("jsq"), eos_ids=target.eos_ids)
        await eng.start()
        edges[rtt] = eng

    async def one(engine, ids):
        stats = RequestStats("b", time.perf_counter(), len(ids))
        out = []
        async for toks in engine.generate(ids, SamplingParams(), args.max_tokens,
                                          ignore_eos=True, stats=stats):
            out.extend(toks)
        return out, stats

    # warm-up
    await one(cloud, prompt_ids[0][:16])
    await one(edges[rtts[0]], prompt_ids[0][:16])

    rows = []
    for i, ids in enumerate(prompt_ids):
        ref, st = await one(cloud, ids)
        row = {"prompt": i, "prompt_tokens": len(ids), "target_s": st.e2e_s,
               "target_tpot_ms": st.tpot_s * 1e3}
        for rtt, eng in edges.items():
            out, s = await one(eng, ids)
            row[f"rtt{rtt:g}_s"] = s.e2e_s
            row[f"rtt{rtt:g}_acc"] = s.accepted / max(1, s.drafted)
            row[f"rtt{rtt:g}_exact"] = out == ref
            row[f"rtt{rtt:g}_speedup"] = st.e2e_s / s.e2e_s
        rows.append(row)
        print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v)
                          for k, v in row.items()}), flush=True)

    summary = {"prompts": len(rows), "max_tokens": args.max_tokens, "gamma": args.gamma,
               "target_tpot_ms_median": statistics.median(r["target_tpot_ms"] for r in rows)}
    for rtt in rtts:
        k = f"rtt{rtt:g}"
        summary[k] = {
            "speedup_median": statistics.median(r[f"{k}_speedup"] for r in rows),
            "acceptance_median": statistics.median(r[f"{k}_acc"] for r in rows),
            "all_exact": all(r[f"{k}_exact"] for r in rows),
        }
    for eng in edges.values():
        await eng.close()
    await cloud.close()
    await server.stop(0)
    await core.stop()
    return summary


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache", default=str(REPO / ".cache" / "models"))
    ap.add_argument("--prompts", type=int, default=6)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--gamma", type=int, default=4)
    ap.add_argument("--rtts", default="0,10,25,50")
    ap.add_argument("--out", default=None, help="write the summary JSON here")
    args = ap.parse_args()
    summary = asyncio.run(run(args))
    print(json.dumps(summary, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

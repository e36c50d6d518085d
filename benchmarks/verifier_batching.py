"""Batching gain of the verifier end to end: accepted tokens/s at N concurrent sessions vs 1.

The tiny GGUF pair (`dsd models tiny --gguf`), greedy. The verifier is `dsd serve verifier`
on llama.cpp pinned to `--verifier-core` (one thread); the edge (this process, its drafter
batching the sessions' drafts) is pinned to `--edge-core`. A closed loop of N clients, each
sending `--requests` requests of `--max-tokens` tokens (gamma `--gamma`), over gRPC on
loopback: the real scheduler, one ragged llama.cpp batch per step. Concurrencies alternate
(1, N, 1, N, ...) for `--reps` rounds; medians are reported.

Per run: accepted draft tokens/s and committed tokens/s at the verifier (from its
Prometheus counters over the run), its steps, mean sessions per step, and the share of the
wall time its core spent in the model forward (dsd_verifier_forward_seconds): what bounds
the gain.

    python benchmarks/verifier_batching.py [--sessions 32] [--reps 3] [--requests 4]
        [--max-tokens 64] [--gamma 4] [--kv-tokens 65536]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "benchmarks"))

from llamacpp_speedup import free_port, start  # noqa: E402

COUNTERS = {
    "accepted": "dsd_verifier_spec_decode_num_accepted_tokens_total",
    "rounds_with_drafts": "dsd_verifier_spec_decode_num_drafts_total",
    "forward_s": 'dsd_verifier_forward_seconds_sum{kind="verify"}',
    "steps": 'dsd_verifier_forward_seconds_count{kind="verify"}',
    "batch_sum": "dsd_verifier_batch_size_sum",
}


def scrape(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    out = {}
    for key, name in COUNTERS.items():
        m = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.M)
        out[key] = float(m.group(1)) if m else 0.0
    return out


async def closed_loop(engine, prompts, sessions: int, requests: int, max_tokens: int):
    from dsd.runtime.speculative import SamplingParams

    async def client(i: int) -> None:
        for r in range(requests):
            ids = prompts[(i * requests + r) % len(prompts)]
            async for _ in engine.generate(ids, SamplingParams(), max_tokens, ignore_eos=True):
                pass

    await asyncio.gather(*[client(i) for i in range(sessions)])


async def run(args) -> dict:
    import torch

    from dsd.policies import ROUTERS, WINDOWS
    from dsd.runtime.backends import load_backend
    from dsd.runtime.client import RemoteEndpoint
    from dsd.runtime.edge import EdgeEngine
    from dsd.runtime.tiny_gguf import write_tiny_gguf_pair

    os.sched_setaffinity(0, {args.edge_core})
    torch.set_num_threads(1)
    root = Path(tempfile.mkdtemp(prefix="dsd-batching-"))
    target_path, draft_path = write_tiny_gguf_pair(root)
    draft = load_backend(draft_path, "llamacpp", n_threads=1, kv_tokens=args.kv_tokens,
                         max_sessions=max(2, args.sessions))
    tok = draft.tokenizer
    prompts = [tok(f"session {i}: the quick brown fox jumps over the lazy dog").input_ids
               for i in range(64)]
    port, metrics = free_port(), free_port()
    verifier = start([sys.executable, "-m", "dsd.cli.main", "serve", "verifier",
                      "--model", str(target_path), "--port", str(port), "--threads", "1",
                      "--kv-tokens", str(args.kv_tokens), "--max-sessions",
                      str(max(2, args.sessions)), "--max-batch", str(max(2, args.sessions)),
                      "--metrics-port", str(metrics), "--plain-logs", "--log-level",
                      "warning"], args.verifier_core, "dsd verifier")
    engine = EdgeEngine(draft, [RemoteEndpoint(0, f"127.0.0.1:{port}")],
                        WINDOWS.create("static", gamma=args.gamma), ROUTERS.create("jsq"),
                        max_running=max(2, args.sessions))
    await engine.start()
    runs: dict[int, list[dict]] = {1: [], args.sessions: []}
    try:
        await closed_loop(engine, prompts, 2, 1, 16)  # warm-up
        for _ in range(args.reps):
            for n in (1, args.sessions):
                before, t0 = scrape(metrics), time.perf_counter()
                await closed_loop(engine, prompts, n, args.requests, args.max_tokens)
                wall = time.perf_counter() - t0
                after = scrape(metrics)
                d = {k: after[k] - before[k] for k in COUNTERS}
                res = {"sessions": n, "wall_s": round(wall, 3),
                       "accepted_per_s": d["accepted"] / wall,
                       "committed_per_s": (d["accepted"] + d["rounds_with_drafts"]) / wall,
                       "steps": int(d["steps"]),
                       "sessions_per_step": d["batch_sum"] / max(1, d["steps"]),
                       "forward_share": d["forward_s"] / wall,
                       "ms_per_step": 1e3 * d["forward_s"] / max(1, d["steps"])}
                runs[n].append(res)
                print(json.dumps({k: round(v, 3) if isinstance(v, float) else v
                                  for k, v in res.items()}), flush=True)
    finally:
        await engine.close()
        verifier.terminate()
        verifier.wait(30)

    def med(n: int, key: str) -> float:
        return statistics.median(r[key] for r in runs[n])

    one, many = 1, args.sessions
    return {
        "loadavg_1m": round(os.getloadavg()[0], 2), "gamma": args.gamma,
        "max_tokens": args.max_tokens,
        **{f"{key}@{n}": round(med(n, key), 3) for n in (one, many)
           for key in ("accepted_per_s", "committed_per_s", "sessions_per_step",
                       "forward_share", "ms_per_step")},
        "gain_accepted": round(statistics.median(
            m["accepted_per_s"] / o["accepted_per_s"]
            for o, m in zip(runs[one], runs[many], strict=True)), 2),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=32)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--requests", type=int, default=4, help="requests per client per run")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--gamma", type=int, default=4)
    ap.add_argument("--kv-tokens", type=int, default=65536)
    ap.add_argument("--edge-core", type=int, default=0)
    ap.add_argument("--verifier-core", type=int, default=1)
    args = ap.parse_args()
    print(json.dumps(asyncio.run(run(args)), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

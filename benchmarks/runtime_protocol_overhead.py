"""Protocol overhead per speculation round on loopback, excluding model compute.

A verifier whose "model" returns constant logits instantly (no compute) serves one edge
session over gRPC on 127.0.0.1; the edge sends N verify rounds (gamma = 4) and measures
each round trip. Reports p50/p90/p99 of the full round (edge -> verifier -> edge, including
the verifier's scheduler, verification math and serialization) for greedy rounds and for
sampled rounds carrying 4 sparse proposals of 256 tokens each. Goal: p50 under 1 ms.

    python benchmarks/runtime_protocol_overhead.py [--rounds 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def null_backend(vocab: int = 32000):
    """An engine on the seam with constant logits and no compute."""
    import torch

    from dsd.runtime.backends import Backend, KVHandle

    class NullBackend(Backend):
        def __init__(self) -> None:
            super().__init__()
            self.name, self.vocab_size, self.max_context = "null", vocab, 1 << 20
            self.tokenizer, self.fingerprint, self.eos_ids = None, "null", frozenset()
            self._logits = torch.zeros(64, vocab)
            self._logits[:, 7] = 10.0  # argmax 7 everywhere: greedy drafts of 7 are accepted

        def _new_kv(self):
            return KVHandle(self)

        def _forward(self, steps):
            return [self._logits[: s.n_keep] for s in steps]

        def _crop(self, kv, n):
            pass

        def _release(self, kv):
            pass

    return NullBackend()


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


async def run(rounds: int) -> dict:
    import torch

    from dsd.policies import BATCHERS
    from dsd.runtime.client import RemoteEndpoint
    from dsd.runtime.scheduler import VerifierCore
    from dsd.runtime.speculative import SamplingParams, to_sparse
    from dsd.runtime.verifier import VerifierService, start_verifier_server

    core = VerifierCore(null_backend(), BATCHERS.create("fifo"))
    server, port = await start_verifier_server(VerifierService(core), "127.0.0.1", 0)
    ep = RemoteEndpoint(0, f"127.0.0.1:{port}")
    await ep.connect("null", 0)
    results = {}
    q = to_sparse(torch.softmax(torch.randn(32000), -1), 256)
    for name, params, proposals, draft in [
        ("greedy_gamma4", SamplingParams(), None, [7, 7, 7, 7]),
        ("sampled_gamma4_support256", SamplingParams(temperature=1.0), [q] * 4,
         [int(q.ids[0])] * 4),
    ]:
        sess = ep.session("bench", 600.0, 10.0)
        await sess.open([1, 2, 3], params, 1 << 20, "null")
        times, server_times = [], []
        for i in range(rounds + 100):
            t0 = time.perf_counter()
            reply = await sess.verify(i, draft, proposals)
            dt = time.perf_counter() - t0
            if i >= 100:  # warm-up
                times.append(dt * 1e3)
                server_times.append(reply.server_time_s * 1e3)
        await sess.close()
        results[name] = {
            "round_ms_p50": statistics.median(times), "round_ms_p90": pct(times, 0.9),
            "round_ms_p99": pct(times, 0.99),
            "verifier_side_ms_p50": statistics.median(server_times),
        }
    await ep.close()
    await server.stop(0)
    await core.stop()
    return results


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2000)
    args = ap.parse_args()
    res = asyncio.run(run(args.rounds))
    print(json.dumps({k: {m: round(v, 4) for m, v in d.items()} for k, d in res.items()},
                     indent=2))
    p50 = res["greedy_gamma4"]["round_ms_p50"]
    print(f"protocol overhead per round (greedy, gamma=4, loopback): p50 {p50:.3f} ms "
          f"({'meets' if p50 < 1.0 else 'misses'} the 1 ms goal)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

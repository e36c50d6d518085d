"""Speedup of distributed speculative decoding on llama.cpp against its limit, one core each.

Qwen2.5-Coder 0.5B (draft, edge) -> 1.5B (target, verifier), Q4_K_M GGUFs. The verifier
is `dsd serve verifier` pinned to `--verifier-core`; the edge (this process) is pinned to
`--edge-core`; RTT 30 ms goes through `dsd serve proxy` (15 ms each way). The baseline is
plain llama.cpp target-only greedy decoding of the same GGUF (llama-cpp-python's `Llama`)
on the verifier's core. Prompts: GSM8K and HumanEval, chat template, greedy, `--max-tokens`
tokens each (EOS ignored); every speculative output is compared with the baseline token
for token. Runs alternate per prompt (baseline, then each gamma x RTT in rotating order);
medians are reported.

The limit of vanilla speculative decoding for the pair on this hardware is
max over gamma of E(gamma) / (gamma * c + v(gamma)), E = (1 - a^(gamma+1)) / (1 - a),
with a the measured acceptance rate, c = draft decode step / target decode step, v(gamma) =
the verifier's forward of gamma + 1 tokens (logits for all of them) / target decode step.
It counts decoding only, so it is compared with the decode-phase speedup (time per output
token after the first); the end-to-end speedup (first token included) is reported beside.

    python benchmarks/llamacpp_speedup.py [--prompts 3] [--max-tokens 64] [--gammas 1,2,3]
        [--rtts 0,30] [--edge-core 0] [--verifier-core 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from itertools import islice
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
MODELS = REPO / ".cache" / "models"


# ---- the plain llama.cpp helper (a subprocess on the verifier's core) ---------------------

def serve_plain(model: str, core: int) -> None:
    """JSON lines on stdin/stdout: {"ids", "max_tokens"} -> plain greedy decoding timed;
    {"verify": k, "ids"} -> the dsd backend's forward of k tokens (logits for all) timed."""
    os.sched_setaffinity(0, {core})
    import torch
    from llama_cpp import Llama

    from dsd.runtime.backends import load_backend

    torch.set_num_threads(1)
    llm = Llama(model_path=model, n_ctx=2048, n_batch=512, n_threads=1, verbose=False)
    backend = load_backend(model, "llamacpp", n_threads=1, kv_tokens=2048, max_sessions=2)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        req = json.loads(line)
        ids = req["ids"]
        if "verify" in req:
            kv = backend.new_kv()
            backend.prefill(kv, ids)
            times = []
            for rep in range(req.get("reps", 5)):
                feed = [(31 * j + rep) % 1000 + 10 for j in range(req["verify"])]
                t0 = time.perf_counter()
                backend.forward(kv, feed)
                times.append(time.perf_counter() - t0)
                kv.crop(len(ids))
            kv.release()
            print(json.dumps({"s": statistics.median(times)}), flush=True)
            continue
        out, t0, first = [], time.perf_counter(), None
        for tok in llm.generate(ids, temp=0.0, top_k=1, repeat_penalty=1.0, reset=True):
            out.append(int(tok))
            if first is None:
                first = time.perf_counter()
            if len(out) == req["max_tokens"]:
                break
        end = time.perf_counter()
        print(json.dumps({"out": out, "e2e_s": end - t0, "ttft_s": first - t0,
                          "tpot_s": (end - first) / max(1, len(out) - 1)}), flush=True)


class Plain:
    def __init__(self, model: Path, core: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve-plain", str(model), "--core", str(core)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert json.loads(self.proc.stdout.readline())["ready"]

    def ask(self, **req) -> dict:
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(30)


# ---- prompts, servers ---------------------------------------------------------------------

def prompts(tok, n: int) -> list[tuple[str, list[int]]]:
    from dsd.workload import iter_dataset
    from dsd.workload.prompt_sets import dataset_path

    out = []
    for name in ("gsm8k", "humaneval"):
        for item in islice(iter_dataset(dataset_path(name)), n):
            text = tok.apply_chat_template([{"role": "user", "content": item.prompt}],
                                           tokenize=False, add_generation_prompt=True)
            out.append((name, tok(text, add_special_tokens=False).input_ids))
    return out


def start(cmd: list[str], core: int, ready: str) -> subprocess.Popen:
    proc = subprocess.Popen(["taskset", "-c", str(core), *cmd], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:
        if line.startswith(ready):
            import threading

            # keep reading its output, or a full pipe would block it
            threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
            return proc
    raise SystemExit(f"{' '.join(cmd)} did not start")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tokens_per_round(a: float, gamma: int) -> float:
    """E[tokens per round] = (1 - a^(gamma+1)) / (1 - a)."""
    return gamma + 1.0 if a >= 1.0 else (1 - a ** (gamma + 1)) / (1 - a)


def limit(a: float, c: float, v: dict[int, float]) -> tuple[float, int]:
    """max over gamma of E / (gamma c + v(gamma)) and its gamma."""
    return max((tokens_per_round(a, g) / (g * c + v[g]), g) for g in v)


# ---- the run ------------------------------------------------------------------------------

async def run(args) -> dict:
    import torch

    from dsd.policies import ROUTERS, WINDOWS
    from dsd.runtime.backends import load_backend
    from dsd.runtime.client import RemoteEndpoint
    from dsd.runtime.edge import EdgeEngine, RequestStats
    from dsd.runtime.speculative import SamplingParams

    os.sched_setaffinity(0, {args.edge_core})
    torch.set_num_threads(1)
    gammas = [int(g) for g in args.gammas.split(",")]
    rtts = [float(r) for r in args.rtts.split(",")]
    draft = load_backend(args.draft, "llamacpp", n_threads=1, kv_tokens=4096, max_sessions=4)
    work = prompts(draft.tokenizer, args.prompts)
    port = free_port()
    dsd = [sys.executable, "-m", "dsd.cli.main", "serve"]
    servers = [start(dsd + ["verifier", "--model", args.target, "--port", str(port),
                            "--threads", "1", "--kv-tokens", "8192", "--max-sessions", "4",
                            "--metrics-port", "0", "--plain-logs", "--log-level", "warning"],
                     args.verifier_core, "dsd verifier")]
    addr = {0.0: port}
    for rtt in rtts:
        if rtt > 0:
            addr[rtt] = free_port()
            servers.append(start(dsd + ["proxy", "--listen", f"127.0.0.1:{addr[rtt]}",
                                        "--upstream", f"127.0.0.1:{port}",
                                        "--delay-ms", str(rtt / 2), "--log-level", "warning"],
                                 args.edge_core, "dsd proxy"))
    plain = Plain(args.target, args.verifier_core)
    plain_draft = Plain(args.draft, args.edge_core)
    engines = {}
    try:
        for rtt in rtts:
            for g in gammas:
                eng = EdgeEngine(draft, [RemoteEndpoint(0, f"127.0.0.1:{addr[rtt]}")],
                                 WINDOWS.create("static", gamma=g), ROUTERS.create("jsq"),
                                 round_timeout_s=120, request_timeout_s=1800)
                await eng.start()
                engines[(rtt, g)] = eng

        async def spec(eng, ids):
            stats = RequestStats("b", time.perf_counter(), len(ids))
            out = []
            async for toks in eng.generate(ids, SamplingParams(), args.max_tokens,
                                           ignore_eos=True, stats=stats):
                out.extend(toks)
            return out, stats

        await spec(engines[(rtts[0], gammas[0])], work[0][1][:32])  # warm-up
        rows = []
        keys = list(engines)
        for i, (dataset, ids) in enumerate(work):
            base = plain.ask(ids=ids, max_tokens=args.max_tokens)
            row = {"prompt": i, "dataset": dataset, "prompt_tokens": len(ids),
                   "plain_e2e_s": base["e2e_s"], "plain_tpot_ms": base["tpot_s"] * 1e3}
            for k in keys[i % len(keys):] + keys[:i % len(keys)]:  # rotate the order
                out, st = await spec(engines[k], ids)
                tag = f"rtt{k[0]:g}-g{k[1]}"
                row[f"{tag}_exact"] = out == base["out"]
                row[f"{tag}_e2e"] = base["e2e_s"] / st.e2e_s
                row[f"{tag}_tpot"] = base["tpot_s"] / st.tpot_s
                row[f"{tag}_drafted"] = st.drafted
                row[f"{tag}_accepted"] = st.accepted
            rows.append(row)
            print(json.dumps({k: round(v, 3) if isinstance(v, float) else v
                              for k, v in row.items()}), flush=True)
        # the step costs, on the cores that run them
        context = work[0][1]
        target_step = statistics.median(r["plain_tpot_ms"] for r in rows) / 1e3
        draft_step = statistics.median(
            plain_draft.ask(ids=context, max_tokens=24)["tpot_s"] for _ in range(3))
        verify = {g: plain.ask(ids=context, verify=g + 1)["s"] for g in range(1, 9)}
    finally:
        for eng in engines.values():
            await eng.close()
        plain.close()
        plain_draft.close()
        for proc in servers:
            proc.terminate()
            proc.wait(30)

    c = draft_step / target_step
    v = {g: s / target_step for g, s in verify.items()}
    summary = {"prompts": len(rows), "max_tokens": args.max_tokens,
               "loadavg_1m": round(os.getloadavg()[0], 2),
               "target_decode_ms": round(target_step * 1e3, 1),
               "draft_decode_ms": round(draft_step * 1e3, 1), "c": round(c, 3),
               "v": {g: round(x, 2) for g, x in v.items()}}
    for (rtt, g) in keys:
        tag = f"rtt{rtt:g}-g{g}"
        a = sum(r[f"{tag}_accepted"] for r in rows) / max(1, sum(r[f"{tag}_drafted"]
                                                                for r in rows))
        best, best_g = limit(a, c, v)
        at_g = tokens_per_round(a, g) / (g * c + v[g])
        tpot = statistics.median(r[f"{tag}_tpot"] for r in rows)
        summary[tag] = {
            "all_exact": all(r[f"{tag}_exact"] for r in rows), "alpha": round(a, 3),
            "speedup_tpot": round(tpot, 3),
            "speedup_e2e": round(statistics.median(r[f"{tag}_e2e"] for r in rows), 3),
            "limit_at_gamma": round(at_g, 3), "limit": round(best, 3), "limit_gamma": best_g,
            "of_limit": round(tpot / best, 3)}
        for ds in ("gsm8k", "humaneval"):
            part = [r for r in rows if r["dataset"] == ds]
            summary[tag][f"{ds}_speedup_tpot"] = round(
                statistics.median(r[f"{tag}_tpot"] for r in part), 3)
    return summary


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--draft", default=str(MODELS / "qwen2.5-coder-0.5b-q4_k_m.gguf"))
    ap.add_argument("--target", default=str(MODELS / "qwen2.5-coder-1.5b-q4_k_m.gguf"))
    ap.add_argument("--prompts", type=int, default=3, help="per dataset")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--gammas", default="1,2,3")
    ap.add_argument("--rtts", default="0,30")
    ap.add_argument("--edge-core", type=int, default=0)
    ap.add_argument("--verifier-core", type=int, default=1)
    ap.add_argument("--serve-plain", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--core", type=int, default=1, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_plain:
        serve_plain(args.serve_plain, args.core)
        return 0
    for path in (args.draft, args.target):
        if not Path(path).is_file():
            raise SystemExit(f"{path} not found (scripts/install_qwen_pair.py)")
    print(json.dumps(asyncio.run(run(args)), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

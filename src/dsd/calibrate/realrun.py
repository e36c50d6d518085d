"""Drive the real runtime for sim-vs-real: a verifier process on its own CPU, the edge
engine (draft model, static window, emulated RTT on its gRPC link) in this process on
another CPU, and a closed loop of `concurrency` clients issuing fixed-length requests.

On a 2-core machine the edge and the verifier would otherwise fight for both cores while
the simulator models them as separate devices; pinning each to one core with one torch
thread makes the machine match the model (and both profiles are measured pinned the same
way, each in the process that then serves).
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Any

from dsd.calibrate.grid import ProfileGrid
from dsd.errors import DsdError

# The per-round log of the request whose edge task is running (set per request task).
_ROUNDS: contextvars.ContextVar[list[list[int]]] = contextvars.ContextVar("dsd_rounds")


class _RecordingWindow:
    """A static window that also logs each round's (gamma, accepted): the edge's request
    stats keep only per-position totals, which are ambiguous once gamma varies (the last
    rounds of a request are shortened to fit max_tokens)."""

    def __init__(self, gamma: int) -> None:
        self.gamma = gamma
        self.fixed_gamma = gamma

    def __call__(self) -> _Controller:
        return _Controller(self.gamma, _ROUNDS.get())


class _Controller:
    def __init__(self, gamma: int, log: list[list[int]]) -> None:
        self.gamma = gamma
        self.log = log

    def next_gamma(self, state: Any) -> int:
        return self.gamma

    def observe(self, result: Any) -> None:
        self.log.append([int(result.gamma), int(result.accepted)])


@dataclass(frozen=True)
class RealConfig:
    """One measured configuration."""

    rtt_ms: float
    gamma: int
    concurrency: int
    requests: int
    prompt_tokens: int
    output_tokens: int

    @property
    def label(self) -> str:
        return f"rtt{self.rtt_ms:g}-g{self.gamma}-c{self.concurrency}"


@dataclass
class PairSpec:
    draft_dir: str
    target_dir: str
    draft_name: str
    target_name: str


class RealHarness:
    """Owns the verifier process and the loaded draft model across configurations."""

    def __init__(self, pair: PairSpec, grid_target: ProfileGrid, grid_draft: ProfileGrid,
                 warmup: int = 2, max_batch: int = 8,
                 pin: bool = True, draft_gammas: tuple[int, ...] = (1,),
                 max_sessions: int = 8, session_tokens: int = 512) -> None:
        self.pair = pair
        # What serving needs beside the profile's caches (llama.cpp sizes its KV up front):
        # sessions at once and KV tokens per session (prompt + output + gamma + 1).
        self.max_sessions = max_sessions
        self.session_tokens = session_tokens
        self.draft_gammas = draft_gammas
        self.grid_target = grid_target
        self.grid_draft = grid_draft
        self.warmup = warmup
        self.max_batch = max_batch
        cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        # Edge on the first CPU, verifier on the last; with one CPU both share it.
        self.pin = pin and len(cpus) >= 2
        self.edge_cpus = [cpus[0]] if self.pin else None
        self.verifier_cpus = [cpus[-1]] if self.pin else None
        self._saved_affinity = set(cpus)
        self._saved_threads: int | None = None
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.draft: Any = None
        self._draft_session: Any = None
        self._stderr: Any = None

    # ------------------------------------------------------------------ lifecycle
    def start(self, passes: int = 3) -> None:
        """Start the verifier (pinned from its first instruction, so its imports do not
        disturb the edge's CPU), load and pin the draft here, warm both up, and take
        `passes` profiling passes of each model."""
        import torch

        from dsd.calibrate.profile import GridSession, ModelToProfile, configure_cpu, load_runner

        serving = (self.max_sessions, self.max_sessions * self.session_tokens)
        cfg = {"model": self.pair.target_dir, "name": self.pair.target_name,
               "cpus": self.verifier_cpus, "threads": 1, "grid": asdict(self.grid_target),
               "warmup": self.warmup, "max_batch": self.max_batch, "serving": serving}
        cpus = self.verifier_cpus
        # stderr goes to a file: an undrained pipe would block the verifier once full.
        self._stderr = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dsd.calibrate.verifier_proc", json.dumps(cfg)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, text=True,
            preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)
        self._saved_threads = torch.get_num_threads()
        configure_cpu(1, self.edge_cpus)
        self.draft, _ = load_runner(ModelToProfile(self.pair.draft_dir, self.pair.draft_name),
                                    "cpu", serving=serving)
        line = self._read()
        if not line.startswith("READY"):
            self._stderr.seek(0)
            err = self._stderr.read()
            self.close()
            tail = err.strip().splitlines()[-1] if err.strip() else "no output"
            raise DsdError(f"the verifier process did not start: {tail}")
        self.port = int(line.split()[1])
        # The edge drafts a window of tokens back to back: profile decode steps in bursts
        # of the middle window size, whose later steps run on warm caches.
        gammas = sorted(self.draft_gammas)
        self.decode_burst = gammas[len(gammas) // 2]
        self._draft_session = GridSession(self.draft, self.pair.draft_name,
                                          self.grid_draft.points(),
                                          decode_burst=self.decode_burst)
        for _ in range(self.warmup):
            self._draft_session.run_pass(keep=False)
        self.profile(passes)

    def _send(self, line: str) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def _read(self) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        return self.proc.stdout.readline()

    def profile(self, passes: int = 1) -> None:
        """More profiling passes on both models (call between configurations). One model
        at a time: two models stepping at once on neighbouring cores slow each other
        (shared cache and memory bandwidth; a Qwen 1.5B prefill by ~15%), which the
        simulator's separate devices do not, and which the runtime mostly avoids (the
        edge waits while the verifier verifies)."""
        for _ in range(passes):
            self._draft_session.run_pass()
        self._send(f"profile {passes}")
        if not self._read().startswith("DONE"):
            raise DsdError("the verifier process stopped while profiling")

    def profile_rows(self, stat: str = "median") -> list[dict[str, Any]]:
        """Rows of both models from every pass so far."""
        self._send(f"rows {stat}")
        target_rows = json.loads(self._read())
        return target_rows + self._draft_session.rows(stat)

    def wake_metadata(self) -> dict[str, str]:
        """Both models' idle wake-up curves, as profile metadata."""
        self._send("wake")
        return {**json.loads(self._read()), **self._draft_session.wake_metadata()}

    def close(self) -> None:
        if self.proc is not None:
            try:
                if self.proc.stdin:
                    self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except (subprocess.TimeoutExpired, OSError):
                self.proc.kill()
            self.proc = None
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        if hasattr(os, "sched_setaffinity") and self._saved_affinity:
            os.sched_setaffinity(0, self._saved_affinity)
        if self._saved_threads is not None:
            import torch

            torch.set_num_threads(self._saved_threads)

    def __enter__(self) -> RealHarness:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ one configuration
    def run(self, cfg: RealConfig, seed: int = 0) -> list[dict[str, Any]]:
        """Serve `cfg.requests` requests (after one unmeasured warm-up request); returns
        per-request records, with the link and verifier times the edge measured."""
        return asyncio.run(self._run(cfg, seed))

    async def _run(self, cfg: RealConfig, seed: int) -> list[dict[str, Any]]:
        from dsd.policies import ROUTERS
        from dsd.runtime.client import RemoteEndpoint
        from dsd.runtime.edge import EdgeEngine, RequestStats
        from dsd.runtime.speculative import SamplingParams

        ep = RemoteEndpoint(0, f"127.0.0.1:{self.port}", emulate_rtt_s=cfg.rtt_ms / 1000.0)
        engine = EdgeEngine(self.draft, [ep], _RecordingWindow(cfg.gamma),
                            ROUTERS.create("jsq"), round_timeout_s=120.0,
                            request_timeout_s=1800.0)
        await engine.start()
        vocab = max(2, self.draft.vocab_size - 3)
        params = SamplingParams()  # greedy: output equals the target's, acceptance is real

        def prompt(i: int) -> list[int]:
            import random

            rng = random.Random(f"{seed}:{i}")
            return [rng.randrange(vocab) for _ in range(cfg.prompt_tokens)]

        async def one(i: int) -> dict[str, Any]:
            stats = RequestStats(f"r{i}", time.perf_counter(), cfg.prompt_tokens)
            rounds: list[list[int]] = []
            _ROUNDS.set(rounds)
            async for _ in engine.generate(prompt(i), params, cfg.output_tokens,
                                           ignore_eos=True, stats=stats):
                pass
            rec = stats.as_dict()
            rec["arrival_s"] = stats.arrival_s
            rec["rounds_log"] = rounds
            return rec

        records: list[dict[str, Any]] = []
        try:
            await one(-1)  # warm-up: channel, caches, allocator
            issued = 0

            async def client() -> None:
                nonlocal issued
                while issued < cfg.requests:
                    i = issued
                    issued += 1
                    records.append(await one(i))

            await asyncio.gather(*(client() for _ in range(cfg.concurrency)))
        finally:
            await engine.close()
        start = min(r["arrival_s"] for r in records)
        for r in records:
            r["arrival_s"] -= start
            r.update(draft=self.pair.draft_name, target=self.pair.target_name,
                     dataset="synthetic", config=cfg.label)
        return records

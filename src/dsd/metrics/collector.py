"""Streaming metric collection with the definitions of the metric conventions:

- Measured requests are those that arrive at or after warm-up. The window is [warm-up, end]:
  the end is `duration_s` without drain, the last completion (or rejection) with drain.
- TTFT = arrival -> first output token; TPOT = (E2E - TTFT) / (output tokens - 1), none for
  a one-token output. Latency quantiles are over measured requests.
- Rates are completions in the window divided by its length, whenever the request arrived:
  throughput (req/s), output tokens/s, goodput (those meeting every SLO, req/s or tokens/s).
- SLO attainment = measured requests meeting both the TTFT and TPOT SLOs / (measured
  requests completed + measured requests rejected): a rejected request misses its SLO.
- acceptance rate = accepted / drafted tokens; mean acceptance length = 1 + accepted / rounds.
- wasted draft time = sum over rounds of (drafted - accepted - 1)+ x draft step time.
- verification interference of a verify job r = T_verify(its batch) - T_verify({r}) + the
  prefill work its server ran while r waited in the queue; the summary reports its mean over
  verify rounds (`verify_interference_ms_mean`).

Only counters and quantile sketches are kept, so memory does not grow with simulated time.
"""

from __future__ import annotations

import math
from typing import Any

from dsd.metrics.sketch import QuantileSketch


class MetricsCollector:
    def __init__(self, ttft_slo_s: float, tpot_slo_s: float, max_gamma: int) -> None:
        self.ttft_slo_s = ttft_slo_s
        self.tpot_slo_s = tpot_slo_s
        self.ttft = QuantileSketch()
        self.tpot = QuantileSketch()
        self.e2e = QuantileSketch()
        self.completed = 0
        self.slo_met = 0
        self.rejected = 0  # measured requests the servers turned away (the engine adds to it)
        self.output_tokens = 0
        # Completions in the window [warm-up, end], whenever they arrived: the rates.
        self.window_completed = 0
        self.window_met = 0
        self.window_tokens = 0
        self.window_good_tokens = 0
        self.rounds = 0
        self.drafted = 0
        self.accepted = 0
        self.wasted_draft_s = 0.0
        self.interference_s = 0.0  # summed over measured verify jobs (the engine adds to it)
        self.verify_rounds = 0
        # rounds_by_gamma_accepted[g][k]: rounds that drafted g tokens and accepted k of them
        self.round_hist = [[0] * (g + 1) for g in range(max_gamma + 1)]

    def record_round(self, gamma: int, accepted: int, step_s: float) -> None:
        self.round_hist[gamma][accepted] += 1
        if accepted < gamma - 1:
            self.wasted_draft_s += (gamma - accepted - 1) * step_s

    def record_request(
        self, ttft_s: float, e2e_s: float, output_tokens: int, rounds: int, drafted: int,
        accepted: int, measured: bool = True, in_window: bool = True,
    ) -> tuple[float, bool]:
        """Add one finished request; returns (tpot_s, slo_met), tpot NaN for one token."""
        tpot_s = (e2e_s - ttft_s) / (output_tokens - 1) if output_tokens > 1 else math.nan
        met = ttft_s <= self.ttft_slo_s and not tpot_s > self.tpot_slo_s
        if in_window:
            self.window_completed += 1
            self.window_tokens += output_tokens
            if met:
                self.window_met += 1
                self.window_good_tokens += output_tokens
        if not measured:
            return tpot_s, met
        self.completed += 1
        self.output_tokens += output_tokens
        self.rounds += rounds
        self.drafted += drafted
        self.accepted += accepted
        self.ttft.add(ttft_s)
        self.e2e.add(e2e_s)
        if output_tokens > 1:
            self.tpot.add(tpot_s)
        if met:
            self.slo_met += 1
        return tpot_s, met

    def acceptance_by_position(self) -> list[float]:
        """P(position i accepted | drafted and reached) for i = 1..max gamma drafted."""
        reached = [0] * len(self.round_hist)
        passed = [0] * len(self.round_hist)
        for gamma, row in enumerate(self.round_hist):
            for k, n in enumerate(row):
                if not n:
                    continue
                for i in range(min(k + 1, gamma)):  # positions tested: all accepted + 1 reject
                    reached[i] += n
                for i in range(k):
                    passed[i] += n
        return [round(p / r, 4) for p, r in zip(passed, reached, strict=True) if r]

    def summary(self, span_s: float) -> dict[str, Any]:
        def ms(sketch: QuantileSketch, q: float) -> float:
            v = sketch.quantile(q)
            return round(v * 1000.0, 3) if not math.isnan(v) else math.nan

        span = max(span_s, 1e-12)
        decided = self.completed + self.rejected
        out: dict[str, Any] = {
            "requests_completed": self.completed,
            "requests_rejected": self.rejected,
            "window_completions": self.window_completed,
            "throughput_rps": self.window_completed / span,
            "output_tps": self.window_tokens / span,
            "output_tokens": self.output_tokens,
        }
        for name, sketch in (("ttft", self.ttft), ("tpot", self.tpot), ("e2e", self.e2e)):
            for q in (50, 95, 99):
                out[f"{name}_ms_p{q}"] = ms(sketch, q / 100)
            out[f"{name}_ms_mean"] = round(sketch.mean * 1000.0, 3) if sketch.count else math.nan
        out.update(
            acceptance_rate=self.accepted / self.drafted if self.drafted else math.nan,
            mean_acceptance_length=1 + self.accepted / self.rounds if self.rounds else math.nan,
            rounds=self.rounds,
            drafted_tokens=self.drafted,
            accepted_tokens=self.accepted,
            wasted_draft_s=self.wasted_draft_s,
            wasted_draft_ms_per_request=(1000.0 * self.wasted_draft_s / self.completed
                                         if self.completed else math.nan),
            mean_drafted_gamma=self.drafted / self.rounds if self.rounds else math.nan,
            verify_interference_ms_mean=(1000.0 * self.interference_s / self.verify_rounds
                                         if self.verify_rounds else math.nan),
            slo_attainment=self.slo_met / decided if decided else math.nan,
            goodput_rps=self.window_met / span,
            goodput_tps=self.window_good_tokens / span,
            acceptance_by_position=self.acceptance_by_position(),
        )
        return out

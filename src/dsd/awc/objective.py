"""The AWC objective: closed-loop throughput under the TPOT (and TTFT) SLO.

For N closed-loop users with mean think time Z and mean response time R, the response-time
law gives throughput X = N / (Z + R). Counting completions in a finite window measures the
same X with much more noise (a few long requests finishing just inside or outside the
window move it by several percent), so the oracle and the evaluation use the law with the
run's measured mean end-to-end latency, and scale by SLO attainment to count only requests
that met their SLOs:

    J = N / (Z + mean E2E) x (fraction of requests meeting TTFT and TPOT SLOs)   [req/s]
"""

from __future__ import annotations

from typing import Any


def closed_loop_throughput(summary: dict[str, Any], users: int, think_s: float) -> float:
    e2e = summary.get("e2e_ms_mean")
    if not e2e:
        return 0.0
    return users / (think_s + e2e / 1000.0)


def objective(summary: dict[str, Any], users: int, think_s: float) -> float:
    attain = summary.get("slo_attainment") or 0.0
    return closed_loop_throughput(summary, users, think_s) * attain

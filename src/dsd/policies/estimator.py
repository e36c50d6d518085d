"""WISP's verification time estimator: predicts a batch's verify time from its shape.

Two linear regressions on per-batch sums, one per roofline regime, and their maximum:

    memory-bound:  m0 + m1 * n + m2 * sum(q) + m3 * sum(ctx)
    compute-bound: c0 + c1 * sum(q) + c2 * sum(q * (ctx + q))
    T(batch) = max(memory, compute)

(n jobs, q new/query tokens, ctx context tokens, the last term the attention pairs).
Small verify batches read weights and KV (memory-bound); large ones are compute-bound; a
single linear model mixes the two and misses small batches by ~15%. The fit alternates:
assign each sample to the regime that predicts it larger, refit each regime (a two-piece
regression). Fit on profiled (shape, seconds) samples (`fit`) or on samples predicted by
a latency model (`fit_step`), as WISP does with offline profiling; rows are weighted by
1 / time so the fit minimises relative error.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

Shape = tuple[int, int, int, int]  # (n, sum q, sum ctx, sum attention pairs)


def _lstsq(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    import numpy as np

    w = 1.0 / np.maximum(y, 1e-9)
    coef, *_ = np.linalg.lstsq(x * w[:, None], y * w, rcond=None)
    return coef


@dataclass(frozen=True)
class VerifyTimeEstimator:
    memory: tuple[float, float, float, float]  # m0..m3
    compute: tuple[float, float, float] = (0.0, 0.0, 0.0)  # c0..c2

    def predict_shape(self, n: int, query: int, context: int, attn: int) -> float:
        m0, m1, m2, m3 = self.memory
        c0, c1, c2 = self.compute
        mem = m0 + m1 * n + m2 * query + m3 * context
        comp = c0 + c1 * query + c2 * attn
        return mem if mem > comp else comp

    def predict(self, jobs: Sequence[tuple[int, int]]) -> float:
        """Predicted seconds for a batch of (query tokens, context tokens) jobs."""
        return self.predict_shape(len(jobs), sum(q for q, _ in jobs), sum(c for _, c in jobs),
                                  sum(q * (c + q) for q, c in jobs))

    @classmethod
    def fit(cls, shapes: Sequence[Shape], seconds: Sequence[float],
            rounds: int = 10) -> VerifyTimeEstimator:
        """Two-piece least squares on measured or predicted samples."""
        if len(seconds) < 8:
            raise ValueError("need at least 8 samples to fit the verify time estimator")
        import numpy as np  # only when fitting: the simulator's import stays light

        s = np.array(shapes, dtype=float)
        y = np.array(seconds, dtype=float)
        xm = np.column_stack([np.ones(len(y)), s[:, 0], s[:, 1], s[:, 2]])
        xc = np.column_stack([np.ones(len(y)), s[:, 1], s[:, 3]])
        mem, comp = _lstsq(xm, y), np.zeros(3)
        for _ in range(rounds):
            in_comp = xc @ comp > xm @ mem
            if in_comp.sum() >= 5:
                comp = _lstsq(xc[in_comp], y[in_comp])
            if (~in_comp).sum() >= 5:
                mem = _lstsq(xm[~in_comp], y[~in_comp])
            if in_comp.sum() < 5:  # seed the compute regime with the worst-fitted samples
                resid = (y - xm @ mem) / y
                top = resid >= np.quantile(resid, 0.8)
                comp = _lstsq(xc[top], y[top])
        return cls(tuple(float(c) for c in mem), tuple(float(c) for c in comp))  # type: ignore[arg-type]

    @classmethod
    def fit_step(cls, step: Any, max_batch: int = 32, samples: int = 600, seed: int = 0,
                 max_context: int = 4096, max_query: int = 17) -> VerifyTimeEstimator:
        """Fit on verify-like batches whose times a `StepModel` predicts (the simulator's
        stand-in for profiling the verifier): n in 1..max_batch (small batches weighted
        up, as they are the common case), q in 1..max_query, ctx in 16..max_context."""
        return _fit_step_cached(step, max_batch, samples, seed, max_context, max_query)

    def mape(self, shapes: Sequence[Shape], seconds: Sequence[float]) -> float:
        """Mean absolute percentage error on held-out samples."""
        errs = [abs(self.predict_shape(*s) - t) / t for s, t in zip(shapes, seconds, strict=True)]
        return sum(errs) / len(errs)


@lru_cache(maxsize=64)  # every server of a pool shares one step model: fit it once
def _fit_step_cached(step: Any, max_batch: int, samples: int, seed: int, max_context: int,
                     max_query: int) -> VerifyTimeEstimator:
    rng = random.Random(seed)
    shapes: list[Shape] = []
    seconds: list[float] = []
    for i in range(samples):
        n = rng.randint(1, max_batch) if i % 2 else rng.randint(1, min(4, max_batch))
        jobs = [(rng.randint(1, max_query), rng.randint(16, max_context)) for _ in range(n)]
        shape = (n, sum(q for q, _ in jobs), sum(c for _, c in jobs),
                 sum(q * (c + q) for q, c in jobs))
        shapes.append(shape)
        seconds.append(step.step_s(*shape))
    return VerifyTimeEstimator.fit(shapes, seconds)

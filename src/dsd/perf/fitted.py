"""The default latency predictor: the operator-level model (`dsd.perf.ops`) with each GPU's
coefficients from the catalog: fitted to VIDUR's measured profiles for A100, H100 and
A40, derived from spec sheets by a documented rule for the others (`validated: false`).
"""

from __future__ import annotations

from dsd.perf.attention import AttentionModel
from dsd.perf.base import Deployment
from dsd.perf.bound import BoundPredictor
from dsd.perf.coefficients import resolve
from dsd.perf.ops import LayerShape, allreduce_s, allreduces_per_layer, head_s, linear_s
from dsd.perf.registry import register_predictor
from dsd.perf.step import ComposedStep, MeasuredAttentionStep, as_float


def fitted_step(hw: Deployment, linear=None, comm=None, attention=None, *,
                validated: bool | None = None, source: str | None = None) -> ComposedStep:
    """The operator model of `hw`; a caller may substitute measured parts (the `vidur`
    predictor passes its interpolated linear, all-reduce and attention costs; a measured
    attention carries the analytic model as `.analytic` for its ragged excess)."""
    c = resolve(hw.gpu)
    dtype = hw.dtype_bytes
    assert dtype is not None
    model, tp = hw.model, hw.tp
    shape = LayerShape.of(model, tp, dtype)
    if linear is None:
        linear = as_float(lambda t: linear_s(t, shape, c))
    if comm is None:
        reduces = allreduces_per_layer(model) * model.layers

        def comm(t: int) -> float:
            return reduces * float(allreduce_s(t * model.hidden * dtype, tp, c))
    if attention is None:
        attention = AttentionModel(hw, c)
    cls = ComposedStep if isinstance(attention, AttentionModel) else MeasuredAttentionStep
    return cls(
        hw, linear, comm, as_float(lambda t: head_s(t, model, tp, c, dtype)), attention,
        (c.step_overhead_ms or 0.0) * 1e-3, (c.seq_overhead_us or 0.0) * 1e-6,
        c.validated if validated is None else validated,
        source or c.source or "spec rule")


@register_predictor("fitted")
class FittedPredictor(BoundPredictor):
    """Operator-level model with catalog coefficients (`latency: {type: fitted}`)."""

    def _make(self, hw: Deployment) -> ComposedStep:
        return fitted_step(hw)

"""Window controllers that stop drafting early from per-token draft confidence.

Both draft up to a budget `gamma_max` and decide after each drafted token whether to send
the window now (see `EarlyStopController` in window.py). Confidence is the draft's top-1
probability of the token; in the simulator it comes from the draft-confidence model
(accepted tokens' confidence high, the first rejected one's low), in the runtime from the
draft model's logits.

- `specdecpp` (SpecDec++): treats calibrated confidence as the token's acceptance
  probability and stops once P(at least one drafted token is rejected)
  = 1 - prod(p_i) passes `threshold`.
- `wisp` (WISP's speculation controller): a classifier over the token's confidence and
  position, p_reject = sigmoid(bias + w_conf * confidence + w_pos * position), stops at
  the first token it predicts rejected (p_reject > `threshold`). The defaults put the
  decision boundary at confidence ~0.5 for the first positions, drifting up slowly with
  position since deep positions are rejected more often.
"""

from __future__ import annotations

import math

from dsd.policies.window import WINDOWS, RoundResult, WindowController, WindowState


class _SpecDecPP:
    __slots__ = ("gamma_max", "threshold", "scale", "_survive")

    def __init__(self, gamma_max: int, threshold: float, scale: float) -> None:
        self.gamma_max, self.threshold, self.scale = gamma_max, threshold, scale
        self._survive = 1.0

    def next_gamma(self, state: WindowState) -> int:
        self._survive = 1.0
        return self.gamma_max

    def stop_early(self, position: int, confidence: float) -> bool:
        if position == 0:
            self._survive = 1.0
        self._survive *= min(1.0, max(0.0, confidence * self.scale))
        return 1.0 - self._survive > self.threshold

    def observe(self, result: RoundResult) -> None:
        pass


@WINDOWS.register("specdecpp")
class SpecDecPlusPlusWindow:
    """Stop when the predicted probability of a rejection so far passes `threshold`;
    `scale` calibrates confidence to acceptance probability (p = min(1, scale * conf))."""

    early_stop = True

    def __init__(self, gamma_max: int = 8, threshold: float = 0.6, scale: float = 1.0) -> None:
        if gamma_max < 1:
            raise ValueError("gamma_max must be >= 1")
        if not 0.0 < threshold < 1.0:
            raise ValueError("threshold must be in (0, 1)")
        self.fixed_gamma = None
        self._args = (gamma_max, threshold, scale)

    def __call__(self) -> WindowController:
        return _SpecDecPP(*self._args)


class _WispController:
    __slots__ = ("gamma_max", "threshold", "bias", "w_conf", "w_pos")

    def __init__(self, gamma_max: int, threshold: float, bias: float, w_conf: float,
                 w_pos: float) -> None:
        self.gamma_max, self.threshold = gamma_max, threshold
        self.bias, self.w_conf, self.w_pos = bias, w_conf, w_pos

    def next_gamma(self, state: WindowState) -> int:
        return self.gamma_max

    def reject_probability(self, position: int, confidence: float) -> float:
        z = self.bias + self.w_conf * confidence + self.w_pos * position
        return 1.0 / (1.0 + math.exp(-z))

    def stop_early(self, position: int, confidence: float) -> bool:
        return self.reject_probability(position, confidence) > self.threshold

    def observe(self, result: RoundResult) -> None:
        pass


@WINDOWS.register("wisp")
class WispWindow:
    """WISP's intelligent speculation controller (logistic classifier on confidence)."""

    early_stop = True

    def __init__(self, gamma_max: int = 8, threshold: float = 0.5, bias: float = 5.0,
                 w_conf: float = -10.0, w_pos: float = 0.1) -> None:
        if gamma_max < 1:
            raise ValueError("gamma_max must be >= 1")
        if not 0.0 < threshold < 1.0:
            raise ValueError("threshold must be in (0, 1)")
        self.fixed_gamma = None
        self._args = (gamma_max, threshold, bias, w_conf, w_pos)

    def __call__(self) -> WindowController:
        return _WispController(*self._args)

"""The window features of one session, computed the same way by the simulator and the runtime.

Both engines call `observe` once per verdict with what the edge measured (the round's wall
time and its network part) and build the controller's `WindowState` with `state`, so a
policy trained in simulation sees the same numbers when deployed.
"""

from __future__ import annotations

import math

from dsd.policies.window import WindowState

FEATURE_EMA = 0.3  # weight of the newest round in every running statistic


class SessionFeatures:
    __slots__ = ("acceptance", "rtt_mean", "rtt_var", "tpot_mean", "tpot_var", "rounds")

    def __init__(self) -> None:
        self.acceptance = 0.0
        self.rtt_mean = self.rtt_var = 0.0
        self.tpot_mean = self.tpot_var = 0.0
        self.rounds = 0

    def observe(self, gamma: int, accepted: int, round_s: float, network_s: float) -> None:
        """One verdict: `round_s` from drafting start to verdict, `network_s` its network
        part (both directions). A gamma=0 round carries no acceptance information."""
        tpot = round_s / (accepted + 1)
        self.rounds += 1
        if self.rounds == 1:
            self.acceptance = accepted / gamma if gamma else 1.0
            self.rtt_mean, self.tpot_mean = network_s, tpot
            return
        w = FEATURE_EMA
        if gamma:
            self.acceptance += w * (accepted / gamma - self.acceptance)
        d = network_s - self.rtt_mean
        self.rtt_mean += w * d
        self.rtt_var = (1 - w) * (self.rtt_var + w * d * d)
        d = tpot - self.tpot_mean
        self.tpot_mean += w * d
        self.tpot_var = (1 - w) * (self.tpot_var + w * d * d)

    def state(self, queue_util: float, prev_gamma: int,
              draft_confidence: float | None = None) -> WindowState:
        return WindowState(queue_util, self.acceptance, self.rtt_mean, math.sqrt(self.rtt_var),
                           self.tpot_mean, math.sqrt(self.tpot_var), prev_gamma,
                           draft_confidence)

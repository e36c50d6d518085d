"""The window features both engines compute through `SessionFeatures`."""

import math

import pytest

from dsd.policies.features import FEATURE_EMA, SessionFeatures
from dsd.sim import simulate


def test_running_statistics_follow_the_ema_definition() -> None:
    f = SessionFeatures()
    f.observe(gamma=4, accepted=3, round_s=0.2, network_s=0.02)
    s = f.state(queue_util=0.5, prev_gamma=4)
    assert (s.acceptance_ema, s.rtt_mean_s, s.tpot_mean_s) == (0.75, 0.02, 0.05)
    assert s.rtt_std_s == 0.0 and s.queue_util == 0.5 and s.prev_gamma == 4
    f.observe(gamma=4, accepted=1, round_s=0.2, network_s=0.04)
    s = f.state(0.0, 4)
    w = FEATURE_EMA
    assert s.acceptance_ema == pytest.approx(0.75 + w * (0.25 - 0.75))
    assert s.rtt_mean_s == pytest.approx(0.02 + w * 0.02)
    assert s.rtt_std_s == pytest.approx(math.sqrt((1 - w) * w * 0.02**2))
    assert s.tpot_mean_s == pytest.approx(0.05 + w * (0.1 - 0.05))
    # A final gamma=0 round carries no acceptance information.
    f.observe(gamma=0, accepted=0, round_s=0.05, network_s=0.03)
    assert f.state(0.0, 0).acceptance_ema == pytest.approx(s.acceptance_ema)


def test_simulated_rtt_features_see_jitter(monkeypatch) -> None:
    """The simulator feeds the measured network time of each round (jitter included), like
    the runtime edge, not the link's nominal RTT."""
    seen = []
    original = SessionFeatures.observe

    def spy(self, gamma, accepted, round_s, network_s):  # noqa: ANN001
        seen.append(network_s)
        original(self, gamma, accepted, round_s, network_s)

    monkeypatch.setattr(SessionFeatures, "observe", spy)
    simulate("examples/single-pair.yaml", overrides=[
        "policies.window={name: dynamic}", "network.jitter_ms=3",
        "simulation.duration_s=30"])
    assert len(seen) > 50
    assert min(seen) < 0.02 < max(seen)  # 20 ms nominal RTT, spread by jitter

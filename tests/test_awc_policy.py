"""AWC policy: WC-DNN inference without torch, stabilizer units, registry, simulator use."""

from __future__ import annotations

import numpy as np
import pytest

from dsd.errors import ConfigError
from dsd.policies import WINDOWS, WindowState
from dsd.policies.awc import (
    FEATURE_NAMES,
    FEATURE_STD_FLOOR,
    AwcController,
    AwcWindow,
    GammaStabilizer,
    ModeHysteresis,
    WcDnn,
    WcDnnWeights,
    floor_std,
    raw_features,
)

GAMMAS = (1, 2, 3, 4, 5, 6, 8)


def random_weights(seed: int = 0, hidden: int = 8, blocks: int = 1,
                   has_fused: bool = False) -> WcDnnWeights:
    rng = np.random.default_rng(seed)
    n_in, n_out = len(FEATURE_NAMES), len(GAMMAS) + has_fused
    return WcDnnWeights(
        rng.normal(size=n_in), rng.uniform(0.5, 2, size=n_in),
        rng.normal(size=(hidden, n_in)), rng.normal(size=hidden),
        [rng.normal(size=(hidden, hidden)) for _ in range(blocks)],
        [rng.normal(size=hidden) for _ in range(blocks)],
        rng.normal(size=(n_out, hidden)), rng.normal(size=n_out), GAMMAS, has_fused)


def state(prev: int = 4, acc: float = 0.8) -> WindowState:
    return WindowState(0.5, acc, 0.02, 0.002, 0.05, 0.01, prev)


def reference_logits(w: WcDnnWeights, x: list[float]) -> np.ndarray:
    z = (np.asarray(x) - w.mean) / w.std
    silu = lambda v: v / (1 + np.exp(-v))  # noqa: E731
    h = silu(w.w_in @ z + w.b_in)
    for wb, bb in zip(w.w_blocks, w.b_blocks, strict=True):
        h = h + silu(wb @ h + bb)
    return w.w_out @ h + w.b_out


@pytest.mark.parametrize("backend", ["compiled", "python", "numpy"])
def test_inference_matches_reference(backend: str) -> None:
    w = random_weights(blocks=2)
    net = WcDnn(w, backend)
    for prev in (1, 4, 8):
        x = raw_features(state(prev))
        np.testing.assert_allclose(net.logits(x), reference_logits(w, x), rtol=1e-9, atol=1e-9)


def test_weights_roundtrip(tmp_path) -> None:
    w = random_weights(has_fused=True)
    w.save(tmp_path / "w.npz")
    back = WcDnnWeights.load(tmp_path / "w.npz")
    assert back.gammas == GAMMAS and back.has_fused
    x = raw_features(state())
    np.testing.assert_allclose(WcDnn(back).logits(x), WcDnn(w).logits(x))


def test_missing_weights_is_config_error(tmp_path) -> None:
    with pytest.raises(ConfigError, match="cannot read AWC weights"):
        WcDnnWeights.load(tmp_path / "nope.npz")


def test_stabilizer_clamps() -> None:
    s = GammaStabilizer(GAMMAS, gamma_min=2, gamma_max=6, smoothing=1.0)
    assert s.update(1) == 2
    assert s.update(8) == 6


def test_stabilizer_smooths() -> None:
    s = GammaStabilizer(GAMMAS, 1, 8, smoothing=0.5)
    s.reset(2)
    assert s.update(8) == 5  # level 5.0
    assert s.update(8) == 6  # level 6.5 -> nearest allowed, ties to the smaller
    assert s.level == pytest.approx(6.5)


def test_stabilizer_quantizes_to_allowed() -> None:
    s = GammaStabilizer((2, 4, 8), 1, 8, smoothing=1.0)
    assert s.update(5) == 4
    assert s.update(7) == 8
    assert s.update(3) == 2  # tie between 2 and 4 -> the smaller window


def test_stabilizer_rejects_bad_params() -> None:
    with pytest.raises(ConfigError):
        GammaStabilizer(GAMMAS, 1, 8, smoothing=0.0)
    with pytest.raises(ConfigError):
        GammaStabilizer(GAMMAS, 6, 2, smoothing=0.5)


def test_hysteresis_thresholds_and_dwell() -> None:
    h = ModeHysteresis(enter_fused=1.0, exit_fused=-1.0, min_dwell=3)
    assert [h.update(2.0) for _ in range(3)] == ["distributed", "distributed", "fused"]
    # inside the band: no switch back, however long
    assert all(h.update(0.0) == "fused" for _ in range(10))
    h2 = ModeHysteresis(1.0, -1.0, min_dwell=3)
    for _ in range(3):
        h2.update(2.0)
    # right after a switch the dwell blocks a switch back, even past the exit threshold
    assert [h2.update(-5.0) for _ in range(3)] == ["fused", "fused", "distributed"]


def test_hysteresis_rejects_inverted_band() -> None:
    with pytest.raises(ConfigError):
        ModeHysteresis(enter_fused=-1.0, exit_fused=1.0)


def test_controller_cold_start_and_fused_mode() -> None:
    w = random_weights(has_fused=True)
    w.b_out[-1] = 1e6  # the fused logit always wins by far
    ctl = AwcController(WcDnn(w), GammaStabilizer(GAMMAS, 1, 8, 1.0),
                        ModeHysteresis(1.0, -1.0, 2), cold_start_gamma=4)
    assert ctl.next_gamma(WindowState()) == 4  # no verdict yet: the cold-start window
    for _ in range(3):
        g = ctl.next_gamma(state())
    assert g in GAMMAS and ctl.mode == "fused"


def test_registered_with_packaged_weights() -> None:
    assert "awc" in WINDOWS
    factory = WINDOWS.create("awc")
    assert factory.fixed_gamma is None
    ctl = factory()
    for prev in (1, 4, 8):
        assert 1 <= ctl.next_gamma(state(prev)) <= 8


def test_awc_window_params_validated() -> None:
    with pytest.raises(ConfigError):
        AwcWindow(smoothing=2.0)
    with pytest.raises(ConfigError):
        AwcWindow(backend="cuda")


def test_awc_runs_in_simulator() -> None:
    from dsd.sim import simulate

    cfg = {
        "cluster": {"drafts": [{"count": 6, "gpu": "A40", "model": "llama-2-7b"}],
                    "targets": [{"count": 1, "gpu": "A100", "tp": 4, "model": "llama-2-70b"}]},
        "workload": {"dataset": "gsm8k",
                     "arrival": {"type": "closed_loop", "concurrency": 1, "think_time_s": 1}},
        "policies": {"window": {"name": "awc"}},
        "simulation": {"duration_s": 10},
    }
    s = simulate(cfg, keep_requests=False).summary
    assert s["requests_completed"] > 0 and s["drafted_tokens"] > 0


def jittery_states() -> list[WindowState]:
    """Unusual but plausible states: RTT jitter of 5-50 ms, idle and saturated queues."""
    return [WindowState(0.0, 0.9, 0.02, 0.005, 0.04, 0.002, 4),
            WindowState(1.0, 0.1, 0.15, 0.05, 0.3, 0.1, 8),
            WindowState(0.3, 0.5, 0.001, 0.0, 0.01, 0.0, 1)]


@pytest.mark.parametrize("backend", ["compiled", "python", "numpy"])
def test_std_floor_bounds_a_feature_constant_in_training(backend: str) -> None:
    """Weights whose training saw rtt_std == 0 (std stored as 1e-6) must not turn 5 ms of
    measured jitter into a z-score of ~1e6: inference floors the std per feature."""
    w = random_weights(seed=3)
    i = FEATURE_NAMES.index("log_rtt_std_ms")
    w.mean[i], w.std[i] = 0.0, 1e-6
    net = WcDnn(w, backend)
    floored = WcDnnWeights(**{**w.__dict__, "std": floor_std(w.std)})
    assert floor_std(w.std)[i] == FEATURE_STD_FLOOR[i]
    for st in jittery_states():
        x = raw_features(st)
        logits = np.asarray(net.logits(x))
        assert np.isfinite(logits).all()
        np.testing.assert_allclose(logits, reference_logits(floored, x), rtol=1e-9, atol=1e-9)
        ctl = AwcController(net, GammaStabilizer(GAMMAS, 1, 8, 0.5), ModeHysteresis(), 4)
        assert ctl.next_gamma(st) in GAMMAS


def test_packaged_weights_handle_jitter() -> None:
    w = WcDnnWeights.load()
    assert (w.std >= np.asarray(FEATURE_STD_FLOOR) - 1e-12).all()
    net = WcDnn(w)
    for st in jittery_states():
        assert np.isfinite(net.logits(raw_features(st))).all()
        ctl = WINDOWS.create("awc")()
        for _ in range(5):
            assert 1 <= ctl.next_gamma(st) <= 8

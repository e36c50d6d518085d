"""Admission control: the policy family's decision rules, and what it does in overload."""

import pytest

from dsd.errors import ConfigError
from dsd.policies import ADMISSION, AdmissionView
from dsd.sim import simulate


def view(**kw) -> AdmissionView:
    base = dict(now_s=10.0, arrival_s=9.9, prompt_tokens=100, waiting_requests=0,
                queued_jobs=0, queued_tokens=0, step_jobs=32, step_tokens=2048, step_s=0.05,
                step_left_s=0.0, prefill_s=0.05, return_s=0.01, ttft_slo_s=1.0)
    base.update(kw)
    return AdmissionView(**base)


def test_admit_all_and_queue_cap_rules() -> None:
    assert ADMISSION.create("admit-all").admit(view(waiting_requests=10**6))
    cap = ADMISSION.create("queue-cap", max_queue=3)
    assert cap.admit(view(waiting_requests=2))
    assert not cap.admit(view(waiting_requests=3))
    with pytest.raises(ValueError):
        ADMISSION.create("queue-cap", max_queue=-1)


def test_slo_admission_predicts_ttft_from_the_backlog() -> None:
    slo = ADMISSION.create("slo")
    # 0.1 s elapsed + 0.02 s step left + 10 steps of 50 ms (300 jobs / 32 per step)
    # + 50 ms prefill + 10 ms back = 0.68 s
    v = view(step_left_s=0.02, queued_jobs=300, queued_tokens=1500)
    assert v.steps_ahead() == 10
    assert v.predicted_ttft_s() == pytest.approx(0.68)
    assert slo.admit(v)
    assert not slo.admit(view(queued_jobs=600))  # 19 steps: 1.11 s > 1 s
    assert ADMISSION.create("slo", slack=1.2).admit(view(queued_jobs=600))
    # a queue of long prompts is bounded by the step's token budget instead
    assert view(queued_jobs=4, queued_tokens=8192, waiting_requests=1).steps_ahead() == 4


def test_unknown_admission_policy_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="policies.admission: unknown admission policy"):
        simulate("examples/quickstart.yaml", overrides=["policies.admission=lottery"])


def overload(admission, duration: float = 60.0):
    """20 req/s of GSM8K against one 4xA100 server that serves ~12."""
    return simulate({
        "name": "overload",
        "cluster": {"drafts": [{"count": 200, "gpu": "A40", "model": "llama-2-7b"}],
                    "targets": [{"count": 1, "gpu": "A100", "tp": 4, "model": "llama-2-70b"}]},
        "workload": {"dataset": "gsm8k", "arrival": {"type": "poisson", "rate": 20}},
        "policies": {"admission": admission},
        "slo": {"ttft_ms": 1000, "tpot_ms": 400},
        "simulation": {"duration_s": duration, "warmup_s": 20, "drain": False}})


@pytest.fixture(scope="module")
def everyone():
    return overload("admit-all")


def test_admission_control_keeps_an_overloaded_server_productive(everyone) -> None:
    everyone = everyone.summary
    capped = overload({"name": "queue-cap", "max_queue": 8})
    s = capped.summary
    assert everyone["requests_rejected"] == 0
    assert s["requests_rejected"] > 0
    # Admitted prefills crowd out verifies when nobody is turned away.
    assert s["throughput_rps"] > 1.5 * everyone["throughput_rps"]
    assert s["goodput_rps"] > 1.5 * everyone["goodput_rps"]
    # Rejected requests count as missing their SLO.
    met = sum(capped.requests.column("slo_met").to_pylist())
    assert s["slo_attainment"] == pytest.approx(
        met / (s["requests_completed"] + s["requests_rejected"]), rel=1e-5)


def test_slo_admission_takes_only_requests_that_can_meet_their_ttft(everyone) -> None:
    slo = overload("slo")
    assert slo.summary["requests_rejected"] > 0

    def on_time(r) -> float:
        ttft = r.requests.column("ttft_ms").to_pylist()
        return sum(t <= 1000 for t in ttft) / len(ttft)

    assert on_time(slo) > 0.95
    # Admitting everyone completes few requests (those that do mostly start on time: the
    # engine runs prefills first); turning away the ones that cannot meet the SLO serves more.
    assert slo.summary["goodput_rps"] > 1.2 * everyone.summary["goodput_rps"]

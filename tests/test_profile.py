"""`dsd profile` and `--validate` on tiny random models; the sim-vs-real smoke run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

pytestmark = pytest.mark.runtime

GRID = ["--batch-sizes", "1,2", "--contexts", "16,64", "--gammas", "2,4", "--prompts", "8,32",
        "--repeats", "3", "--warmup", "1"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    from dsd.runtime.tiny import write_tiny_pair

    root = tmp_path_factory.mktemp("tiny")
    write_tiny_pair(root, seed=0)
    return root


@pytest.fixture(scope="module")
def profile(tiny, tmp_path_factory) -> Path:
    from dsd.cli.main import main

    out = tmp_path_factory.mktemp("prof") / "tiny.csv"
    assert main(["profile", "--model", str(tiny / "target"), "--name", "tiny-target",
                 *GRID, "--out", str(out), "--quiet"]) == 0
    return out


def test_profile_writes_a_valid_table(profile):
    from dsd.perf.table import read_profile

    prof = read_profile(profile)
    meta = prof.metadata
    for key in ("format", "device", "dtype", "torch", "transformers", "date", "cpu",
                "threads", "model.tiny-target", "statistic"):
        assert meta.get(key), key
    assert meta["device"] == "cpu" and meta["dtype"] == "float32"
    ops = {r["op"] for r in prof.rows}
    assert ops == {"prefill", "decode", "verify"}
    assert len(prof.rows) == 2 * 2 + 2 * 2 * 3
    for r in prof.rows:
        assert r["model"] == "tiny-target" and r["repeats"] == 3
        assert 0 < r["p10_ms"] <= r["latency_ms"] <= r["p90_ms"]
    _assert_wake_curve(meta, "tiny-target")


def _assert_wake_curve(meta: dict, model: str) -> None:
    """The profile carries the model's idle wake-up curve at every measured gap."""
    from dsd.perf.idle_wake import WAKE_GAPS_MS, IdleWake

    wake = IdleWake.parse(meta[f"idle_wake.{model}"], "profile")
    assert wake.gaps == pytest.approx([g / 1000 for g in WAKE_GAPS_MS])
    assert wake.extras[0] == 0.0 and min(wake.extras) >= 0.0


def test_profile_runs_on_llama_cpp_for_a_gguf(tiny, tmp_path):
    """`dsd profile` on a .gguf measures the llama.cpp engine the runtime would serve it
    with, each context length's caches in an engine of their own."""
    pytest.importorskip("llama_cpp")
    from dsd.cli.main import main
    from dsd.perf.table import read_profile
    from dsd.runtime.tiny_gguf import write_tiny_gguf_pair

    target, _ = write_tiny_gguf_pair(tmp_path, seed=0)
    out = tmp_path / "gguf.csv"
    assert main(["profile", "--model", str(target), "--name", "tiny-target", *GRID,
                 "--threads", "1", "--out", str(out), "--quiet"]) == 0
    prof = read_profile(out)
    assert prof.metadata["engine"] == "llama.cpp" and prof.metadata["llama_cpp_python"]
    assert {r["op"] for r in prof.rows} == {"prefill", "decode", "verify"}
    assert len(prof.rows) == 2 * 2 + 2 * 2 * 3
    assert all(0 < r["latency_ms"] for r in prof.rows)
    _assert_wake_curve(prof.metadata, "tiny-target")


def test_profile_feeds_the_table_predictor(profile, tiny):
    from dsd.calibrate.hfspec import model_spec
    from dsd.catalog import load_catalog
    from dsd.perf import Deployment, make_predictor

    hw = Deployment(load_catalog().gpu("cpu"), model_spec(tiny / "target", "tiny-target"))
    step = make_predictor({"type": "table", "path": str(profile)}).bind(hw)
    assert 0 < step.step_s(2, 6, 80, 0) < 1.0


def test_validate_reports_an_error_figure(profile, tiny, tmp_path, capsys):
    from dsd.cli.main import main

    report = tmp_path / "v.json"
    assert main(["profile", "--validate", str(profile), "--model", str(tiny / "target"),
                 "--name", "tiny-target", "--repeats", "3", "--warmup", "1",
                 "--report", str(report)]) == 0
    printed = capsys.readouterr().out
    assert "table MAPE" in printed and "all" in printed
    data = json.loads(report.read_text())
    assert data["points"] > 0
    assert 0 <= data["mape_table"] < 10 and data["mape_roofline"] >= 0
    assert all(r["measured_ms"] > 0 for r in data["rows"])


def test_draft_decode_bursts_are_timed_per_step(tiny):
    """A burst of k decode steps runs k forwards back to back (the cache grows by k) and
    reports time per step; the cache is cropped back before every repeat."""
    from dsd.calibrate.profile import GridSession
    from dsd.runtime.backends import load_backend

    runner = load_backend(str(tiny / "draft"), device="cpu", name="tiny-draft")
    calls: list[int] = []
    forward = runner.forward

    def counting_forward(kv, ids, keep=1):
        calls.append(len(ids))
        return forward(kv, ids, keep=keep)

    runner.forward = counting_forward
    session = GridSession(runner, "tiny-draft", [("decode", 1, 32, 1)], decode_burst=4,
                          wake=False)
    calls.clear()
    session.run_pass()
    session.run_pass()
    assert calls == [1] * 8
    assert session.caches[32][0].length == 36  # cropped to 32 before each burst of 4
    (row,) = session.rows()
    assert row["op"] == "decode" and row["repeats"] == 2 and row["latency_ms"] > 0


def test_profile_errors_are_one_line(tiny, tmp_path, capsys):
    from dsd.cli.main import main

    assert main(["profile", "--model", str(tmp_path / "none"), "--out",
                 str(tmp_path / "p.csv")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["profile", "--model", str(tiny / "target"), "--batch-sizes", "x",
                 "--out", str(tmp_path / "p.csv")]) == 2
    assert "--batch-sizes" in capsys.readouterr().err


@pytest.mark.slow
def test_sim_vs_real_quick(tmp_path, monkeypatch):
    import dsd.experiments.sim_vs_real  # noqa: F401  (registers the experiment)
    from dsd.experiments.registry import run_experiment

    monkeypatch.setenv("DSD_SIM_VS_REAL_MODELS", "tiny")
    run_experiment("sim-vs-real", quick=True, out=tmp_path, echo=False)
    summary = json.loads((tmp_path / "summary.json").read_text())
    for key in ("mape_ttft", "mape_tpot", "mape_throughput"):
        assert 0 <= summary[key] < 5  # a fraction; the accuracy figure lives in the docs
    assert (tmp_path / "results.csv").read_text().count("\n") == 1 + 8
    assert (tmp_path / "profile.csv").is_file() and (tmp_path / "acceptance.yaml").is_file()
    from dsd.perf.table import read_profile

    meta = read_profile(tmp_path / "profile.csv").metadata
    _assert_wake_curve(meta, "tiny-target")  # measured in the verifier's process
    _assert_wake_curve(meta, "tiny-draft")  # and at the edge
    assert (tmp_path / "parity.png").is_file()
    assert summary["edge_round_host_ms"] >= 0  # measured on a run of its own
    assert "edge-host" not in (tmp_path / "results.csv").read_text()


def _planted_run(out: Path, tiny: Path) -> None:
    """A sim-vs-real folder as `_measure` leaves it, with records planted by hand: two
    configurations, 6 requests each, gamma 2, link timings known."""
    import shutil

    import yaml

    from dsd.calibrate.hfspec import catalog_entry

    out.mkdir(parents=True, exist_ok=True)
    (out / "catalog.yaml").write_text(yaml.safe_dump({"models": {
        "tiny-draft": catalog_entry(tiny / "draft", family="tiny"),
        "tiny-target": catalog_entry(tiny / "target", family="tiny")}}))
    shutil.copy(Path(__file__).parents[1] / "profiles" / "tiny-pair-cpu.csv",
                out / "profile.csv")
    configs = [{"rtt_ms": rtt, "gamma": 2, "concurrency": 1, "requests": 6,
                "prompt_tokens": 64, "output_tokens": 32} for rtt in (0, 30)]
    with (out / "requests_real.jsonl").open("w") as fh:
        for cfg in configs:
            label = f"rtt{cfg['rtt_ms']}-g2-c1"
            for i in range(6):
                rounds = [[2, (i + k) % 3] for k in range(11)]
                fh.write(json.dumps({
                    "request_id": f"r{i}", "config": label, "draft": "tiny-draft",
                    "target": "tiny-target", "dataset": "synthetic", "arrival_s": i * 0.2,
                    "ttft_ms": cfg["rtt_ms"] + 6.0, "tpot_ms": cfg["rtt_ms"] / 2 + 3.0,
                    "e2e_ms": 150.0 + 10 * cfg["rtt_ms"], "output_tokens": 32,
                    "drafted_tokens": 22, "accepted_tokens": sum(a for _, a in rounds),
                    "rounds_log": rounds, "open_server_ms": 3.0,
                    "round_link_ms": cfg["rtt_ms"] + 1.0, "open_link_ms": cfg["rtt_ms"] + 2.0,
                }) + "\n")
    (out / "measured.json").write_text(json.dumps({
        "draft": "tiny-draft", "target": "tiny-target",
        "catalogs": ["catalog.yaml"], "configs": configs}))


def test_sim_vs_real_reuse_resimulates_saved_measurements(tiny, tmp_path):
    import dsd.experiments.sim_vs_real  # noqa: F401  (registers the experiment)
    from dsd.errors import DsdError
    from dsd.experiments.registry import run_experiment

    with pytest.raises(DsdError, match="holds no measured.json"):
        run_experiment("sim-vs-real", out=tmp_path / "empty", reuse=True, echo=False)
    _planted_run(tmp_path / "run", tiny)
    result = run_experiment("sim-vs-real", out=tmp_path / "run", reuse=True, echo=False)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    # set-up = TTFT - verifier time - a round's link = 6 - 3 - 1 ms at both RTTs
    assert summary["session_setup_ms"] == pytest.approx(2.0)
    assert summary["network_overhead_ms_median"] == pytest.approx(1.0)
    assert [row["config"] for row in result.rows] == ["rtt0-g2-c1", "rtt30-g2-c1"]
    assert [row["real_ttft_ms"] for row in result.rows] == [6.0, 36.0]
    for row in result.rows:  # the simulator ran on the planted link and profile
        assert row["link_overhead_ms"] == pytest.approx(1.0)
        assert row["sim_ttft_ms"] > row["rtt_ms"] + 1.0 + 2.0
        assert 0 <= row["err_tpot"] < 5
    assert (tmp_path / "run" / "acceptance.yaml").is_file()


def test_edge_host_work_is_what_a_round_costs_beyond_link_verifier_and_drafting():
    from dsd.calibrate.compare import edge_host_ms
    from dsd.errors import DsdError

    def record(round_ms: float) -> dict:
        # 10 rounds after the first token, 2 drafted tokens a round at 0.5 ms each
        return {"rounds": 10, "ttft_ms": 5.0, "e2e_ms": 5.0 + 10 * round_ms,
                "prompt_tokens": 64, "output_tokens": 30, "drafted_tokens": 20,
                "round_link_ms": 0.6, "round_server_ms": 0.9}

    contexts = []

    def step_ms(context: int) -> float:
        contexts.append(context)
        return 0.5

    # round 3.0 ms = link 0.6 + verifier 0.9 + drafting 1.0 + host 0.5; the median of three
    assert edge_host_ms([record(3.0), record(2.8), record(9.0)], step_ms) == pytest.approx(0.5)
    assert set(contexts) == {64 + 15}  # drafting priced at the mid-output context
    assert edge_host_ms([record(2.0)], step_ms) == 0.0  # faster than its parts: none
    with pytest.raises(DsdError, match="no measured rounds"):
        edge_host_ms([], step_ms)


def test_link_costs_need_the_edge_timings():
    from dsd.calibrate.compare import link_costs
    from dsd.errors import DsdError

    assert link_costs({"ttft_ms": 9.0, "open_server_ms": 4.0, "round_link_ms": 2.0}) == (2.0, 3.0)
    with pytest.raises(DsdError, match="r7: no link timings"):
        link_costs({"request_id": "r7", "ttft_ms": 9.0})

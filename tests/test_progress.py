"""Progress on long work: the simulator paused in slices gives the same run; bars draw only
where asked and say what is done."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from dsd.cli.main import main
from dsd.progress import ProgressBar, SimulationProgress
from dsd.sim import simulate

ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "examples" / "quickstart.yaml"
WALL = {"wall_time_s", "accepted_tokens_per_wall_s", "peak_rss_mb"}


def test_sliced_run_is_the_same_run():
    overrides = ["simulation.duration_s=30", "simulation.warmup_s=3"]
    plain = simulate(QUICK, overrides=overrides, seed=4)
    calls: list[tuple[float, int, int]] = []
    sliced = simulate(QUICK, overrides=overrides, seed=4,
                      progress=lambda *a: calls.append(a))
    same = {k: v for k, v in plain.summary.items() if k not in WALL}
    assert same == {k: v for k, v in sliced.summary.items() if k not in WALL}
    assert plain.requests.equals(sliced.requests)
    times = [t for t, _, _ in calls]
    assert len(calls) >= 100 and times == sorted(times) and times[-1] >= 30
    done = [d for _, d, _ in calls]
    assert done == sorted(done) and done[-1] == sliced.summary["requests_arrived"]
    assert calls[-1][2] == sliced.summary["requests_unfinished"]


def _console() -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, force_terminal=True, width=150), buf


def test_bars_draw_what_is_done_and_only_when_asked():
    console, buf = _console()
    with SimulationProgress(120, console=console) as bar:
        bar.update(0.0)  # before the delay: nothing drawn, rich not started
        assert buf.getvalue() == ""
        bar._start = 0.0  # as if a second had passed
        bar(60.0, 250, 12)
    text = buf.getvalue()  # the bar's last state is drawn when it closes
    assert "simulate" in text and "60.0/120 simulated s" in text and "250 requests done" in text
    assert "draining" not in text
    console, buf = _console()
    with SimulationProgress(120, console=console) as bar:
        bar._start = 0.0
        bar(130.0, 700, 3)
    assert "120.0/120 simulated s" in buf.getvalue()
    assert "700 requests done, draining 3 in flight" in buf.getvalue()
    console, buf = _console()
    with ProgressBar("x", 3, unit="points", console=console, enabled=False, delay_s=0) as bar:
        bar.update(1)
    assert buf.getvalue() == ""
    console, buf = _console()
    with ProgressBar("policy-stack", 5, unit="points", console=console, delay_s=0) as bar:
        bar.update(2, info="1 running")
    assert "2/5 points" in buf.getvalue() and "ETA" in buf.getvalue()


def test_quiet_prints_nothing(capsys, tmp_path):
    assert main(["simulate", str(QUICK), "--set", "simulation.duration_s=20", "--quiet",
                 "--out", str(tmp_path / "r")]) == 0
    assert capsys.readouterr() == ("", "")

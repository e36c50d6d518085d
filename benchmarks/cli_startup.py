"""Start-up cost of `dsd simulate`: wall time and peak RSS of the whole command on a run so
short that imports and set-up dominate.

    python benchmarks/cli_startup.py [--repeats 5] [--baseline REV]

Runs `dsd simulate examples/quickstart.yaml --set simulation.duration_s=1` (warm-up 0, so
the run is valid) as a fresh subprocess each time and reads its own resource usage with
`os.wait4`. With `--baseline REV` the same command also runs from that git revision's
sources (exported to a temporary folder and put first on PYTHONPATH), alternating baseline
and current so a noisy neighbour hurts both alike. Bytecode caching is on (as in a user's
install) even where PYTHONDONTWRITEBYTECODE is set. Prints the medians of wall time, CPU
time and peak RSS; the goal is <= 0.25 s wall and <= 90 MB peak RSS.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["simulate", str(ROOT / "examples" / "quickstart.yaml"),
        "--set", "simulation.duration_s=1", "--set", "simulation.warmup_s=0"]
GOAL_WALL_S, GOAL_RSS_MB = 0.25, 90.0


def run_once(src: Path, out: Path) -> tuple[float, float, float]:
    """(wall s, CPU s, peak RSS MB) of one `dsd simulate` in a fresh interpreter."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # a user's install keeps compiled .pyc files
    code = "import sys; from dsd.cli.main import main; sys.exit(main())"
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code, *ARGS, "--out", str(out)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"dsd simulate failed ({proc.returncode}): {proc.stderr.read().decode()}")
    proc.stderr.close()
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def export(rev: str, into: Path) -> Path:
    """The sources of `rev` (its src/ folder) under `into`."""
    into.mkdir(parents=True)
    archive = into / "src.tar"
    with archive.open("wb") as fh:
        subprocess.run(["git", "archive", rev, "src"], cwd=ROOT, stdout=fh, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--baseline", default=None, metavar="REV",
                        help="also time this git revision, interleaved (e.g. HEAD~5)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        kinds = {"current": ROOT / "src"}
        if args.baseline:
            kinds = {f"baseline {args.baseline}": export(args.baseline, tmpdir / "base"),
                     **kinds}
        results: dict[str, list[tuple[float, float, float]]] = {k: [] for k in kinds}
        run_once(kinds["current"], tmpdir / "warm")  # page cache, .pyc files
        for rep in range(args.repeats):
            for name, src in kinds.items():
                results[name].append(run_once(src, tmpdir / f"run-{rep}"))
    for name, runs in results.items():
        wall, cpu, rss = (statistics.median(col) for col in zip(*runs, strict=True))
        print(f"{name:24s} wall {wall:.3f} s  cpu {cpu:.3f} s  peak RSS {rss:.1f} MB  "
              f"(median of {len(runs)})")
    wall, _, rss = (statistics.median(col) for col in zip(*results["current"], strict=True))
    met = wall <= GOAL_WALL_S and rss <= GOAL_RSS_MB
    print(f"goal <= {GOAL_WALL_S} s and <= {GOAL_RSS_MB:.0f} MB: {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()

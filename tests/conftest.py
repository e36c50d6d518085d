import logging
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


@pytest.fixture
def examples_dir() -> Path:
    return EXAMPLES


@pytest.fixture(scope="session")
def report_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, int]]:
    """Run folders of every kind the HTML report reads (tests/report_runs.py), made once."""
    from report_runs import make_runs

    return make_runs(tmp_path_factory.mktemp("report-runs"))


@pytest.fixture(autouse=True)
def _restore_dsd_logging():
    """A test that runs `dsd serve` in-process points the "dsd" logger at that test's
    captured stderr, which pytest closes afterwards: restore the logger after each test."""
    logger = logging.getLogger("dsd")
    saved = logger.handlers[:], logger.level, logger.propagate
    yield
    logger.handlers[:], logger.level, logger.propagate = saved

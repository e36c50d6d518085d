from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
DATASETS = ROOT.parent / "shared" / "datasets"


@pytest.fixture
def examples_dir() -> Path:
    return EXAMPLES


@pytest.fixture
def datasets_dir() -> Path:
    if not DATASETS.is_dir():
        pytest.skip("../shared/datasets is not present")
    return DATASETS

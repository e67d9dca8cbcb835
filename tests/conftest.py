import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
os.environ.setdefault("JAX_PLATFORMS", "cpu")


@pytest.fixture
def root() -> Path:
    return ROOT

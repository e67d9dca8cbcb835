import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# the suite never reads or writes the user's compilation cache (~/.cache/gradlang): the command line,
# run in-process here, would otherwise turn it on for every later test.  tests/test_cache.py gives
# its subprocesses a temporary one.
os.environ["GRADLANG_CACHE"] = "0"


@pytest.fixture
def root() -> Path:
    return ROOT

"""Shared fixtures: paths to the bundled example and to ../shared/data when it is beside the repo."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "banking77"
SHARED_DATA = Path(os.environ.get("TUNERAIL_SHARED_DATA", REPO.parent / "shared" / "data"))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture
def banking_example() -> Path:
    return EXAMPLE / "train.csv"


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip("../shared/data is not beside the repo")
    return SHARED_DATA


from pg import postgres_url  # noqa: E402,F401 - the throwaway PostgreSQL server fixture (tests/pg.py)

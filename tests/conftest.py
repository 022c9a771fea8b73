"""Shared fixtures: committed face photos, the optional dev set, and one loaded recognition core."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
DEVSET_ENV = "EDGE_AGENT_DEVSET"
REQUIRE_DEVSET_ENV = "EDGE_AGENT_REQUIRE_DEVSET"


def devset_path() -> Path:
    return Path(os.environ.get(DEVSET_ENV) or REPO.parent / "shared" / "datasets" / "faces-dev")


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def devset() -> Path:
    """The 90-identity dev set. Absent on a user's fresh clone (skip); CI sets
    EDGE_AGENT_REQUIRE_DEVSET=1 so that its absence there is a failure, not a silent skip."""
    path = devset_path()
    if not (path / "manifest.csv").is_file():
        message = f"dev set not found at {path} (set {DEVSET_ENV} to its folder)"
        if os.environ.get(REQUIRE_DEVSET_ENV) == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def core():
    from edge_agent.vision.core import RecognitionCore

    return RecognitionCore.load(detector="both", threads=2)


@pytest.fixture(scope="session")
def full_range_core():
    from edge_agent.vision.core import RecognitionCore

    return RecognitionCore.load(detector="full", threads=2)

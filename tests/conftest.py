"""Shared fixtures: committed face photos, the optional dev set, and one loaded recognition core."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from skips import missing
from edge_agent.fleet.local_broker import BrokerUnavailable, MessagingEnv, MosquittoBroker, find_mosquitto, make_messaging_env

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
DEVSET_ENV = "EDGE_AGENT_DEVSET"
REQUIRE_DEVSET_ENV = "EDGE_AGENT_REQUIRE_DEVSET"
REQUIRE_BROKER_ENV = "EDGE_AGENT_REQUIRE_BROKER"


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
        missing(f"dev set not found at {path} (set {DEVSET_ENV} to its folder)", REQUIRE_DEVSET_ENV)
    return path


@pytest.fixture(scope="session")
def core():
    from edge_agent.vision.core import RecognitionCore

    return RecognitionCore.load(detector="both", threads=2)


@pytest.fixture(scope="session")
def full_range_core():
    from edge_agent.vision.core import RecognitionCore

    return RecognitionCore.load(detector="full", threads=2)


def start_broker(env: MessagingEnv, workdir: Path) -> MosquittoBroker:
    """A real Mosquitto, or a skip naming what to install (a failure in CI, where it is mandatory)."""
    try:
        return MosquittoBroker(env, workdir).start()
    except BrokerUnavailable as exc:
        missing(str(exc), REQUIRE_BROKER_ENV)


@pytest.fixture
def require_mosquitto() -> str:
    """Mosquitto's path, for tests that start their own broker (the demo)."""
    path = find_mosquitto()
    if path is None:
        missing(str(BrokerUnavailable("Mosquitto is not installed", "apt-get install mosquitto")), REQUIRE_BROKER_ENV)
    return path


@pytest.fixture(scope="session")
def messaging_env(tmp_path_factory: pytest.TempPathFactory) -> MessagingEnv:
    return make_messaging_env(tmp_path_factory.mktemp("messaging"), ("cam-01", "cam-02", "cam-03"))


@pytest.fixture(scope="session")
def mosquitto(messaging_env: MessagingEnv, tmp_path_factory: pytest.TempPathFactory):
    """A session-wide broker on a free loopback port. Tests that stop/restart it must leave it running."""
    broker = start_broker(messaging_env, tmp_path_factory.mktemp("mosquitto"))
    yield broker
    broker.stop()
    shutil.rmtree(broker.workdir / "data", ignore_errors=True)

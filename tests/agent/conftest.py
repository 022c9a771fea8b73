"""Agent-test fixtures."""

from __future__ import annotations

import os

import pytest

from edge_agent.fleet.local_broker import BrokerUnavailable, find_mosquitto


@pytest.fixture
def require_mosquitto() -> str:
    """Mosquitto's path, or a skip (a failure in CI, where the broker is mandatory)."""
    path = find_mosquitto()
    if path is None:
        message = str(BrokerUnavailable("Mosquitto is not installed", "apt-get install mosquitto"))
        if os.environ.get("EDGE_AGENT_REQUIRE_BROKER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path

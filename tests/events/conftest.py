"""A running control-room listener on the session broker (tests/conftest.py starts Mosquitto)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from control_room_helpers import intake_for
from edge_agent.control_room.intake import Verdict
from edge_agent.control_room.listener import AlertListener
from edge_agent.control_room.store import AlertStore
from edge_agent.crypto.keyfiles import load_private_key
from edge_agent.events.mqtt_connection import Backoff
from edge_agent.fleet.local_broker import CONTROL_ROOM_USER, MosquittoBroker
from edge_agent.identity.registry import DeviceRegistry


@dataclass
class ControlRoom:
    store: AlertStore
    key: X25519PrivateKey
    listener: AlertListener
    verdicts: list[Verdict] = field(default_factory=list)

    def accepted(self) -> list[Verdict]:
        return [v for v in list(self.verdicts) if v.accepted]

    def reasons(self) -> list[str]:
        return [v.reason for v in list(self.verdicts) if not v.accepted]


@pytest.fixture
def control_room(mosquitto: MosquittoBroker, messaging_env, tmp_path):  # noqa: F811 - pytest fixtures by name
    key = load_private_key(messaging_env.control_room_key, X25519PrivateKey)
    store = AlertStore(tmp_path / "alerts.db")
    verdicts: list[Verdict] = []
    intake = intake_for(DeviceRegistry.load(messaging_env.registry_path), key, store)
    group = f"cr-{uuid.uuid4().hex[:8]}"  # a fresh share group: no stale sessions from other tests
    listener = AlertListener(
        mosquitto.broker_config(CONTROL_ROOM_USER), intake, client_id=group, session_expiry_s=300,
        backoff=Backoff(0.05, 0.5), on_verdict=verdicts.append, share_group=group,
    ).start()
    assert listener.subscribed.wait(10), listener.last_error
    room = ControlRoom(store, key, listener, verdicts)
    yield room
    listener.stop(end_session=True)
    store.close()

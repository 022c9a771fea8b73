"""Fixtures for the watchlist tests (helpers live in watchlist_helpers.py)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from watchlist_helpers import World, make_record

from edge_agent.deployment.record import SignedDeployment
from edge_agent.identity.keys import init_device, load_device_keys


@pytest.fixture
def world(tmp_path) -> World:
    devices = {}
    for device_id in ("cam-01", "cam-02", "cam-03"):
        init_device(tmp_path / "keys" / device_id, device_id)
        devices[device_id] = load_device_keys(tmp_path / "keys" / device_id)
    authority = Ed25519PrivateKey.generate()
    return World(authority, devices, SignedDeployment.sign(make_record(), authority), tmp_path)

"""Device registry: format v1 pinned, atomic save, unknown device refused."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from edge_agent.crypto.keyfiles import public_b64, public_raw
from edge_agent.errors import ConfigError, SecurityError
from edge_agent.identity.registry import DeviceRegistry

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=timezone.utc)


def test_round_trip_and_lookup(tmp_path):
    sign, seal = Ed25519PrivateKey.generate(), X25519PrivateKey.generate()
    reg = DeviceRegistry()
    reg.add("cam-01", sign.public_key(), seal.public_key(), NOW)
    reg.save(tmp_path / "registry.json")
    loaded = DeviceRegistry.load(tmp_path / "registry.json")
    assert public_raw(loaded.signing_key("cam-01")) == public_raw(sign.public_key())
    assert public_raw(loaded.sealing_key("cam-01")) == public_raw(seal.public_key())
    # the event verifier relies on this: a signature by the device verifies with the registry key
    loaded.signing_key("cam-01").verify(sign.sign(b"event"), b"event")


def test_file_format_is_pinned(tmp_path):
    sign, seal = Ed25519PrivateKey.generate(), X25519PrivateKey.generate()
    reg = DeviceRegistry()
    reg.add("cam-01", sign.public_key(), seal.public_key(), NOW)
    reg.save(tmp_path / "r.json")
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc == {
        "version": 1,
        "devices": {"cam-01": {"ed25519": public_b64(sign.public_key()), "x25519": public_b64(seal.public_key()), "added": "2026-11-22T08:00:00Z"}},
    }
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temp file left behind


def test_unknown_device_is_a_security_error(tmp_path):
    with pytest.raises(SecurityError, match="not in the device registry"):
        DeviceRegistry().signing_key("ghost")


def test_duplicate_add_refused():
    reg = DeviceRegistry()
    reg.add("cam-01", Ed25519PrivateKey.generate().public_key(), X25519PrivateKey.generate().public_key(), NOW)
    with pytest.raises(ConfigError, match="already in the registry"):
        reg.add("cam-01", Ed25519PrivateKey.generate().public_key(), X25519PrivateKey.generate().public_key(), NOW)


@pytest.mark.parametrize(
    "text",
    ["not json", '{"version": 2, "devices": {}}', '{"version": 1, "devices": {"cam-01": {"ed25519": "AAAA", "x25519": "AAAA", "added": "2026-01-01T00:00:00Z"}}}'],
)
def test_corrupt_registry_refused(tmp_path, text):
    (tmp_path / "r.json").write_text(text)
    with pytest.raises(ConfigError):
        DeviceRegistry.load(tmp_path / "r.json")


def test_doc_lists_registry_fields():
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "formats" / "registry.md").read_text()
    assert {"version", "devices", "ed25519", "x25519", "added"} <= set(re.findall(r"^\| `([a-z0-9_]+)` \|", text, flags=re.M))
    for name in ("authority_ed25519.key", "device_id", "device_ed25519.key", "device_x25519.key", "control_room_x25519.key"):
        assert name in text


def test_remove_retires_a_device():
    reg = DeviceRegistry()
    reg.add("cam-01", Ed25519PrivateKey.generate().public_key(), X25519PrivateKey.generate().public_key(), NOW)
    reg.remove("cam-01")
    assert "cam-01" not in reg
    with pytest.raises(SecurityError):
        reg.sealing_key("cam-01")

"""deploy/provision.py end to end: real keys, real certificates, the real registry module."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from edge_agent.agent.config import load_config
from edge_agent.crypto.keyfiles import load_private_key, public_b64
from edge_agent.errors import ConfigError
from edge_agent.fleet import pki
from edge_agent.fleet.provision import DeviceSettings, provision_device, render_config
from edge_agent.identity import keys as idkeys
from edge_agent.identity.registry import DeviceRegistry

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 1, 9, 30, tzinfo=UTC)


@pytest.fixture
def fleet(tmp_path):
    ca = pki.create_ca(tmp_path / "pki" / "ca", "Test fleet CA")
    authority = idkeys.init_authority(tmp_path / "authority")
    room = idkeys.init_control_room(tmp_path / "control-room")
    return tmp_path, ca, authority, room


def provision(fleet, device_id="bwv-0001", **kw):
    tmp, ca, authority, room = fleet
    settings = DeviceSettings(device_id, "mqtt.force.example", 8884, "pi4-coral-usb", "usb:0")
    return provision_device(
        settings, tmp / "devices" / device_id, ca.cert_path.parent, tmp / "authority" / "registry.json",
        authority.public_key, room.sealing_public, now=NOW, **kw,
    )


def test_provision_device_creates_keys_cert_config_and_registers(fleet):
    tmp, ca, _authority, _room = fleet
    result = provision(fleet)
    out = result.directory
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "agent.toml",
        "keys/authority_ed25519.pub",
        "keys/control_room_ed25519.pub",
        "keys/control_room_x25519.pub",
        "keys/device_ed25519.key",
        "keys/device_ed25519.pub",
        "keys/device_id",
        "keys/device_x25519.key",
        "keys/device_x25519.pub",
        "tls/ca.pem",
        "tls/client.key",
        "tls/client.pem",
    ]
    for key in ("keys/device_ed25519.key", "keys/device_x25519.key", "tls/client.key"):
        assert (out / key).stat().st_mode & 0o777 == 0o600, key
    # the written config validates with every file check on, and carries the device's settings
    cfg = load_config(result.config_path, check_files=True)
    assert cfg.device.id == "bwv-0001"
    assert cfg.hardware.profile == "pi4-coral-usb" and cfg.hardware.delegate == "edgetpu"
    assert cfg.capture.source == "usb:0"
    assert (cfg.mqtt.host, cfg.mqtt.port) == ("mqtt.force.example", 8884)
    assert cfg.mqtt.key_file == out / "tls" / "client.key"
    # comments of the template survive
    assert "# Secrets are never written here" in result.config_path.read_text()
    # MQTT identity = device id, signed by the fleet CA
    client = pki.x509.load_pem_x509_certificate((out / "tls" / "client.pem").read_bytes())
    assert pki.common_name(client) == "bwv-0001"
    ca.certificate.public_key().verify(client.signature, client.tbs_certificate_bytes, pki.ec.ECDSA(client.signature_hash_algorithm))
    # registry entry holds exactly the device's public keys
    registry = DeviceRegistry.load(tmp / "authority" / "registry.json")
    sign = load_private_key(out / "keys" / "device_ed25519.key", Ed25519PrivateKey)
    seal = load_private_key(out / "keys" / "device_x25519.key", X25519PrivateKey)
    entry = registry.devices["bwv-0001"]
    assert entry.ed25519 == public_b64(sign.public_key())
    assert entry.x25519 == public_b64(seal.public_key())
    assert entry.added.startswith("2026-11-01T09:30:00")
    assert result.registry_entry == entry


def test_second_device_appends_and_reuse_is_refused(fleet):
    tmp, *_ = fleet
    provision(fleet, "bwv-0001")
    provision(fleet, "fixed-cam-07")
    registry = DeviceRegistry.load(tmp / "authority" / "registry.json")
    assert set(registry.devices) == {"bwv-0001", "fixed-cam-07"}
    with pytest.raises(ConfigError, match="already exists"):
        provision(fleet, "bwv-0001")
    # same id into a fresh directory: the registry refuses and nothing is left behind
    _, ca, authority, room = fleet
    with pytest.raises(ConfigError, match="already in the registry"):
        provision_device(
            DeviceSettings("bwv-0001", "h"), tmp / "elsewhere", ca.cert_path.parent, tmp / "authority" / "registry.json",
            authority.public_key, room.sealing_public, now=NOW,
        )
    assert not (tmp / "elsewhere").exists()


def test_bad_input_leaves_nothing_behind(fleet):
    tmp, ca, authority, room = fleet
    with pytest.raises(ConfigError, match="invalid device id"):
        provision(fleet, "bwv/0001")
    with pytest.raises(ConfigError, match="hardware profile 'pi9' not found"):
        provision_device(
            DeviceSettings("bwv-0002", "h", profile="pi9"), tmp / "devices" / "bwv-0002", ca.cert_path.parent,
            tmp / "authority" / "registry.json", authority.public_key, room.sealing_public, now=NOW,
        )
    assert not (tmp / "devices" / "bwv-0002").exists()
    assert not list((tmp / "devices").glob(".*partial*"))
    assert not (tmp / "authority" / "registry.json").exists(), "nothing registered for a failed device"
    with pytest.raises(Exception, match="expected Ed25519PublicKey"):  # keys swapped by mistake
        provision_device(
            DeviceSettings("bwv-0003", "h"), tmp / "devices" / "bwv-0003", ca.cert_path.parent,
            tmp / "authority" / "registry.json", room.sealing_public, authority.public_key, now=NOW,
        )


def test_render_config_replaces_and_adds_keys():
    text = '[device]\nid = "a"   # note\n[mqtt]\n# port = 1\nhost = "x"\n'
    out = render_config(text, {("device", "id"): "b-1", ("mqtt", "port"): 8884, ("logging", "level"): "DEBUG"})
    data = tomllib.loads(out)
    assert data == {"device": {"id": "b-1"}, "mqtt": {"port": 8884, "host": "x"}, "logging": {"level": "DEBUG"}}
    assert 'id = "b-1"   # note' in out


def test_cli_runs_the_whole_flow(tmp_path):
    authority = idkeys.init_authority(tmp_path / "authority")
    room = idkeys.init_control_room(tmp_path / "room")
    script = [sys.executable, str(REPO / "deploy" / "provision.py")]

    def run(*args):
        return subprocess.run(script + list(args), check=False, capture_output=True, text=True, timeout=60)

    assert run("ca", "--dir", str(tmp_path / "ca"), "--name", "CLI CA").returncode == 0
    r = run("server-cert", "--ca", str(tmp_path / "ca"), "--out", str(tmp_path / "broker"), "--host", "mqtt.example", "--ip", "127.0.0.1")
    assert r.returncode == 0, r.stderr
    args = ["device", "--id", "bwv-9", "--out", str(tmp_path / "dev"), "--ca", str(tmp_path / "ca"),
            "--registry", str(tmp_path / "registry.json"), "--authority-pub", str(authority.public_key),
            "--control-room-pub", str(room.sealing_public), "--mqtt-host", "mqtt.example"]
    r = run(*args)
    assert r.returncode == 0, r.stderr
    assert "bwv-9 provisioned" in r.stdout
    again = run(*args)
    assert again.returncode == 2
    assert again.stderr.startswith("error: ") and "hint: " in again.stderr

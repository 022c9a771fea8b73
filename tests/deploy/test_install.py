"""deploy/install.py --root: files, modes, intended owners, idempotency and key safety."""

from __future__ import annotations

import hashlib
import json
import re
import stat
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from edge_agent.agent.config import load_config
from edge_agent.fleet import pki
from edge_agent.fleet.provision import DeviceSettings, provision_device
from edge_agent.identity import keys as idkeys

REPO = Path(__file__).resolve().parents[2]
INSTALL = REPO / "deploy" / "install.py"


@pytest.fixture
def provisioned(tmp_path) -> Path:
    pki.create_ca(tmp_path / "ca", "CA")
    authority = idkeys.init_authority(tmp_path / "authority")
    room = idkeys.init_control_room(tmp_path / "room")
    result = provision_device(
        DeviceSettings("bwv-0001", "mqtt.example"), tmp_path / "dev", tmp_path / "ca", tmp_path / "registry.json",
        authority.public_key, room.sealing_public, now=datetime(2026, 11, 1, tzinfo=UTC),
    )
    return result.directory


def install(root: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(INSTALL), "--root", str(root), *extra], check=False, capture_output=True, text=True, timeout=60)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def snapshot(root: Path) -> dict[str, tuple[int, int, str]]:
    return {
        p.relative_to(root).as_posix(): (mode(p), p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "")
        for p in sorted(root.rglob("*"))
    }


def test_install_into_staging_root_twice(tmp_path, provisioned):
    root = tmp_path / "root"
    first = install(root, "--config-dir", str(provisioned))
    assert first.returncode == 0, first.stderr
    assert "created /etc/edge-agent/keys/device_ed25519.key" in first.stdout
    assert "skipped (staging root): create system user edge-agent" in first.stdout

    expected_modes = {
        "etc/edge-agent": 0o750,
        "etc/edge-agent/agent.toml": 0o640,
        "etc/edge-agent/keys": 0o750,
        "etc/edge-agent/keys/device_ed25519.key": 0o600,
        "etc/edge-agent/keys/device_x25519.key": 0o600,
        "etc/edge-agent/keys/authority_ed25519.pub": 0o640,
        "etc/edge-agent/tls/client.key": 0o600,
        "etc/edge-agent/tls/client.pem": 0o640,
        "var/lib/edge-agent": 0o700,
        "opt/edge-agent": 0o755,
        "etc/systemd/system/edge-agent.service": 0o644,
        "etc/udev/rules.d/71-edge-agent-coral.rules": 0o644,
        "opt/edge-agent/hw/profiles/pi5.toml": 0o644,
    }
    for rel, want in expected_modes.items():
        assert mode(root / rel) == want, f"{rel}: {mode(root / rel):o}"
    assert (root / "etc/systemd/system/edge-agent.service").read_bytes() == (REPO / "systemd/edge-agent.service").read_bytes()
    assert 'ATTRS{idVendor}=="1a6e"' in (root / "etc/udev/rules.d/71-edge-agent-coral.rules").read_text()
    assert 'ATTRS{idVendor}=="18d1"' in (root / "etc/udev/rules.d/71-edge-agent-coral.rules").read_text()
    for model in (REPO / "models").glob("*.tflite"):
        assert (root / "opt/edge-agent/models" / model.name).read_bytes() == model.read_bytes()

    manifest = json.loads((root / "opt/edge-agent/install-manifest.json").read_text())
    doc = (REPO / "docs/formats/install-manifest.md").read_text()
    top_table, entry_table = [t.split("\n\n", 1)[0] for t in doc.split("| field |")[1:3]]
    assert set(manifest) == set(re.findall(r"^\| `([a-z_]+)` \|", top_table, flags=re.MULTILINE)), "top-level fields match the doc"
    entry_fields = set(re.findall(r"^\| `([a-z_0-9]+)` \|", entry_table, flags=re.MULTILINE))
    assert all(set(e) in (entry_fields, entry_fields - {"sha256"}) for e in manifest["paths"].values())
    assert manifest["version"] == 1
    paths = manifest["paths"]
    assert manifest["staging"] is True
    assert manifest["user"]["supplementary_groups"] == ["video"]
    assert paths["/var/lib/edge-agent"] == {"type": "dir", "owner": "edge-agent", "group": "edge-agent", "mode": "0700"}
    assert paths["/etc/edge-agent/keys/device_ed25519.key"]["owner"] == "edge-agent"
    assert paths["/etc/edge-agent/keys/device_ed25519.key"]["mode"] == "0600"
    assert paths["/etc/edge-agent/agent.toml"] | {"sha256": ""} == {"type": "file", "owner": "root", "group": "edge-agent", "mode": "0640", "sha256": ""}
    # the manifest agrees with the disk for every path it lists
    for abs_path, entry in paths.items():
        p = root / abs_path.lstrip("/")
        assert mode(p) == int(entry["mode"], 8), abs_path
        if entry["type"] == "file":
            assert hashlib.sha256(p.read_bytes()).hexdigest() == entry["sha256"], abs_path

    # the installed config validates in place (keys relative to /etc/edge-agent)
    cfg = load_config(root / "etc/edge-agent/agent.toml", check_files=True, profiles_dir=root / "opt/edge-agent/hw/profiles")
    assert cfg.device.id == "bwv-0001"

    before = snapshot(root)
    second = install(root, "--config-dir", str(provisioned))
    assert second.returncode == 0, second.stderr
    assert "nothing to change: already installed" in second.stdout
    assert snapshot(root) == before, "a second run changes nothing (content, modes or mtimes)"


def test_install_restores_modes_and_refuses_to_replace_keys(tmp_path, provisioned):
    root = tmp_path / "root"
    assert install(root, "--config-dir", str(provisioned)).returncode == 0
    key = root / "etc/edge-agent/keys/device_ed25519.key"
    key.chmod(0o644)
    (root / "var/lib/edge-agent").chmod(0o755)
    assert install(root, "--config-dir", str(provisioned)).returncode == 0
    assert mode(key) == 0o600 and mode(root / "var/lib/edge-agent") == 0o700

    # a changed config is installed (config changes are normal; keys are not)
    cfg = provisioned / "agent.toml"
    cfg.write_text(cfg.read_text().replace('level = "INFO"', 'level = "DEBUG"'))
    updated = install(root, "--config-dir", str(provisioned))
    assert updated.returncode == 0 and "updated /etc/edge-agent/agent.toml" in updated.stdout
    assert 'level = "DEBUG"' in (root / "etc/edge-agent/agent.toml").read_text()
    assert mode(root / "etc/edge-agent/agent.toml") == 0o640

    key.write_text("a different key\n")
    result = install(root, "--config-dir", str(provisioned))
    assert result.returncode == 2
    assert "error: /etc/edge-agent/keys/device_ed25519.key already exists with different content" in result.stderr
    assert key.read_text() == "a different key\n"


def test_install_without_config_and_with_a_missing_config_dir(tmp_path):
    root = tmp_path / "root"
    result = install(root)
    assert result.returncode == 0, result.stderr
    assert (root / "etc/edge-agent/agent.toml.example").is_file()
    assert not (root / "etc/edge-agent/agent.toml").exists()
    assert "provision the device first" in result.stdout
    missing = install(root, "--config-dir", str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and "not found" in missing.stderr

"""Key directories: the file layout others rely on, 0600 private keys, no overwrite."""

from __future__ import annotations

import stat

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from edge_agent.crypto.keyfiles import load_public_key, public_raw
from edge_agent.errors import ConfigError, SecurityError
from edge_agent.identity.keys import (
    init_approver,
    init_authority,
    init_control_room,
    init_device,
    load_authority_key,
    load_device_keys,
)


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_authority_layout_and_permissions(tmp_path):
    paths = init_authority(tmp_path / "auth")
    assert paths.signing_key.name == "authority_ed25519.key"
    assert paths.public_key.name == "authority_ed25519.pub"
    assert _mode(paths.signing_key) == 0o600
    key = load_authority_key(tmp_path / "auth")
    pub = load_public_key(paths.public_key, Ed25519PublicKey)
    assert public_raw(key.public_key()) == public_raw(pub)


def test_device_layout_and_permissions(tmp_path):
    paths = init_device(tmp_path / "dev", "cam-01")
    names = sorted(p.name for p in (tmp_path / "dev").iterdir())
    assert names == ["device_ed25519.key", "device_ed25519.pub", "device_id", "device_x25519.key", "device_x25519.pub"]
    assert (tmp_path / "dev" / "device_id").read_text().strip() == "cam-01"
    assert _mode(paths.signing_key) == 0o600 and _mode(paths.sealing_key) == 0o600
    keys = load_device_keys(tmp_path / "dev")
    assert keys.device_id == "cam-01"
    assert public_raw(keys.sealing_public) == public_raw(load_public_key(paths.sealing_public, X25519PublicKey))
    assert public_raw(keys.signing_public) == public_raw(load_public_key(paths.signing_public, Ed25519PublicKey))


def test_control_room_and_approver_layouts(tmp_path):
    cr = init_control_room(tmp_path / "cr")
    assert (cr.sealing_key.name, cr.sealing_public.name) == ("control_room_x25519.key", "control_room_x25519.pub")
    assert _mode(cr.sealing_key) == 0o600
    ap = init_approver(tmp_path / "ap")
    assert ap.signing_key.name == "approver_ed25519.key" and _mode(ap.signing_key) == 0o600


@pytest.mark.parametrize("init", [init_authority, init_control_room, init_approver])
def test_refuses_to_overwrite(tmp_path, init):
    first = init(tmp_path / "k")
    before = first.directory.joinpath(sorted(p.name for p in first.directory.iterdir())[0]).read_bytes()
    with pytest.raises(SecurityError, match="refusing to overwrite"):
        init(tmp_path / "k")
    after = first.directory.joinpath(sorted(p.name for p in first.directory.iterdir())[0]).read_bytes()
    assert before == after


def test_device_refuses_to_overwrite_and_leaves_files_untouched(tmp_path):
    init_device(tmp_path / "d", "cam-01")
    before = {p.name: p.read_bytes() for p in (tmp_path / "d").iterdir()}
    with pytest.raises(SecurityError, match="refusing to overwrite"):
        init_device(tmp_path / "d", "cam-02")
    assert {p.name: p.read_bytes() for p in (tmp_path / "d").iterdir()} == before


@pytest.mark.parametrize("bad", ["", "a/b", "cam 1", "cam+1", "#", "x" * 65, "-lead"])
def test_device_id_validated(tmp_path, bad):
    with pytest.raises(ConfigError, match="invalid device id"):
        init_device(tmp_path / "d", bad)


def test_loading_refuses_world_readable_private_key(tmp_path):
    paths = init_device(tmp_path / "d", "cam-01")
    paths.signing_key.chmod(0o644)
    with pytest.raises(SecurityError, match="chmod 600"):
        load_device_keys(tmp_path / "d")

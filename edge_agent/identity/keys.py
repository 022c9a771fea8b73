"""Key directories for the three parties: the central authority, each device, the control room.

The file names are an interface: provisioning scripts and the MQTT side find keys by them.

* authority dir: ``authority_ed25519.key`` / ``.pub`` — signs deployments and watchlists.
* approver dir: ``approver_ed25519.key`` / ``.pub`` — second signature when a deployment lowers
  the alert threshold below the calibrated default (a different person from the authority).
* device dir: ``device_id`` (text), ``device_ed25519.key`` / ``.pub`` (signs events and audit
  checkpoints), ``device_x25519.key`` / ``.pub`` (receives sealed watchlist keys).
* control-room dir: ``control_room_x25519.key`` / ``.pub`` (opens sealed alert crops).

Private keys are written 0600 and never overwritten (``edge_agent.crypto.keyfiles``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from edge_agent.crypto.keyfiles import load_private_key, load_public_key, write_private_key, write_public_key
from edge_agent.errors import ConfigError, SecurityError
from edge_agent.identifiers import check_device_id

AUTHORITY_KEY = "authority_ed25519.key"
AUTHORITY_PUB = "authority_ed25519.pub"
APPROVER_KEY = "approver_ed25519.key"
APPROVER_PUB = "approver_ed25519.pub"
DEVICE_ID_FILE = "device_id"
DEVICE_SIGN_KEY = "device_ed25519.key"
DEVICE_SIGN_PUB = "device_ed25519.pub"
DEVICE_SEAL_KEY = "device_x25519.key"
DEVICE_SEAL_PUB = "device_x25519.pub"
CONTROL_ROOM_KEY = "control_room_x25519.key"
CONTROL_ROOM_PUB = "control_room_x25519.pub"
# The control room's Ed25519 key: it signs receipts and adjudication notices; devices pin the public half.
RECEIPT_KEY = "control_room_ed25519.key"
RECEIPT_PUB = "control_room_ed25519.pub"


@dataclass(frozen=True)
class AuthorityKeyPaths:
    directory: Path
    signing_key: Path
    public_key: Path


@dataclass(frozen=True)
class ApproverKeyPaths:
    directory: Path
    signing_key: Path
    public_key: Path


@dataclass(frozen=True)
class DeviceKeyPaths:
    directory: Path
    device_id: str
    device_id_file: Path
    signing_key: Path
    signing_public: Path
    sealing_key: Path
    sealing_public: Path


@dataclass(frozen=True)
class ControlRoomKeyPaths:
    directory: Path
    sealing_key: Path
    sealing_public: Path
    receipt_key: Path | None = None
    receipt_public: Path | None = None


@dataclass(frozen=True)
class DeviceKeys:
    """A device's loaded private keys: what the agent needs to open watchlists and sign."""

    device_id: str
    signing_key: Ed25519PrivateKey
    sealing_key: X25519PrivateKey

    @property
    def signing_public(self) -> Ed25519PublicKey:
        return self.signing_key.public_key()

    @property
    def sealing_public(self) -> X25519PublicKey:
        return self.sealing_key.public_key()


def _refuse_existing(*paths: Path) -> None:
    # Check every file first so a refusal leaves the directory exactly as it was.
    for path in paths:
        if path.exists():
            raise SecurityError(
                f"refusing to overwrite existing key file {path}",
                "keys are never replaced in place; move the old directory away first if you really mean it",
            )


def init_authority(directory: Path) -> AuthorityKeyPaths:
    d = Path(directory)
    paths = AuthorityKeyPaths(d, d / AUTHORITY_KEY, d / AUTHORITY_PUB)
    _refuse_existing(paths.signing_key, paths.public_key)
    key = Ed25519PrivateKey.generate()
    write_private_key(paths.signing_key, key)
    write_public_key(paths.public_key, key.public_key())
    return paths


def init_approver(directory: Path) -> ApproverKeyPaths:
    d = Path(directory)
    paths = ApproverKeyPaths(d, d / APPROVER_KEY, d / APPROVER_PUB)
    _refuse_existing(paths.signing_key, paths.public_key)
    key = Ed25519PrivateKey.generate()
    write_private_key(paths.signing_key, key)
    write_public_key(paths.public_key, key.public_key())
    return paths


def device_key_paths(directory: Path, device_id: str) -> DeviceKeyPaths:
    d = Path(directory)
    return DeviceKeyPaths(
        d, device_id, d / DEVICE_ID_FILE, d / DEVICE_SIGN_KEY, d / DEVICE_SIGN_PUB, d / DEVICE_SEAL_KEY, d / DEVICE_SEAL_PUB
    )


def init_device(directory: Path, device_id: str) -> DeviceKeyPaths:
    paths = device_key_paths(directory, check_device_id(device_id))
    _refuse_existing(paths.device_id_file, paths.signing_key, paths.signing_public, paths.sealing_key, paths.sealing_public)
    sign = Ed25519PrivateKey.generate()
    seal = X25519PrivateKey.generate()
    write_private_key(paths.signing_key, sign)
    write_public_key(paths.signing_public, sign.public_key())
    write_private_key(paths.sealing_key, seal)
    write_public_key(paths.sealing_public, seal.public_key())
    fd = os.open(paths.device_id_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(device_id + "\n")
    return paths


def init_control_room(directory: Path) -> ControlRoomKeyPaths:
    """The control room's X25519 key (opens crops) and Ed25519 key (signs receipts), each 0600. A
    control room made before receipts existed gets only the missing Ed25519 key."""
    d = Path(directory)
    paths = ControlRoomKeyPaths(d, d / CONTROL_ROOM_KEY, d / CONTROL_ROOM_PUB, d / RECEIPT_KEY, d / RECEIPT_PUB)
    receipt_key, receipt_public = d / RECEIPT_KEY, d / RECEIPT_PUB
    has_sealing = paths.sealing_key.exists() and paths.sealing_public.exists()
    if not has_sealing:
        _refuse_existing(paths.sealing_key, paths.sealing_public)
    _refuse_existing(receipt_key, receipt_public)
    if not has_sealing:
        key = X25519PrivateKey.generate()
        write_private_key(paths.sealing_key, key)
        write_public_key(paths.sealing_public, key.public_key())
    signing = Ed25519PrivateKey.generate()
    write_private_key(receipt_key, signing)
    write_public_key(receipt_public, signing.public_key())
    return paths


def read_device_id(directory: Path) -> str:
    path = Path(directory) / DEVICE_ID_FILE
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise ConfigError(f"device id file {path} not found", "run: edge-agent keys init-device --id ID DIR") from None
    except UnicodeDecodeError:
        raise ConfigError(f"device id file {path} is not ASCII text", "restore it from provisioning") from None
    return check_device_id(text)


def load_device_keys(directory: Path) -> DeviceKeys:
    """Load a device directory's id and private keys (refusing group/other-readable key files)."""
    d = Path(directory)
    device_id = read_device_id(d)
    return DeviceKeys(
        device_id=device_id,
        signing_key=load_private_key(d / DEVICE_SIGN_KEY, Ed25519PrivateKey),
        sealing_key=load_private_key(d / DEVICE_SEAL_KEY, X25519PrivateKey),
    )


def load_authority_key(path: Path) -> Ed25519PrivateKey:
    """Accept either the key file or the authority directory."""
    p = Path(path)
    return load_private_key(p / AUTHORITY_KEY if p.is_dir() else p, Ed25519PrivateKey)


def load_authority_public(path: Path) -> Ed25519PublicKey:
    p = Path(path)
    return load_public_key(p / AUTHORITY_PUB if p.is_dir() else p, Ed25519PublicKey)


def load_approver_key(path: Path) -> Ed25519PrivateKey:
    p = Path(path)
    return load_private_key(p / APPROVER_KEY if p.is_dir() else p, Ed25519PrivateKey)


def load_approver_public(path: Path) -> Ed25519PublicKey:
    p = Path(path)
    return load_public_key(p / APPROVER_PUB if p.is_dir() else p, Ed25519PublicKey)

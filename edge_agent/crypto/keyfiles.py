"""Ed25519 / X25519 key files: private keys written 0600, never overwritten, raw 32-byte encodings.

Files are PEM (PKCS#8 for private, SubjectPublicKeyInfo for public) so that standard tools
(``openssl pkey``) can inspect them.
"""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path
from typing import TypeVar

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from edge_agent.errors import SecurityError

PrivateKey = Ed25519PrivateKey | X25519PrivateKey
PublicKey = Ed25519PublicKey | X25519PublicKey
K = TypeVar("K")


def write_private_key(path: Path, key: PrivateKey) -> None:
    """Create ``path`` with mode 0600 (refusing to overwrite an existing key)."""
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _write_exclusive(path, pem, 0o600)


def write_public_key(path: Path, key: PublicKey) -> None:
    pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    _write_exclusive(path, pem, 0o644)


def _write_exclusive(path: Path, data: bytes, mode: int) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise SecurityError(
            f"refusing to overwrite existing key file {path}",
            "move it away first if you really mean to replace this key",
        ) from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(path, mode)  # umask may have narrowed or widened the mode passed to open()


def load_private_key(path: Path, kind: type[K]) -> K:
    """Load a private key of the given class; refuse files readable by group or others."""
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise SecurityError(f"private key file {path} not found", "check the path in your config") from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SecurityError(
            f"private key file {path} is accessible by group/others (mode {stat.S_IMODE(st.st_mode):o})",
            f"run: chmod 600 {path}",
        )
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except ValueError as exc:
        raise SecurityError(f"{path} is not a readable PEM private key: {exc}", "regenerate or restore the key") from None
    if not isinstance(key, kind):
        raise SecurityError(f"{path} holds a {type(key).__name__}, expected {kind.__name__}", "check which key file the config names")
    return key


def load_public_key(path: Path, kind: type[K]) -> K:
    path = Path(path)
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except FileNotFoundError:
        raise SecurityError(f"public key file {path} not found", "check the path") from None
    except ValueError as exc:
        raise SecurityError(f"{path} is not a readable PEM public key: {exc}", "restore the key file") from None
    if not isinstance(key, kind):
        raise SecurityError(f"{path} holds a {type(key).__name__}, expected {kind.__name__}", "check which key file is named")
    return key


def public_raw(key: PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_b64(key: PublicKey) -> str:
    """Raw public key as standard base64, the form used in registries and documents."""
    return base64.b64encode(public_raw(key)).decode("ascii")


def ed25519_public_from_b64(text: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(_b64_32(text))


def x25519_public_from_b64(text: str) -> X25519PublicKey:
    return X25519PublicKey.from_public_bytes(_b64_32(text))


def _b64_32(text: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:
        raise SecurityError("public key is not valid base64", "copy the key again from the registry") from None
    if len(raw) != 32:
        raise SecurityError(f"public key has {len(raw)} bytes, expected 32", "copy the key again from the registry")
    return raw

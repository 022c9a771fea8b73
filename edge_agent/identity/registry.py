"""The authority's device registry: which public keys belong to which device id.

The watchlist builder seals content keys to the X25519 keys listed here, and the control-room
listener verifies event signatures with the Ed25519 keys listed here. Format: docs/formats/registry.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from edge_agent.crypto.canonical import CanonicalJsonError, format_utc, parse_utc
from edge_agent.crypto.keyfiles import ed25519_public_from_b64, public_b64, x25519_public_from_b64
from edge_agent.durable import atomic_write
from edge_agent.errors import ConfigError, SecurityError
from edge_agent.identifiers import check_device_id
from edge_agent.safe_load import json_loads

REGISTRY_VERSION = 1


@dataclass(frozen=True)
class DeviceEntry:
    ed25519: str  # base64 raw public key
    x25519: str
    added: str  # ISO 8601 UTC


@dataclass
class DeviceRegistry:
    devices: dict[str, DeviceEntry] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> "DeviceRegistry":
        path = Path(path)
        try:
            doc = json_loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"device registry {path} not found", "create it with: edge-agent keys init-device --registry FILE ...") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise ConfigError(f"device registry {path} is not valid JSON: {exc}", "restore it from backup") from None
        if not isinstance(doc, dict) or doc.get("version") != REGISTRY_VERSION or not isinstance(doc.get("devices"), dict):
            raise ConfigError(
                f"device registry {path} is not a version {REGISTRY_VERSION} registry",
                'expected {"version": 1, "devices": {...}}',
            )
        devices: dict[str, DeviceEntry] = {}
        for device_id, entry in doc["devices"].items():
            try:
                check_device_id(device_id)
                item = DeviceEntry(str(entry["ed25519"]), str(entry["x25519"]), str(entry["added"]))
                ed25519_public_from_b64(item.ed25519)
                x25519_public_from_b64(item.x25519)
                parse_utc(item.added, "added")
            except (KeyError, TypeError, ConfigError, SecurityError, CanonicalJsonError) as exc:
                raise ConfigError(f"device registry {path}: entry {device_id!r} is invalid ({exc})", "fix or remove that entry") from None
            devices[device_id] = item
        return cls(devices)

    def to_json(self) -> dict:
        return {
            "version": REGISTRY_VERSION,
            "devices": {
                device_id: {"ed25519": e.ed25519, "x25519": e.x25519, "added": e.added}
                for device_id, e in sorted(self.devices.items())
            },
        }

    def save(self, path: Path) -> None:
        """Write atomically (temp file in the same directory, fsync, rename) so a crash never leaves half a registry."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = (json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n").encode("utf-8")
        atomic_write(path, data, 0o644)  # public keys only

    def add(self, device_id: str, ed25519_pub: Ed25519PublicKey, x25519_pub: X25519PublicKey, now: datetime) -> DeviceEntry:
        check_device_id(device_id)
        if device_id in self.devices:
            raise ConfigError(
                f"device {device_id!r} is already in the registry",
                "device keys are not replaced silently; remove the old entry deliberately first",
            )
        entry = DeviceEntry(public_b64(ed25519_pub), public_b64(x25519_pub), format_utc(now))
        self.devices[device_id] = entry
        return entry

    def remove(self, device_id: str) -> DeviceEntry:
        """Retire a device (lost, replaced): its keys no longer verify events or receive watchlists."""
        entry = self._entry(device_id)
        del self.devices[device_id]
        return entry

    def _entry(self, device_id: str) -> DeviceEntry:
        try:
            return self.devices[device_id]
        except KeyError:
            raise SecurityError(
                f"device {device_id!r} is not in the device registry",
                "register it with: edge-agent keys init-device --id ID DIR --registry FILE",
            ) from None

    def signing_key(self, device_id: str) -> Ed25519PublicKey:
        return ed25519_public_from_b64(self._entry(device_id).ed25519)

    def sealing_key(self, device_id: str) -> X25519PublicKey:
        return x25519_public_from_b64(self._entry(device_id).x25519)

    def __contains__(self, device_id: object) -> bool:
        return device_id in self.devices

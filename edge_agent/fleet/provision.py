"""Provision one device centrally: keys, MQTT client certificate, registry entry and agent.toml.

The output directory is exactly what goes to ``/etc/edge-agent`` on the device (install.py
copies it there): ``agent.toml``, ``keys/`` and ``tls/``. It is built in a temporary sibling
directory and renamed into place, so a failure never leaves a half-provisioned device, and the
device's public keys are registered with the authority only once its files are complete.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from edge_agent.agent.config import load_config
from edge_agent.crypto.keyfiles import load_public_key
from edge_agent.errors import ConfigError
from edge_agent.fleet import pki
from edge_agent.identifiers import check_device_id
from edge_agent.identity import keys as idkeys
from edge_agent.identity.registry import DeviceEntry, DeviceRegistry

REPO = Path(__file__).resolve().parents[2]
DEFAULT_TEMPLATE = REPO / "deploy" / "templates" / "agent.toml"


@dataclass(frozen=True)
class DeviceSettings:
    """Per-device values written into agent.toml."""

    device_id: str
    mqtt_host: str
    mqtt_port: int = 8883
    profile: str = "pi5"
    capture_source: str = "picamera:0"


@dataclass(frozen=True)
class ProvisionedDevice:
    device_id: str
    directory: Path
    config_path: Path
    client_cert: Path
    registry_entry: DeviceEntry


def toml_value(value: Any) -> str:
    """Encode a str/int/float/bool as a TOML value (JSON strings are valid TOML basic strings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=True)
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def render_config(template: str, values: dict[tuple[str, str], Any]) -> str:
    """Set ``[section] key = value`` lines in the template, keeping its comments and layout.

    An existing (uncommented) line is replaced; otherwise the key is added under the header.
    """
    lines = template.splitlines()
    pending = dict(values)
    section = ""
    out: list[str] = []
    header = re.compile(r"^\s*\[([A-Za-z0-9_.-]+)\]\s*(#.*)?$")
    for line in lines:
        m = header.match(line)
        if m:
            section = m.group(1)
            out.append(line)
            for (sec, key), value in list(pending.items()):
                if sec == section and not _has_key(lines, section, key):
                    out.append(f"{key} = {toml_value(value)}")
                    del pending[(sec, key)]
            continue
        km = re.match(r"^(\s*)([A-Za-z0-9_-]+)(\s*=\s*)(\"(?:[^\"\\]|\\.)*\"|[^#\s]+)(\s*#.*)?$", line)
        if km and (section, km.group(2)) in pending:
            value = pending.pop((section, km.group(2)))
            line = f"{km.group(1)}{km.group(2)}{km.group(3)}{toml_value(value)}{km.group(5) or ''}"
        out.append(line)
    if pending:
        for (sec, key), value in pending.items():
            out += ["", f"[{sec}]", f"{key} = {toml_value(value)}"]
    return "\n".join(out) + "\n"


def _has_key(lines: list[str], section: str, key: str) -> bool:
    current = ""
    for line in lines:
        m = re.match(r"^\s*\[([A-Za-z0-9_.-]+)\]", line)
        if m:
            current = m.group(1)
        elif current == section and re.match(rf"^\s*{re.escape(key)}\s*=", line):
            return True
    return False


def provision_device(
    settings: DeviceSettings,
    out_dir: str | Path,
    ca_dir: str | Path,
    registry_path: str | Path,
    authority_public_key: str | Path,
    control_room_public_key: str | Path,
    *,
    template: str | Path = DEFAULT_TEMPLATE,
    now: datetime | None = None,
    receipt_public_key: str | Path | None = None,
) -> ProvisionedDevice:
    """Create everything a device needs in ``out_dir`` and register it; refuses to reuse an id."""
    now = now or datetime.now(UTC)
    device_id = check_device_id(settings.device_id)
    out = Path(out_dir)
    registry_path = Path(registry_path)
    if out.exists():
        raise ConfigError(f"{out} already exists", "each device is provisioned once into a new directory; move the old one away")
    registry = DeviceRegistry.load(registry_path) if registry_path.exists() else DeviceRegistry()
    if device_id in registry:
        raise ConfigError(
            f"device {device_id!r} is already in the registry {registry_path}",
            "device keys are never replaced silently; retire the old entry deliberately first",
        )
    authority = load_public_key(Path(authority_public_key), Ed25519PublicKey)
    control_room = load_public_key(Path(control_room_public_key), X25519PublicKey)
    # The receipt key sits beside the crop key (edge-agent keys init-control-room makes both).
    receipt_public_key = Path(receipt_public_key) if receipt_public_key is not None else Path(control_room_public_key).with_name(idkeys.RECEIPT_PUB)
    if not receipt_public_key.is_file():
        raise ConfigError(
            f"the control room's receipt key {receipt_public_key} is missing",
            "run edge-agent keys init-control-room on the control room's key directory (it adds the Ed25519 receipt key)",
        )
    receipt = load_public_key(receipt_public_key, Ed25519PublicKey)
    del authority, control_room, receipt  # loaded only to prove the files hold the right kind of key
    ca = pki.load_ca(ca_dir)
    template_text = Path(template).read_text(encoding="utf-8")

    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        work.chmod(0o750)
        key_paths = idkeys.init_device(work / "keys", device_id)
        shutil.copyfile(authority_public_key, work / "keys" / idkeys.AUTHORITY_PUB)
        shutil.copyfile(control_room_public_key, work / "keys" / idkeys.CONTROL_ROOM_PUB)
        shutil.copyfile(receipt_public_key, work / "keys" / idkeys.RECEIPT_PUB)
        tls = work / "tls"
        client = pki.issue_client_cert(ca, tls, device_id, now=now)
        shutil.copyfile(ca.cert_path, tls / "ca.pem")
        config_text = render_config(
            template_text,
            {
                ("device", "id"): device_id,
                ("hardware", "profile"): settings.profile,
                ("capture", "source"): settings.capture_source,
                ("mqtt", "host"): settings.mqtt_host,
                ("mqtt", "port"): settings.mqtt_port,
            },
        )
        (work / "agent.toml").write_text(config_text, encoding="utf-8")
        cfg = load_config(work / "agent.toml", check_files=True)
        if cfg.device.id != device_id or cfg.mqtt is None or cfg.mqtt.host != settings.mqtt_host:
            raise ConfigError(f"template {template} did not take the device settings", "check the template has [device] and [mqtt]")
        signing_pub = load_public_key(key_paths.signing_public, Ed25519PublicKey)
        sealing_pub = load_public_key(key_paths.sealing_public, X25519PublicKey)
        work.rename(out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    try:
        entry = registry.add(device_id, signing_pub, sealing_pub, now)
        registry.save(registry_path)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)  # an unregistered device must not look provisioned
        raise
    return ProvisionedDevice(device_id, out, out / "agent.toml", out / "tls" / client.cert_path.name, entry)

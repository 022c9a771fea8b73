"""A local Mosquitto broker with TLS, client certificates and the per-device ACL: for tests and the demo.

``MosquittoBroker`` starts ``/usr/sbin/mosquitto -c <conf>`` on a free loopback port with
``require_certificate true`` and ``use_identity_as_username true`` (the certificate CN is the MQTT
user), the fleet CA's CRL (``crlfile``: revoked certificates cannot connect), the same
dynamic-security rules production brokers get (edge_agent.fleet.broker_security: each device
publishes only its own alert/status/telemetry and reads only its own receipts and adjudications;
it can never subscribe to alerts or join the control room's shared group), and ``persistence
true`` so a restart keeps queued QoS 1 messages of persistent sessions. ``messaging_env``
provisions the PKI (edge_agent.fleet.pki), device and control-room keys and a device registry.
Production brokers use deploy/mosquitto/ instead.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from edge_agent.errors import EdgeAgentError
from edge_agent.fleet.broker_security import CONTROL_ROOM_USER, find_dynsec_plugin, write_dynsec_config


class BrokerUnavailable(EdgeAgentError):
    """Mosquitto is not installed or would not start."""


def find_mosquitto() -> str | None:
    """$MOSQUITTO, then PATH, then Debian's /usr/sbin/mosquitto (not on a normal user's PATH)."""
    for candidate in (os.environ.get("MOSQUITTO"), shutil.which("mosquitto"), "/usr/sbin/mosquitto"):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class ClientIdentity:
    """TLS client credentials for one MQTT user (device id or the control room)."""

    name: str
    cert: Path
    key: Path


@dataclass
class MessagingEnv:
    """Everything a messaging test needs: CA, certificates, keys and the device registry."""

    root: Path
    ca_cert: Path
    ca_dir: Path
    server_cert: Path
    server_key: Path
    registry_path: Path
    control_room_dir: Path
    devices: dict[str, Path] = field(default_factory=dict)  # device id -> key directory
    clients: dict[str, ClientIdentity] = field(default_factory=dict)  # MQTT user -> TLS identity

    @property
    def control_room_key(self) -> Path:
        return self.control_room_dir / "control_room_x25519.key"

    @property
    def control_room_pub(self) -> Path:
        return self.control_room_dir / "control_room_x25519.pub"

    @property
    def receipt_key(self) -> Path:
        """The control room's Ed25519 key: it signs receipts and adjudication notices."""
        return self.control_room_dir / "control_room_ed25519.key"

    @property
    def receipt_pub(self) -> Path:
        return self.control_room_dir / "control_room_ed25519.pub"

    @property
    def crl(self) -> Path:
        return self.ca_dir / "crl.pem"

    def device_ids(self) -> list[str]:
        return sorted(self.devices)


def _pki_paths(issued: object) -> tuple[Path, Path]:
    """(certificate, private key) paths of an edge_agent.fleet.pki CA or IssuedCert."""
    return Path(issued.cert_path), Path(issued.key_path)  # type: ignore[attr-defined]


def make_messaging_env(root: Path, device_ids: tuple[str, ...] = ("cam-01", "cam-02")) -> MessagingEnv:
    """Provision a CA, a server cert for 127.0.0.1/localhost, client certs (CN = device id /
    control-room), device Ed25519/X25519 keys, the control-room X25519 key and a registry."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    from edge_agent.crypto.keyfiles import write_private_key, write_public_key
    from edge_agent.fleet import pki
    from edge_agent.identity.registry import DeviceRegistry

    root.mkdir(parents=True, exist_ok=True)
    ca = pki.create_ca(root / "ca", "edge-agent test CA")
    server = pki.issue_server_cert(ca, root / "server", ["localhost"], ["127.0.0.1"])
    server_cert, server_key = _pki_paths(server)
    ca_cert, _ = _pki_paths(ca)

    control_room_dir = root / "control-room"
    from edge_agent.identity.keys import init_control_room

    init_control_room(control_room_dir)  # X25519 (opens crops) and Ed25519 (signs receipts), 0600

    registry = DeviceRegistry()
    env = MessagingEnv(root, ca_cert, root / "ca", server_cert, server_key, root / "registry.json", control_room_dir)
    now = datetime.now(timezone.utc)
    for device_id in device_ids:
        ddir = root / "devices" / device_id
        sign, seal = Ed25519PrivateKey.generate(), X25519PrivateKey.generate()
        write_private_key(ddir / "device_ed25519.key", sign)
        write_public_key(ddir / "device_ed25519.pub", sign.public_key())
        write_private_key(ddir / "device_x25519.key", seal)
        write_public_key(ddir / "device_x25519.pub", seal.public_key())
        (ddir / "device_id").write_text(device_id + "\n")
        registry.add(device_id, sign.public_key(), seal.public_key(), now)
        env.devices[device_id] = ddir
        cert, key = _pki_paths(pki.issue_client_cert(ca, root / "clients" / device_id, device_id))
        env.clients[device_id] = ClientIdentity(device_id, cert, key)
    registry.save(env.registry_path)
    cert, key = _pki_paths(pki.issue_client_cert(ca, root / "clients" / CONTROL_ROOM_USER, CONTROL_ROOM_USER))
    env.clients[CONTROL_ROOM_USER] = ClientIdentity(CONTROL_ROOM_USER, cert, key)
    return env


class MosquittoBroker:
    """One Mosquitto process; ``stop()``/``start()`` keep the port and the persistence dir."""

    def __init__(self, env: MessagingEnv, workdir: Path, port: int | None = None, autosave_interval_s: int = 5) -> None:
        self.env = env
        self.workdir = Path(workdir)
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.proc: subprocess.Popen[bytes] | None = None
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "data").mkdir(exist_ok=True)
        self.security = self.workdir / "dynamic-security.json"
        self.write_security()
        self.conf = self.workdir / "mosquitto.conf"
        self.log = self.workdir / "mosquitto.log"
        self.conf.write_text(
            f"user {pwd.getpwuid(os.getuid()).pw_name}\n"  # do not drop to 'mosquitto' (it could not read tmp files)
            "per_listener_settings false\n"
            "persistence true\n"
            f"persistence_location {self.workdir / 'data'}/\n"
            f"autosave_interval {autosave_interval_s}\n"  # also saved on every clean shutdown
            f"log_dest file {self.log}\n"
            "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
            "connection_messages true\n"
            "allow_anonymous false\n"
            f"plugin {find_dynsec_plugin() or 'mosquitto_dynamic_security.so'}\n"
            f"plugin_opt_config_file {self.security}\n"
            "max_queued_messages 100000\n"
            "set_tcp_nodelay true\n"
            f"listener {self.port} 127.0.0.1\n"
            f"cafile {env.ca_cert}\n"
            f"certfile {env.server_cert}\n"
            f"keyfile {env.server_key}\n"
            f"crlfile {env.crl}\n"
            "require_certificate true\n"
            "use_identity_as_username true\n"
            "tls_version tlsv1.2\n"
        )

    def write_security(self) -> None:
        """(Re)write the broker's rules for the env's devices; takes effect at the next start."""
        write_dynsec_config(self.security, self.env.device_ids())

    @property
    def url(self) -> str:
        return f"mqtts://{self.host}:{self.port}"

    def start(self, timeout_s: float = 10.0) -> "MosquittoBroker":
        if self.proc is not None and self.proc.poll() is None:
            return self
        binary = find_mosquitto()
        if binary is None:
            raise BrokerUnavailable("Mosquitto is not installed", "install it: apt-get install mosquitto (Debian, Raspberry Pi OS) or brew install mosquitto")
        if find_dynsec_plugin() is None:
            raise BrokerUnavailable(
                "Mosquitto's dynamic-security plugin (mosquitto_dynamic_security.so) is not installed",
                "it ships with Mosquitto 2.0 (Debian: apt-get install mosquitto); set MOSQUITTO_DYNSEC to its path if it lives elsewhere",
            )
        self.proc = subprocess.Popen([binary, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                stderr = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise BrokerUnavailable(f"mosquitto exited: {stderr}\n{self.log_text()}", "see the broker log above; is the port free?")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop(kill=True)  # a broker that never listened must not be left running
        raise BrokerUnavailable(f"mosquitto did not listen on {self.port}: {self.log_text()}", "check nothing else holds the port")

    def stop(self, kill: bool = False) -> None:
        """SIGTERM (Mosquitto saves its persistence file) or SIGKILL."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def broker_config(self, user: str):
        """An edge_agent BrokerConfig for a client authenticating as ``user``."""
        from edge_agent.events.mqtt_connection import BrokerConfig

        ident = self.env.clients[user]
        return BrokerConfig.from_url(self.url, self.env.ca_cert, ident.cert, ident.key, keepalive_s=5)



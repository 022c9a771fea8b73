"""Fleet PKI (real X.509, checked by openssl) and the shipped Mosquitto template on a real broker."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import ssl
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID

from edge_agent.errors import SecurityError
from edge_agent.fleet import pki
from edge_agent.fleet.local_broker import free_port

REPO = Path(__file__).resolve().parents[2]


def openssl_verify(ca: Path, cert: Path, purpose: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", "verify", "-purpose", purpose, "-CAfile", str(ca), str(cert)], check=False, capture_output=True, text=True)


def test_ca_server_and_client_certificates(tmp_path):
    now = datetime(2026, 6, 1, tzinfo=UTC)
    ca = pki.create_ca(tmp_path / "ca", "Fleet CA", now=now)
    server = pki.issue_server_cert(ca, tmp_path / "srv", ["mqtt.example"], ["127.0.0.1"], now=now)
    client = pki.issue_client_cert(ca, tmp_path / "dev", "bwv-0001", now=now)
    for path in (ca.key_path, server.key_path, client.key_path):
        assert path.stat().st_mode & 0o777 == 0o600
    assert ca.name == "Fleet CA"
    assert pki.common_name(client.certificate) == "bwv-0001"
    if shutil.which("openssl"):
        assert openssl_verify(ca.cert_path, server.cert_path, "sslserver").returncode == 0
        assert openssl_verify(ca.cert_path, client.cert_path, "sslclient").returncode == 0
        # a device certificate cannot pose as the broker
        assert openssl_verify(ca.cert_path, client.cert_path, "sslserver").returncode != 0
    eku = client.certificate.extensions.get_extension_for_class(pki.x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    san = server.certificate.extensions.get_extension_for_class(pki.x509.SubjectAlternativeName).value
    assert san.get_values_for_type(pki.x509.DNSName) == ["mqtt.example"]
    assert client.certificate.not_valid_after_utc == now + timedelta(days=825)
    # reload from disk, and refuse to clobber
    again = pki.load_ca(tmp_path / "ca")
    assert again.certificate == ca.certificate
    with pytest.raises(SecurityError, match="refusing to overwrite"):
        pki.create_ca(tmp_path / "ca", "Fleet CA")
    with pytest.raises(SecurityError, match="refusing to overwrite"):
        pki.issue_client_cert(ca, tmp_path / "dev", "bwv-0001")
    ca.key_path.chmod(0o640)
    with pytest.raises(SecurityError, match="chmod 600"):
        pki.load_ca(tmp_path / "ca")


# --- the broker template ----------------------------------------------------------------------
@pytest.fixture
def broker(tmp_path, require_mosquitto):
    ca = pki.create_ca(tmp_path / "ca", "Fleet CA")
    server = pki.issue_server_cert(ca, tmp_path / "srv", ["localhost"], ["127.0.0.1"])
    port = free_port()
    (tmp_path / "data").mkdir()
    conf = (REPO / "deploy" / "mosquitto" / "edge-agent.conf").read_text()
    replacements = {
        "/etc/mosquitto/certs/ca.pem": str(ca.cert_path),
        "/etc/mosquitto/certs/server.pem": str(server.cert_path),
        "/etc/mosquitto/certs/server.key": str(server.key_path),
        "/etc/mosquitto/edge-agent.acl": str(REPO / "deploy" / "mosquitto" / "edge-agent.acl"),
        "/var/lib/mosquitto/": f"{tmp_path / 'data'}/",
        "log_dest syslog": f"log_dest file {tmp_path / 'mosquitto.log'}",
        "listener 8883": f"listener {port} 127.0.0.1",
    }
    for old, new in replacements.items():
        assert old in conf, old
        conf = conf.replace(old, new)
    # run as the test's own user (as root, mosquitto would otherwise switch to "mosquitto" and lose access to tmp_path)
    conf += f"\nuser {pwd.getpwuid(os.getuid()).pw_name}\n"
    (tmp_path / "mosquitto.conf").write_text(conf)
    proc = subprocess.Popen([require_mosquitto, "-c", str(tmp_path / "mosquitto.conf")], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while True:
        assert proc.poll() is None, proc.stderr.read().decode()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "mosquitto did not start"
            time.sleep(0.05)
    yield ca, port, tmp_path
    proc.terminate()
    proc.wait(10)


class Client:
    def __init__(self, ca_file: Path, cert: Path | None, key: Path | None, port: int, client_id: str) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.rc = None
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
        self.c.tls_set(ca_certs=str(ca_file), certfile=str(cert) if cert else None, keyfile=str(key) if key else None)
        self.c.on_connect = self._on_connect
        self.c.on_message = lambda c, u, m: self.messages.append((m.topic, m.payload))
        self.c.on_subscribe = lambda *a: self.subscribed.set()
        self.ended = threading.Event()
        self.c.on_disconnect = lambda *a: self.ended.set()
        self.c.on_connect_fail = lambda *a: self.ended.set()
        self.port = port

    def _on_connect(self, client, userdata, flags, rc, props=None):
        self.rc = rc
        if not rc.is_failure:
            self.connected.set()
        self.ended.set()

    def start(self) -> Client:
        self.c.connect("127.0.0.1", self.port, keepalive=10)
        self.c.loop_start()
        assert self.connected.wait(5), f"not connected: {self.rc}"
        return self

    def stop(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()

    def wait_for(self, payload: bytes, timeout: float = 5) -> None:
        deadline = time.monotonic() + timeout
        while not any(p == payload for _, p in self.messages):
            assert time.monotonic() < deadline, f"{payload!r} never arrived; got {self.messages}"
            time.sleep(0.02)


@pytest.mark.broker
def test_broker_template_enforces_per_device_acl(broker):
    ca, port, tmp = broker
    dev1 = pki.issue_client_cert(ca, tmp / "bwv-1", "bwv-1")
    room = pki.issue_client_cert(ca, tmp / "room", "control-room")
    console = Client(ca.cert_path, room.cert_path, room.key_path, port, "console-1").start()
    console.c.subscribe("lfr/v1/+/alert", qos=1)
    assert console.subscribed.wait(5)
    device = Client(ca.cert_path, dev1.cert_path, dev1.key_path, port, "bwv-1").start()
    device.c.publish("lfr/v1/bwv-2/alert", b"spoofed", qos=1).wait_for_publish(5)  # another device's topic
    console.c.publish("lfr/v1/bwv-1/alert", b"forged by console", qos=1).wait_for_publish(5)
    device.c.publish("lfr/v1/bwv-1/alert", b"genuine", qos=1).wait_for_publish(5)
    console.wait_for(b"genuine")
    time.sleep(0.2)
    assert [p for _, p in console.messages] == [b"genuine"], "denied publishes were dropped by the ACL"
    assert console.messages[0][0] == "lfr/v1/bwv-1/alert"
    device.stop()
    console.stop()


def never_connects(client: Client) -> bool:
    """True when the broker refuses the TLS session (at handshake or on the first read)."""
    try:
        client.c.connect("127.0.0.1", client.port, keepalive=5)
    except (ssl.SSLError, OSError):
        return True
    deadline = time.monotonic() + 5
    while not client.ended.is_set() and time.monotonic() < deadline:
        if client.c.loop(0.05) != mqtt.MQTT_ERR_SUCCESS:
            break
    connected = client.connected.is_set()
    client.c.disconnect()
    return not connected


@pytest.mark.broker
def test_broker_template_rejects_foreign_or_missing_certificates(broker):
    ca, port, tmp = broker
    good = pki.issue_client_cert(ca, tmp / "bwv-1", "bwv-1")
    assert not never_connects(Client(ca.cert_path, good.cert_path, good.key_path, port, "bwv-1")), "control case connects"
    other = pki.create_ca(tmp / "other-ca", "Someone else")
    rogue = pki.issue_client_cert(other, tmp / "rogue", "bwv-1")
    assert never_connects(Client(ca.cert_path, rogue.cert_path, rogue.key_path, port, "rogue"))
    assert never_connects(Client(ca.cert_path, None, None, port, "anonymous"))

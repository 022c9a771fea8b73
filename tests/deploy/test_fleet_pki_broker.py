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
from edge_agent.fleet.broker_security import find_dynsec_plugin, write_dynsec_config
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
    write_dynsec_config(tmp_path / "security.json", ["bwv-1", "bwv-2"])
    replacements = {
        "/etc/mosquitto/certs/ca.pem": str(ca.cert_path),
        "/etc/mosquitto/certs/server.pem": str(server.cert_path),
        "/etc/mosquitto/certs/server.key": str(server.key_path),
        "/etc/mosquitto/certs/crl.pem": str(ca.crl_path),
        "/etc/mosquitto/edge-agent-security.json": str(tmp_path / "security.json"),
        "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so": find_dynsec_plugin() or "mosquitto_dynamic_security.so",
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
    procs = [start_mosquitto(require_mosquitto, tmp_path / "mosquitto.conf", port)]

    def restart() -> None:
        procs[0].terminate()
        procs[0].wait(10)
        procs[0] = start_mosquitto(require_mosquitto, tmp_path / "mosquitto.conf", port)

    yield ca, port, tmp_path, restart
    procs[0].terminate()
    procs[0].wait(10)


def start_mosquitto(binary: str, conf: Path, port: int) -> subprocess.Popen:
    proc = subprocess.Popen([binary, "-c", str(conf)], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while True:
        assert proc.poll() is None, proc.stderr.read().decode()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            assert time.monotonic() < deadline, "mosquitto did not start"
            time.sleep(0.05)


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
    ca, port, tmp, _ = broker
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
    ca, port, tmp, _ = broker
    good = pki.issue_client_cert(ca, tmp / "bwv-1", "bwv-1")
    assert not never_connects(Client(ca.cert_path, good.cert_path, good.key_path, port, "bwv-1")), "control case connects"
    other = pki.create_ca(tmp / "other-ca", "Someone else")
    rogue = pki.issue_client_cert(other, tmp / "rogue", "bwv-1")
    assert never_connects(Client(ca.cert_path, rogue.cert_path, rogue.key_path, port, "rogue"))
    assert never_connects(Client(ca.cert_path, None, None, port, "anonymous"))


@pytest.mark.broker
def test_broker_template_refuses_a_device_subscribing_to_alerts(broker):
    """Issue 11: with the shipped rules a device cannot read alerts, not even through the
    control room's shared group (the plain ACL file never checked a SUBSCRIBE)."""
    ca, port, tmp, _ = broker
    dev1 = pki.issue_client_cert(ca, tmp / "bwv-1", "bwv-1")
    dev2 = pki.issue_client_cert(ca, tmp / "bwv-2", "bwv-2")
    room = pki.issue_client_cert(ca, tmp / "room", "control-room")
    console = Client(ca.cert_path, room.cert_path, room.key_path, port, "console-1").start()
    granted = []
    console.c.on_subscribe = lambda c, u, mid, rcs, p=None: granted.append([not rc.is_failure for rc in rcs])
    console.c.subscribe("$share/control-room/lfr/v1/+/alert", qos=1)
    rogue = Client(ca.cert_path, dev1.cert_path, dev1.key_path, port, "bwv-1").start()
    refused = []
    rogue.c.on_subscribe = lambda c, u, mid, rcs, p=None: refused.append([rc.is_failure for rc in rcs])
    rogue.c.subscribe([("$share/control-room/lfr/v1/+/alert", 1), ("lfr/v1/+/alert", 1), ("#", 1), ("lfr/v1/bwv-2/receipt", 1)])
    deadline = time.monotonic() + 5
    while (not granted or not refused) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert granted == [[True]] and refused == [[True, True, True, True]]
    sender = Client(ca.cert_path, dev2.cert_path, dev2.key_path, port, "bwv-2").start()
    for i in range(20):
        sender.c.publish("lfr/v1/bwv-2/alert", b"alert-%d" % i, qos=1).wait_for_publish(5)
    console.wait_for(b"alert-19")
    time.sleep(0.2)
    assert sorted(p for _, p in console.messages) == sorted(b"alert-%d" % i for i in range(20))
    assert rogue.messages == []
    for c in (sender, rogue, console):
        c.stop()


@pytest.mark.broker
def test_a_revoked_device_cannot_connect(broker):
    """Issue 10.17: edge-agent fleet revoke writes the CRL the shipped config loads (crlfile)."""
    from edge_agent.cli.main import main

    ca, port, tmp, restart = broker
    kept = pki.issue_client_cert(ca, tmp / "bwv-1", "bwv-1")
    lost = pki.issue_client_cert(ca, tmp / "bwv-2", "bwv-2")
    assert not never_connects(Client(ca.cert_path, lost.cert_path, lost.key_path, port, "bwv-2")), "connects before revocation"
    assert main(["fleet", "revoke", "bwv-2", "--ca", str(ca.cert_path.parent)]) == 0
    restart()
    assert never_connects(Client(ca.cert_path, lost.cert_path, lost.key_path, port, "bwv-2"))
    assert not never_connects(Client(ca.cert_path, kept.cert_path, kept.key_path, port, "bwv-1")), "other devices still connect"
    assert [r.common_name for r in pki.revoked(ca)] == ["bwv-2"]
    assert main(["fleet", "revoke", "bwv-2", "--ca", str(ca.cert_path.parent)]) == 0  # again: nothing new, no error


def test_revoke_refuses_an_unknown_device(tmp_path):
    from edge_agent.errors import ConfigError

    ca = pki.create_ca(tmp_path / "ca", "Fleet CA")
    with pytest.raises(ConfigError, match="no record of a certificate for 'bwv-9'"):
        pki.revoke(ca, "bwv-9")
    crl = pki.x509.load_pem_x509_crl(ca.crl_path.read_bytes())
    assert crl.is_signature_valid(ca.certificate.public_key()) and len(list(crl)) == 0


def test_broker_security_leaves_out_revoked_devices(tmp_path, messaging_env):
    import json

    from edge_agent.cli.main import main

    ca = pki.load_ca(messaging_env.ca_dir)
    out = tmp_path / "security.json"
    assert main(["fleet", "broker-security", "--registry", str(messaging_env.registry_path), "--out", str(out)]) == 0
    assert {c["username"] for c in json.loads(out.read_text())["clients"]} == {"cam-01", "cam-02", "cam-03", "control-room"}
    assert out.stat().st_mode & 0o777 == 0o600
    ca2 = pki.create_ca(tmp_path / "ca2", "other")
    pki.issue_client_cert(ca2, tmp_path / "c3", "cam-03")
    pki.revoke(ca2, "cam-03")
    assert main(["fleet", "broker-security", "--registry", str(messaging_env.registry_path), "--out", str(out), "--ca", str(tmp_path / "ca2")]) == 0
    assert {c["username"] for c in json.loads(out.read_text())["clients"]} == {"cam-01", "cam-02", "control-room"}
    assert ca.crl_path.exists()

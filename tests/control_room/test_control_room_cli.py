"""``edge-agent control-room``: listen (a real subprocess on the real broker), alerts, adjudicate, hold, crop."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import uuid
from datetime import datetime, timezone

import pytest
import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion

from control_room_helpers import make_deployment
from core_dump_helpers import allow_core_dumps, core_limit
from edge_agent.cli.main import main
from edge_agent.control_room.store import QUEUE_FIELDS
from edge_agent.crypto.canonical import jcs
from edge_agent.crypto.keyfiles import load_private_key, write_public_key
from edge_agent.events.builder import DeviceContext, EventBuilder, MatchDecision
from edge_agent.events.mqtt_connection import tls_context
from edge_agent.events.schema import AuditHead, Candidate
from edge_agent.events.signing import encode_event

pytestmark = pytest.mark.broker
JPEG = b"\xff\xd8" + b"face" * 20 + b"\xff\xd9"


def _publish(mosquitto, device_id: str, payloads: list[bytes]) -> None:
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"cli-test-{uuid.uuid4().hex[:6]}", protocol=mqtt.MQTTv5)
    client.tls_set_context(tls_context(mosquitto.broker_config(device_id)))
    client.connect(mosquitto.host, mosquitto.port)
    client.loop_start()
    try:
        for p in payloads:
            client.publish(f"lfr/v1/{device_id}/alert", p, qos=1).wait_for_publish(5)
    finally:
        client.loop_stop()
        client.disconnect()


def test_listen_then_review_from_the_command_line(mosquitto, messaging_env, tmp_path, capsys):
    db = tmp_path / "alerts.db"
    audit_log = tmp_path / "audit.jsonl"
    ident = messaging_env.clients["control-room"]
    config = tmp_path / "control-room.toml"
    config.write_text(f'[broker]\nurl = "{mosquitto.url}"\nca = "{messaging_env.ca_cert}"\ncert = "{ident.cert}"\nkey = "{ident.key}"\n')
    authority = Ed25519PrivateKey.generate()
    write_public_key(tmp_path / "authority.pub", authority.public_key())
    (tmp_path / "deployments").mkdir()
    make_deployment(authority, "dep-cli", devices=("cam-01",)).save(tmp_path / "deployments" / "dep-cli.json")
    audit = ["--audit-log", str(audit_log)]
    assert main(["control-room", "import-deployments", str(tmp_path / "deployments"), "--authority-pub", str(tmp_path / "authority.pub"),
                 "--db", str(db), *audit]) == 0
    assert "deployment dep-cli: imported" in capsys.readouterr().out
    listen = subprocess.Popen(
        [sys.executable, "-m", "edge_agent.cli.main", "control-room", "listen", "--config", str(config),
         "--registry", str(messaging_env.registry_path), "--key", str(messaging_env.control_room_key), "--db", str(db),
         "--authority-pub", str(tmp_path / "authority.pub"), *audit,
         "--client-id", f"cli-{uuid.uuid4().hex[:6]}", "--exit-after", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=allow_core_dumps,
    )
    try:
        key = load_private_key(messaging_env.devices["cam-01"] / "device_ed25519.key", Ed25519PrivateKey)
        cr = load_private_key(messaging_env.control_room_key, X25519PrivateKey)
        builder = EventBuilder(DeviceContext("cam-01", "dep-cli", "wl-1", {"detector_sha256": "d", "aligner": "a", "embedder_sha256": "e", "precision": "int8"}), key, cr.public_key())
        decision = MatchDecision("subj-9", "missing_vulnerable", 0.77, 0.64, (Candidate("subj-9", 0.77),), (5, 5, 50, 60))
        good = builder.build(decision, JPEG, datetime.now(timezone.utc), 1, spool_epoch="c1" * 16, audit_head=AuditHead(-1, "0" * 64))
        forged = json.loads(encode_event(builder.build(decision, JPEG, datetime.now(timezone.utc), 2, spool_epoch="c1" * 16, audit_head=AuditHead(-1, "0" * 64))))
        forged["subject_ref"] = forged["candidates"][0]["subject_ref"] = "subj-0"
        startup_lines = []
        for line in listen.stderr:  # wait until the subscription is granted
            startup_lines.append(line)
            if line.startswith("subscribed"):
                break
        else:
            pytest.fail("listener exited before subscribing")
        assert core_limit(listen.pid) == ("0", "0"), "issue 10.4: the control room disables core dumps at start-up"
        assert any("core dumps disabled (RLIMIT_CORE 0/0, dumpable 0)" in line for line in startup_lines)
        _publish(mosquitto, "cam-01", [encode_event(good), jcs(forged)])  # canonical, so the signature check is what refuses it
        out, err = listen.communicate(timeout=20)
    finally:
        if listen.poll() is None:
            listen.kill()
    assert listen.returncode == 0, err
    assert f"ACCEPTED pending_review event={good.event_id}" in out
    assert "REJECTED bad_signature" in out

    assert main(["control-room", "alerts", "--db", str(db), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(a["event_id"], a["status"], a["category"]) for a in listed] == [(good.event_id, "pending_review", "missing_vulnerable")]
    # Before a decision a listing shows what a queue needs, not who the subject is or where the face was.
    assert set(listed[0]) == set(QUEUE_FIELDS) and "subj-9" not in json.dumps(listed)

    # A pending alert's crop does not leave the control room.
    out_jpeg = tmp_path / "crop.jpg"
    crop = ["control-room", "crop", good.event_id, "--db", str(db), "--key", str(messaging_env.control_room_key), "--out", str(out_jpeg), *audit]
    assert main(crop) == 2 and not out_jpeg.exists()
    assert "not adjudicated" in capsys.readouterr().err

    # Viewing the full alert is audited.
    assert main(["control-room", "show", good.event_id, "--db", str(db), *audit, "--actor", "operator:pc1234"]) == 0
    assert json.loads(capsys.readouterr().out)["subject_ref"] == "subj-9"

    # Adjudicate, hold, purge and crop refuse to run without the audit log.
    for command in (["adjudicate", good.event_id, "--decision", "confirmed", "--reviewer", "PC1", "--reason", "x"],
                    ["hold", good.event_id, "--reason", "x"], ["purge"], crop[1:-2]):
        with pytest.raises(SystemExit) as exited:
            main(["control-room", *command[:1], *command[1:], "--db", str(db)] if command[0] != "crop" else ["control-room", *command])
        assert exited.value.code == 2 and "--audit-log" in capsys.readouterr().err

    assert main(["control-room", "adjudicate", good.event_id, "--db", str(db), "--decision", "confirmed", "--reviewer", "PC1234",
                 "--reason", "custody photo match, confirmed by name", "--engaged", "yes", *audit]) == 0
    assert main(["control-room", "hold", good.event_id, "--db", str(db), "--reason", "case 23/99", "--by", "DI Jones", *audit]) == 0
    assert main(["control-room", "hold", good.event_id, "--db", str(db), "--reason", "other", "--by", "PC Other", *audit]) == 2
    assert "already on legal hold" in capsys.readouterr().err
    capsys.readouterr()
    assert main(["control-room", "alerts", "--db", str(db)]) == 0
    table = capsys.readouterr().out
    assert good.event_id in table and "confirmed" in table and "[hold]" in table
    assert main(crop) == 0
    assert out_jpeg.read_bytes() == JPEG and stat.S_IMODE(out_jpeg.stat().st_mode) == 0o600
    assert main(["control-room", "purge", "--db", str(db), *audit]) == 0
    capsys.readouterr()
    kinds = [(r["kind"], r["actor"]) for r in map(json.loads, audit_log.read_text().splitlines())]
    assert kinds[-1][0] == "alerts_deleted_retention" and kinds[-1][1].startswith("operator:")
    kinds = [k for k in kinds if not k[1].startswith("control-room:") or k[0] != "alerts_deleted_retention"]  # the listener's hourly runs
    assert [k for k, _ in kinds] == ["deployment_imported", "alert_accepted", "alert_refused", "alert_viewed", "adjudication_recorded",
                                    "legal_hold_placed", "crop_exported", "alerts_deleted_retention"]
    assert ("alert_viewed", "operator:pc1234") in kinds and kinds[1][1].startswith("control-room:cli-")

    assert main(["control-room", "rejections", "--db", str(db), "--json"]) == 0
    assert [r["reason"] for r in json.loads(capsys.readouterr().out)] == ["bad_signature"]

    # A second adjudication is refused with a clear error.
    assert main(["control-room", "adjudicate", good.event_id, "--db", str(db), "--decision", "rejected", "--reviewer", "PC1", "--reason", "x", *audit]) == 2
    assert "already adjudicated" in capsys.readouterr().err


def test_cli_errors_are_clear(tmp_path, capsys):
    assert main(["control-room", "alerts", "--db", str(tmp_path / "missing.db")]) == 2
    assert "does not exist" in capsys.readouterr().err
    audit = ["--audit-log", str(tmp_path / "audit.log")]
    assert main(["control-room", "purge", "--db", str(tmp_path / "missing.db"), "--retention-days", "40", *audit]) == 2
    assert "31" in capsys.readouterr().err
    listen = ["control-room", "listen", "--registry", str(tmp_path / "r.json"), "--key", str(tmp_path / "k"), "--authority-pub", "a.pub", *audit]
    assert main(listen) == 2
    assert "no broker configured" in capsys.readouterr().err
    assert main([*listen, "--broker", "mqtt://x:1883", "--ca", "a", "--tls-cert", "b", "--tls-key", "c"]) == 2
    assert "mqtts" in capsys.readouterr().err


def test_accounts_and_serve_from_the_command_line(messaging_env, tmp_path):
    """The console as an operator starts it: an account made on the command line logs in over HTTP."""
    import re
    import time
    import urllib.request

    from edge_agent.fleet.local_broker import free_port

    db, log = tmp_path / "alerts.db", tmp_path / "audit.log"
    add = subprocess.run([sys.executable, "-m", "edge_agent.cli.main", "control-room", "accounts", "add", "suki", "--role", "supervisor",
                          "--db", str(db), "--audit-log", str(log)], input="short\n", capture_output=True, text=True)
    assert add.returncode == 2 and "12" in add.stderr  # too short a password
    add = subprocess.run([sys.executable, "-m", "edge_agent.cli.main", "control-room", "accounts", "add", "suki", "--role", "supervisor",
                          "--db", str(db), "--audit-log", str(log)], input="a long supervisor passphrase\n", capture_output=True, text=True)
    assert add.returncode == 0, add.stderr
    port = free_port()
    serve = subprocess.Popen([sys.executable, "-m", "edge_agent.cli.main", "control-room", "serve", "--db", str(db), "--audit-log", str(log),
                              "--key", str(messaging_env.control_room_key), "--port", str(port)], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                page = urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=2)
                break
            except OSError:
                assert serve.poll() is None and time.monotonic() < deadline, serve.stderr.read() if serve.poll() is not None else "timeout"
                time.sleep(0.2)
        html = page.read().decode()
        assert page.status == 200 and "Log in" in html and "content-security-policy" in {k.lower() for k in page.headers}
        token = re.search(r'name="login_token" value="([^"]+)"', html).group(1)
        cookie = page.headers["set-cookie"].split(";")[0]
        request = urllib.request.Request(f"http://127.0.0.1:{port}/login", method="POST", headers={"Cookie": cookie},
                                         data=f"login_token={token}&username=suki&password=a+long+supervisor+passphrase".encode())

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *a, **k):
                return None

        try:
            urllib.request.build_opener(NoRedirect).open(request, timeout=10)
            pytest.fail("expected a redirect")
        except urllib.error.HTTPError as exc:
            assert exc.code == 303 and exc.headers["location"] == "/queue" and "ea_session=" in exc.headers["set-cookie"]
    finally:
        serve.terminate()
        serve.wait(10)
    kinds = [json.loads(line)["kind"] for line in log.read_text().splitlines()]
    assert kinds[:2] == ["account_changed", "login_succeeded"]

"""``edge-agent control-room``: listen (a real subprocess on the real broker), alerts, adjudicate, hold, crop."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from datetime import datetime, timezone

import pytest
import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion

from core_dump_helpers import allow_core_dumps, core_limit
from edge_agent.cli.main import main
from edge_agent.crypto.keyfiles import load_private_key
from edge_agent.events.builder import DeviceContext, EventBuilder, MatchDecision
from edge_agent.events.mqtt_connection import tls_context
from edge_agent.events.schema import Candidate
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
    ident = messaging_env.clients["control-room"]
    config = tmp_path / "control-room.toml"
    config.write_text(f'[broker]\nurl = "{mosquitto.url}"\nca = "{messaging_env.ca_cert}"\ncert = "{ident.cert}"\nkey = "{ident.key}"\n')
    listen = subprocess.Popen(
        [sys.executable, "-m", "edge_agent.cli.main", "control-room", "listen", "--config", str(config),
         "--registry", str(messaging_env.registry_path), "--key", str(messaging_env.control_room_key), "--db", str(db),
         "--client-id", f"cli-{uuid.uuid4().hex[:6]}", "--exit-after", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=allow_core_dumps,
    )
    try:
        key = load_private_key(messaging_env.devices["cam-01"] / "device_ed25519.key", Ed25519PrivateKey)
        cr = load_private_key(messaging_env.control_room_key, X25519PrivateKey)
        builder = EventBuilder(DeviceContext("cam-01", "dep-cli", "wl-1", {"detector_sha256": "d", "aligner": "a", "embedder_sha256": "e"}), key, cr.public_key())
        decision = MatchDecision("subj-9", "missing_vulnerable", 0.77, 0.64, (Candidate("subj-9", 0.77),), (5, 5, 50, 60))
        good = builder.build(decision, JPEG, datetime.now(timezone.utc), 1)
        forged = json.loads(encode_event(builder.build(decision, JPEG, datetime.now(timezone.utc), 2)))
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
        _publish(mosquitto, "cam-01", [encode_event(good), json.dumps(forged).encode()])
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

    audit_log = tmp_path / "audit.jsonl"
    assert main(["control-room", "adjudicate", good.event_id, "--db", str(db), "--decision", "confirmed", "--reviewer", "PC1234",
                 "--reason", "custody photo match, confirmed by name", "--engaged", "yes", "--audit-log", str(audit_log)]) == 0
    assert main(["control-room", "hold", good.event_id, "--db", str(db), "--reason", "case 23/99", "--by", "DI Jones"]) == 0
    capsys.readouterr()
    assert main(["control-room", "alerts", "--db", str(db)]) == 0
    table = capsys.readouterr().out
    assert good.event_id in table and "confirmed" in table and "[hold]" in table
    records = [json.loads(line) for line in audit_log.read_text().splitlines()]
    assert any(r.get("kind") == "adjudication_received" and r["details"]["event_id"] == good.event_id for r in records)

    out_jpeg = tmp_path / "crop.jpg"
    assert main(["control-room", "crop", good.event_id, "--db", str(db), "--key", str(messaging_env.control_room_key), "--out", str(out_jpeg)]) == 0
    assert out_jpeg.read_bytes() == JPEG
    capsys.readouterr()

    assert main(["control-room", "rejections", "--db", str(db), "--json"]) == 0
    assert [r["reason"] for r in json.loads(capsys.readouterr().out)] == ["bad_signature"]

    # A second adjudication is refused with a clear error.
    assert main(["control-room", "adjudicate", good.event_id, "--db", str(db), "--decision", "rejected", "--reviewer", "PC1", "--reason", "x"]) == 2
    assert "already adjudicated" in capsys.readouterr().err


def test_cli_errors_are_clear(tmp_path, capsys):
    assert main(["control-room", "alerts", "--db", str(tmp_path / "missing.db")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["control-room", "purge", "--db", str(tmp_path / "missing.db"), "--retention-days", "40"]) == 2
    assert "31" in capsys.readouterr().err
    assert main(["control-room", "listen", "--registry", str(tmp_path / "r.json"), "--key", str(tmp_path / "k")]) == 2
    assert "no broker configured" in capsys.readouterr().err
    assert main(["control-room", "listen", "--broker", "mqtt://x:1883", "--ca", "a", "--tls-cert", "b", "--tls-key", "c",
                 "--registry", str(tmp_path / "r.json"), "--key", str(tmp_path / "k")]) == 2
    assert "mqtts" in capsys.readouterr().err

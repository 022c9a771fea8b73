"""audit verify with the control room's receipts (issue 12.1): a device log cut after its last
checkpoint still chains, but the receipts bind heads it no longer has; the check names the range."""

from __future__ import annotations

from datetime import datetime, timezone

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from control_room_helpers import intake_for
from edge_agent.audit import verify_audit_log
from edge_agent.audit.log import AuditLog
from edge_agent.cli.main import main
from edge_agent.control_room.store import AlertStore
from edge_agent.crypto.keyfiles import load_private_key
from edge_agent.events.builder import DeviceContext, EventBuilder, MatchDecision
from edge_agent.events.outbox import AlertOutbox
from edge_agent.events.schema import Candidate
from edge_agent.events.spool import Spool
from edge_agent.identity.registry import DeviceRegistry

MODEL = {"detector_sha256": "d" * 64, "aligner": "5pt", "embedder_sha256": "e" * 64, "precision": "int8"}
DECISION = MatchDecision("subj-1", "suspect", 0.81, 0.64, (Candidate("subj-1", 0.81),), (1, 1, 20, 20))


def device_with_receipted_alerts(tmp_path, env, count=5):
    key = load_private_key(env.devices["cam-01"] / "device_ed25519.key", Ed25519PrivateKey)
    room_key = load_private_key(env.control_room_key, X25519PrivateKey)
    log = AuditLog.open(tmp_path / "audit.log", key, "device:cam-01")
    store = AlertStore(tmp_path / "alerts.db")
    intake = intake_for(DeviceRegistry.load(env.registry_path), room_key, store)
    with Spool(tmp_path / "spool.db") as spool:
        outbox = AlertOutbox(EventBuilder(DeviceContext("cam-01", "dep-test", "wl-1", MODEL), key, room_key.public_key()), spool, log)
        events = [outbox.raise_alert(DECISION, b"\xff\xd8c\xff\xd9", datetime.now(timezone.utc)) for _ in range(count)]
        for item in spool.pending():
            assert intake.receive("lfr/v1/cam-01/alert", item.payload).accepted
    log.close()
    store.close()
    receipts = tmp_path / "receipts.jsonl"
    assert main(["control-room", "receipts", "--db", str(tmp_path / "alerts.db"), "--device", "cam-01", "--receipt-key", str(env.receipt_key),
                 "--out", str(receipts)]) == 0
    return events, receipts


def verify(tmp_path, env, receipts, capsys) -> tuple[int, str]:
    code = main(["audit", "verify", str(tmp_path / "audit.log"), "--device-pub", str(env.devices["cam-01"]), "--receipts", str(receipts),
                 "--control-room-pub", str(env.receipt_pub)])
    return code, capsys.readouterr().out


def test_receipts_prove_the_log_uncut_up_to_the_last_receipted_point(tmp_path, messaging_env, capsys):
    events, receipts = device_with_receipted_alerts(tmp_path, messaging_env)
    code, out = verify(tmp_path, messaging_env, receipts, capsys)
    assert code == 0, out
    assert f"bind this log up to seq {events[-1].audit_head.seq}" in out


def test_a_log_cut_after_a_receipted_point_fails_naming_the_missing_range(tmp_path, messaging_env, capsys):
    events, receipts = device_with_receipted_alerts(tmp_path, messaging_env)
    lines = (tmp_path / "audit.log").read_bytes().splitlines(keepends=True)
    (tmp_path / "audit.log").write_bytes(b"".join(lines[:2]))  # keep seq 0 and 1: a clean cut, the chain still verifies
    assert verify_audit_log(tmp_path / "audit.log", load_private_key(messaging_env.devices["cam-01"] / "device_ed25519.key", Ed25519PrivateKey).public_key()).ok
    code, out = verify(tmp_path, messaging_env, receipts, capsys)
    assert code == 1
    top = events[-1].audit_head.seq
    assert f"records 2..{top} are missing (the log was cut after seq 1)" in out


def test_a_rewritten_record_under_a_receipt_fails(tmp_path, messaging_env, capsys):
    import json

    events, receipts = device_with_receipted_alerts(tmp_path, messaging_env)
    lines = (tmp_path / "audit.log").read_text().splitlines()
    doc = json.loads(lines[1])
    doc["hash"] = "f" * 64  # a rewritten record carries a different hash
    lines[1] = json.dumps(doc)
    (tmp_path / "audit.log").write_text("\n".join(lines) + "\n")
    code, out = verify(tmp_path, messaging_env, receipts, capsys)
    assert code == 1 and "record seq 1 was rewritten" in out


def test_a_forged_receipt_file_is_refused(tmp_path, messaging_env, capsys):
    events, receipts = device_with_receipted_alerts(tmp_path, messaging_env, count=2)
    receipts.write_text(receipts.read_text().replace('"seq":', '"seq": ', 1))  # not canonical any more
    code, out = verify(tmp_path, messaging_env, receipts, capsys)
    assert code == 1 and "receipt on line 1 is not valid" in out

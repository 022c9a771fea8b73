"""Deeply nested JSON or TOML from outside is a clean refusal in every reader (issue 11).

``[[[[...`` nested a hundred thousand levels made Python's parsers raise RecursionError, which no
reader caught: the control-room intake filed such an alert payload as an internal error and kept
it in quarantine. Each reader must refuse it with its own documented error instead.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from control_room_helpers import intake_for
from edge_agent.agent.config import load_config, load_profile
from edge_agent.audit.log import AuditError, AuditLog
from edge_agent.audit.verify import verify_audit_log
from edge_agent.control_room.references import parse_references
from edge_agent.control_room.report import DeploymentReportError, read_audit
from edge_agent.control_room.store import AlertStore
from edge_agent.deployment.calibration import read_calibration_report
from edge_agent.deployment.record import AUTHORITY_DOMAINS, DEPLOYMENT_VERSION, SignedDeployment
from edge_agent.errors import ConfigError, SecurityError
from edge_agent.events.mqtt_connection import BrokerConfig
from edge_agent.events.schema import EventFormatError, parse_payload
from edge_agent.identity.registry import DeviceRegistry
from edge_agent.safe_load import MAX_DEPTH, JsonTooDeep, TomlTooDeep, json_loads, toml_loads
from edge_agent.watchlist.format import FORMAT_VERSION, MAGIC, SIGNATURE_LEN, decode_container
from edge_agent.watchlist.errors import PackageTampered
from edge_agent.watchlist.store import read_summary

DEEP = 100_000  # far past the interpreter's recursion limit
DEEP_JSON = "[" * DEEP + "]" * DEEP
DEEP_OBJECT = '{"a":' * DEEP + "1" + "}" * DEEP
DEEP_TOML = "a = " + "[" * DEEP + "]" * DEEP + "\n"


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_the_limit_itself():
    assert json_loads(nested(MAX_DEPTH)) is not None
    assert toml_loads("a = " + nested(MAX_DEPTH - 1)) == {"a": json.loads(nested(MAX_DEPTH - 1))}
    for text in (nested(MAX_DEPTH + 1), nested(500), DEEP_JSON, DEEP_OBJECT):
        with pytest.raises(JsonTooDeep) as info:
            json_loads(text)
        assert isinstance(info.value, json.JSONDecodeError) and "nested deeper than" in str(info.value)
    for text in ("a = " + nested(MAX_DEPTH + 1), DEEP_TOML):
        with pytest.raises(TomlTooDeep):
            toml_loads(text)
    assert json_loads(b'{"x": [1, {"y": "[[[[[["}]}') == {"x": [1, {"y": "[[[[[["}]}  # brackets in strings do not count


def test_event_payload_is_a_format_error():
    with pytest.raises(EventFormatError, match="nested deeper"):
        parse_payload(DEEP_JSON.encode())
    with pytest.raises(EventFormatError, match="nested deeper"):
        parse_payload(DEEP_OBJECT.encode())


def test_intake_rejects_it_as_malformed_and_keeps_nothing(tmp_path):
    registry = DeviceRegistry()
    registry.add("cam-01", Ed25519PrivateKey.generate().public_key(), X25519PrivateKey.generate().public_key(), datetime.now(timezone.utc))
    store = AlertStore(str(tmp_path / "alerts.db"))
    try:
        intake = intake_for(registry, X25519PrivateKey.generate(), store)
        for payload in (DEEP_JSON, DEEP_OBJECT, '{"event_id": ' + nested(5000) + "}"):
            verdict = intake.receive("lfr/v1/cam-01/alert", payload.encode())
            assert not verdict.accepted and verdict.reason == "malformed_payload", verdict
        assert store.quarantined() == []
        assert [r.reason for r in store.rejections()] == ["malformed_payload"] * 3
    finally:
        store.close()


def test_signed_deployment_file_and_record_bytes():
    with pytest.raises(SecurityError, match="not JSON"):
        SignedDeployment.from_bytes(DEEP_JSON.encode())
    authority = Ed25519PrivateKey.generate()
    record = DEEP_OBJECT.encode()
    signed = SignedDeployment(record, authority.sign(AUTHORITY_DOMAINS[DEPLOYMENT_VERSION] + record))  # genuinely signed, still refused
    with pytest.raises(SecurityError):
        signed.verify(authority.public_key())
    with pytest.raises(SecurityError):
        signed.unverified_record()


def test_calibration_report(tmp_path):
    path = tmp_path / "calibration.json"
    path.write_text(DEEP_OBJECT)
    with pytest.raises(ConfigError, match="not JSON"):
        read_calibration_report(path)


def test_audit_verify_and_open(tmp_path):
    key = Ed25519PrivateKey.generate()
    path = tmp_path / "audit.log"
    with AuditLog.open(path, key, "device:cam-01") as log:
        log.append("agent_started", {"n": 1})
    with open(path, "a") as fh:
        fh.write(DEEP_JSON + "\n")
    result = verify_audit_log(path, key.public_key())
    assert not result.ok and result.reason == "not valid JSON" and result.records > 0
    with pytest.raises(DeploymentReportError, match="not JSON"):
        read_audit(path)
    try:  # last (it may cut the bad tail back): a refusal or a cut are both clean; a RecursionError is not
        AuditLog.open(path, key, "device:cam-01").close()
    except AuditError:
        pass


def test_watchlist_header(tmp_path):
    header = DEEP_JSON.encode()
    package = MAGIC + bytes([FORMAT_VERSION]) + len(header).to_bytes(4, "big") + header + b"\0" * (2 + 8 + 28) + b"\0" * SIGNATURE_LEN
    with pytest.raises(PackageTampered):
        decode_container(package)
    assert read_summary(package) is None


def test_registry_and_reference_images(tmp_path):
    path = tmp_path / "registry.json"
    path.write_text(DEEP_OBJECT)
    with pytest.raises(ConfigError, match="not valid JSON"):
        DeviceRegistry.load(path)
    with pytest.raises(ConfigError, match="not JSON"):
        parse_references(DEEP_JSON.encode())


def test_config_profile_and_broker_toml(tmp_path):
    config = tmp_path / "agent.toml"
    config.write_text("config_version = 1\n" + DEEP_TOML)
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(config, check_files=False)
    (tmp_path / "deep.toml").write_text(DEEP_TOML)
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_profile("deep", tmp_path)
    broker = tmp_path / "broker.toml"
    broker.write_text("[broker]\nurl = " + nested(DEEP) + "\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        BrokerConfig.from_toml(broker)


def test_deployment_spec_cli(tmp_path, capsys):
    from edge_agent.cli.main import main

    spec = tmp_path / "spec.json"
    spec.write_text(DEEP_OBJECT)
    assert main(["deployment", "create", "--spec", str(spec), "--out", str(tmp_path / "d.json"), "--authority-key", str(tmp_path / "none")]) == 2
    assert "not valid JSON" in capsys.readouterr().err

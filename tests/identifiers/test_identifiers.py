"""One rule per identifier (issue 15.1, 10.7, 10.17): the same bad value is refused the same way
by every entry point: config loader, key directory and registry, event schema and topics,
deployment record, watchlist build input, audit log and the CLI."""

from __future__ import annotations

import base64
import csv
import json
import sys
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from edge_agent.agent.config import load_config
from edge_agent.audit.log import AuditError, AuditLog
from edge_agent.cli.main import main
from edge_agent.deployment.record import DeploymentRecord
from edge_agent.errors import ConfigError
from edge_agent.events.schema import AlertEvent, EventFormatError
from edge_agent.events.topics import parse_topic, topic
from edge_agent.identifiers import (
    MAX_RETENTION,
    IdentifierError,
    check_actor,
    check_deployment_id,
    check_device_id,
    check_retention,
    check_subject_ref,
)
from edge_agent.identity.keys import init_device
from edge_agent.identity.registry import DeviceRegistry
from edge_agent.watchlist.build import read_subjects_csv
from edge_agent.watchlist.entry import WatchlistEntry

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
from deployment_helpers import write_spec  # noqa: E402

CYRILLIC_A = "\u0430"  # looks like a Latin 'a'
BAD_COMMON = [
    pytest.param("cam1\n", id="trailing-newline"),
    pytest.param("cam/1", id="slash"),
    pytest.param("c" * 65, id="too-long"),
    pytest.param(f"c{CYRILLIC_A}m1", id="cyrillic-a"),
    pytest.param("\uff43\uff41\uff4d\uff11", id="fullwidth"),
    pytest.param("", id="empty"),
    pytest.param(" cam1", id="leading-space"),
    pytest.param("-cam1", id="leading-dash"),
]
BAD_DEVICE = BAD_COMMON + [pytest.param("control-room", id="reserved"), pytest.param("Control-Room", id="reserved-mixed-case")]
NOW = datetime(2026, 11, 22, 8, 0, tzinfo=timezone.utc)


def refusal(check, value) -> str:
    with pytest.raises(IdentifierError) as info:
        check(value)
    return info.value.message


# --- the rules themselves ---------------------------------------------------------------------


@pytest.mark.parametrize("value", ["cam-01", "a", "A.b_c-9", "c" * 64, "control-room-1", "controlroom"])
def test_good_device_ids_pass_unchanged(value):
    assert check_device_id(value) == value


@pytest.mark.parametrize("value", BAD_DEVICE)
def test_bad_device_ids_are_refused_with_the_reason(value):
    message = refusal(check_device_id, value)
    assert repr(value) in message
    if value.lower() == "control-room":
        assert "reserved" in message
    elif not value.isascii():
        assert "non-ASCII" in message and "U+" in message


def test_subject_refs_allow_colon_but_not_slash():
    assert check_subject_ref("case:2026/1".replace("/", "-")) == "case:2026-1"
    assert "'/'" in refusal(check_subject_ref, "case:2026/1")
    assert check_subject_ref("control-room") == "control-room"  # reserved only as a device id


def test_a_non_string_is_refused_not_coerced():
    for check in (check_device_id, check_subject_ref, check_deployment_id, check_actor):
        assert "not text" in refusal(check, 7)


def test_retention_limit_is_31_days_everywhere():
    assert MAX_RETENTION == timedelta(days=31)
    assert check_retention(MAX_RETENTION) == MAX_RETENTION
    for bad in (MAX_RETENTION + timedelta(seconds=1), timedelta(0), -timedelta(days=1)):
        with pytest.raises(ConfigError, match="31 days"):
            check_retention(bad)


# --- device id through every entry point ------------------------------------------------------


def _config_text(device_id: str) -> str:
    return (
        "[device]\n"
        f"id = {json.dumps(device_id)}\n"
        'state_dir = "state"\nsigning_key = "k"\nwatchlist_key = "k"\nauthority_public_key = "k"\n'
        '[hardware]\nprofile = "pi4"\n[capture]\nsource = "usb:0"\n'
    )


def _event_dict(**changes) -> dict:
    doc = {
        "schema": "lfr.alert/1",
        "event_id": "3f1c2b9e-8d4a-4c6f-9b1e-2a7d5c0e4f61",
        "device_id": "cam-01",
        "deployment_id": "dep-1",
        "watchlist_version": "wl-1",
        "seq": 1,
        "captured_at": "2026-11-22T08:30:05.123Z",
        "subject_ref": "WL-1",
        "category": "suspect",
        "score": 0.8,
        "threshold": 0.6,
        "model": {"detector_sha256": "a" * 64, "aligner": "x", "embedder_sha256": "b" * 64},
        "face_box": [1, 2, 30, 40],
        "candidates": [{"subject_ref": "WL-1", "score": 0.8}],
        "crop": base64.b64encode(bytes(80)).decode(),
        "signature": base64.b64encode(bytes(64)).decode(),
    }
    doc.update(changes)
    if "subject_ref" in changes:
        doc["candidates"] = [{"subject_ref": changes["subject_ref"], "score": 0.8}]
    return doc


def _record(**changes) -> DeploymentRecord:
    values = dict(
        deployment_id="dep-1", authorising_officer="Supt A", purpose="p", legal_basis="l", location="x", location_rationale="r",
        start=NOW, end=NOW + timedelta(hours=8), dpia_ref="D", equality_impact_ref="E", mode="LFR", platform="body_worn",
        silent=True, alert_threshold=0.6, watchlist_cap=10, device_ids=("cam-01",),
    )
    values.update(changes)
    return DeploymentRecord(**values)


@pytest.mark.parametrize("value", BAD_DEVICE)
def test_every_entry_point_refuses_a_bad_device_id_the_same_way(tmp_path, value):
    expected = refusal(check_device_id, value)

    # config loader: names the key and carries the rule's message
    path = tmp_path / "agent.toml"
    path.write_text(_config_text(value), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path, check_files=False)
    assert "device.id" in info.value.message and expected in info.value.message

    # key directory and registry
    with pytest.raises(IdentifierError) as info:
        init_device(tmp_path / "dev", value)
    assert info.value.message == expected
    assert not (tmp_path / "dev").exists() or not any((tmp_path / "dev").iterdir())
    with pytest.raises(IdentifierError) as info:
        DeviceRegistry({}).add(value, Ed25519PrivateKey.generate().public_key(), X25519PrivateKey.generate().public_key(), NOW)
    assert info.value.message == expected

    # event schema and topics
    with pytest.raises(EventFormatError) as info:
        AlertEvent.from_dict(_event_dict(device_id=value))
    assert expected in info.value.message
    with pytest.raises(IdentifierError) as info:
        topic(value, "alert")
    assert info.value.message == expected
    assert parse_topic(f"lfr/v1/{value}/alert") is None

    # deployment record
    with pytest.raises(IdentifierError) as info:
        _record(device_ids=(value,))
    assert info.value.message == expected


@pytest.mark.parametrize("value", BAD_DEVICE)
def test_the_cli_refuses_a_bad_device_id_with_error_and_hint(tmp_path, capsys, value):
    expected = refusal(check_device_id, value)
    assert main(["keys", "init-device", f"--id={value}", str(tmp_path / "dev"), "--registry", str(tmp_path / "reg.json")]) == 2
    err = capsys.readouterr().err
    assert f"error: {expected}" in err and "hint: use 1-64 ASCII" in err
    assert not (tmp_path / "dev").exists() and not (tmp_path / "reg.json").exists()


@pytest.mark.parametrize("value", BAD_DEVICE)
def test_the_cli_refuses_a_deployment_spec_naming_a_bad_device(tmp_path, capsys, value):
    spec = write_spec(tmp_path / "spec.json", device_ids=["cam-01", value])
    assert main(["deployment", "create", "--spec", str(spec), "--out", str(tmp_path / "d.json")]) == 2
    assert f"error: {refusal(check_device_id, value)}" in capsys.readouterr().err
    assert not (tmp_path / "d.json").exists()


# --- deployment id, subject ref, actor ---------------------------------------------------------


@pytest.mark.parametrize("value", BAD_COMMON)
def test_every_entry_point_refuses_a_bad_deployment_id_the_same_way(value):
    expected = refusal(check_deployment_id, value)
    with pytest.raises(IdentifierError) as info:
        _record(deployment_id=value)
    assert info.value.message == expected
    with pytest.raises(EventFormatError) as info:
        AlertEvent.from_dict(_event_dict(deployment_id=value))
    assert expected in info.value.message


def _subjects_csv(path: Path, ref: str) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["subject_ref", "category", "image", "image_source", "legal_basis", "image_date", "last_review_date", "under_18", "under_18_justification"])
        writer.writerow([ref, "suspect", "a.jpg", "custody image", "PACE s64A", "2025-01-01", "2026-01-01", "no", ""])
    return path


@pytest.mark.parametrize("value", BAD_COMMON)
def test_every_entry_point_refuses_a_bad_subject_ref_the_same_way(tmp_path, value):
    expected = refusal(check_subject_ref, value)
    with pytest.raises(IdentifierError) as info:
        WatchlistEntry(value, "suspect", "custody image", "PACE s64A", date(2025, 1, 1), date(2026, 1, 1), False, None, 1)
    assert info.value.message == expected
    with pytest.raises(EventFormatError) as info:
        AlertEvent.from_dict(_event_dict(subject_ref=value))
    assert expected in info.value.message
    # The watchlist build input trims CSV cell whitespace first, so a padded cell becomes a clean
    # reference rather than one with a newline; every other bad value is refused with the rule's message.
    csv_path = _subjects_csv(tmp_path / "s.csv", value)
    if value.strip() != value:
        assert read_subjects_csv(csv_path)[0].subject_ref == value.strip()
        return
    with pytest.raises(ConfigError) as info:
        read_subjects_csv(csv_path)
    assert expected in info.value.message


@pytest.mark.parametrize("value", ["dev\n", "", "d" * 129, f"device:c{CYRILLIC_A}m", "officer PC1"])
def test_the_audit_log_refuses_a_bad_actor_with_the_rule_message(tmp_path, value):
    expected = refusal(check_actor, value)
    with pytest.raises(AuditError) as info:
        AuditLog.open(tmp_path / "audit.log", None, value)
    assert info.value.message == expected
    with AuditLog.open(tmp_path / "audit.log", None, "device:cam-01") as log, pytest.raises(AuditError) as info:
        log.append("alert_raised", {}, actor=value)
    assert info.value.message == expected


def test_identifiers_doc_table_is_the_code():
    import re

    from edge_agent.identifiers import PIXEL_FORMATS, RULES, TOPIC_PREFIX

    doc = (REPO / "docs" / "formats" / "identifiers.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| ([a-z_ ]+) \| `([^`]+)` \| (\d+)-(\d+) \|", doc, re.M)
    assert [(name, pattern, int(lo), int(hi)) for name, pattern, lo, hi in rows] == [
        (r.name, r.pattern.pattern, r.min_length, r.max_length) for r in RULES
    ]
    assert f"`{TOPIC_PREFIX}`" in doc and all(f"`{p}`" in doc for p in PIXEL_FORMATS)
    assert f"at most {MAX_RETENTION.days} days" in doc

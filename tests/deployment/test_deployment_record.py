"""Deployment records: signed by the authority, refused when expired, early, for another device,
or lowering the threshold without a pinned approver's signature."""

from __future__ import annotations

import base64
import dataclasses
import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent.deployment import calibration
from edge_agent.deployment.calibration import CALIBRATED_DEFAULT_THRESHOLD, CITATION_FIELDS, CalibrationCitation
from edge_agent.deployment.errors import DeploymentExpired, DeploymentNotStarted, DeviceNotInDeployment, ThresholdApprovalMissing
from edge_agent.deployment.policy import authorise
from edge_agent.deployment.record import RECORD_FIELDS, V2_FIELDS, Approval, DeploymentRecord, SignedDeployment, default_silent
from edge_agent.crypto.canonical import canonical_json, jcs
from edge_agent.crypto.signing import DEPLOYMENT_V1, DEPLOYMENT_V3, THRESHOLD_APPROVAL_V1, sign
from edge_agent.errors import ConfigError, SecurityError

START = datetime(2026, 11, 22, 8, 0, tzinfo=timezone.utc)
END = START + timedelta(hours=8)
DOCS = Path(__file__).resolve().parents[2] / "docs" / "formats" / "deployment.md"


def make_record(**changes) -> DeploymentRecord:
    values = dict(
        deployment_id="DEP-2026-0042",
        authorising_officer="Supt A. Example (collar 1234)",
        purpose="Locate people wanted on warrant at a city-centre event",
        legal_basis="Common law policing powers; DPA 2018 s35",
        location="Example Street, Croydon",
        location_rationale="Crime hotspot; intelligence that listed subjects attend",
        start=START,
        end=END,
        dpia_ref="DPIA-LFR-2026-07",
        equality_impact_ref="EIA-LFR-2026-03",
        mode="LFR",
        platform="body_worn",
        silent=True,
        alert_threshold=0.6,
        watchlist_cap=2000,
        device_ids=("cam-01", "cam-02"),
    )
    values.update(changes)
    return DeploymentRecord(**values)


@pytest.fixture
def authority():
    return Ed25519PrivateKey.generate()


def test_sign_verify_round_trip(authority):
    record = make_record()
    signed = SignedDeployment.sign(record, authority)
    assert signed.verify(authority.public_key()) == record
    again = SignedDeployment.from_bytes(signed.to_bytes())
    assert again.verify(authority.public_key()) == record


def test_edited_record_refused(authority):
    signed = SignedDeployment.sign(make_record(), authority)
    doc = json.loads(signed.record_bytes)
    doc["alert_threshold"] = 0.3
    forged = dataclasses.replace(signed, record_bytes=jcs(doc))
    with pytest.raises(SecurityError, match="signature is not valid"):
        forged.verify(authority.public_key())


def test_other_key_refused(authority):
    signed = SignedDeployment.sign(make_record(), Ed25519PrivateKey.generate())
    with pytest.raises(SecurityError, match="signature is not valid"):
        signed.verify(authority.public_key())


def test_time_window_and_device(authority):
    signed = SignedDeployment.sign(make_record(), authority)
    pub = authority.public_key()
    assert authorise(signed, pub, "cam-01", START).deployment_id == "DEP-2026-0042"
    with pytest.raises(DeploymentNotStarted, match="has not started"):
        authorise(signed, pub, "cam-01", START - timedelta(seconds=1))
    with pytest.raises(DeploymentExpired, match="ended at"):
        authorise(signed, pub, "cam-01", END)
    with pytest.raises(DeviceNotInDeployment, match="cam-09"):
        authorise(signed, pub, "cam-09", START + timedelta(hours=1))
    assert signed.is_active(START) and not signed.is_active(END)


def test_lowered_threshold_needs_pinned_approver(authority):
    low = CALIBRATED_DEFAULT_THRESHOLD - 0.05
    signed = SignedDeployment.sign(make_record(alert_threshold=low), authority)
    approver = Ed25519PrivateKey.generate()
    now = START + timedelta(hours=1)
    with pytest.raises(ThresholdApprovalMissing, match="below the calibrated default"):
        authorise(signed, authority.public_key(), "cam-01", now, [approver.public_key()])
    approved = signed.approve(approver)
    assert authorise(approved, authority.public_key(), "cam-01", now, [approver.public_key()]).alert_threshold == low
    # an approval by a key that is not pinned does not count
    with pytest.raises(ThresholdApprovalMissing):
        authorise(approved, authority.public_key(), "cam-01", now, [Ed25519PrivateKey.generate().public_key()])
    # the authority cannot approve its own record
    self_approved = signed.approve(authority)
    with pytest.raises(ThresholdApprovalMissing):
        authorise(self_approved, authority.public_key(), "cam-01", now, [authority.public_key()])
    # an approval copied onto a different record does not verify
    other = SignedDeployment.sign(make_record(alert_threshold=low, deployment_id="DEP-OTHER"), authority)
    grafted = dataclasses.replace(other, approvals=approved.approvals)
    with pytest.raises(ThresholdApprovalMissing):
        authorise(grafted, authority.public_key(), "cam-01", now, [approver.public_key()])
    # the approval survives a round trip through the file format
    assert SignedDeployment.from_bytes(approved.to_bytes()).threshold_approved([approver.public_key()], authority.public_key())


def test_raising_threshold_needs_no_approval(authority):
    signed = SignedDeployment.sign(make_record(alert_threshold=0.64), authority)
    assert authorise(signed, authority.public_key(), "cam-01", START).alert_threshold == 0.64


def test_silent_default_for_body_worn_lfr():
    assert default_silent("LFR", "body_worn") is True
    assert default_silent("LFR", "fixed") is False
    assert default_silent("OIFR", "body_worn") is False
    doc = make_record().to_json()
    del doc["silent"]
    assert DeploymentRecord.from_json(doc, fill_defaults=True).silent is True
    with pytest.raises(ConfigError, match="lacks silent"):
        DeploymentRecord.from_json(doc)  # a signed record must state it explicitly


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"mode": "live"}, "mode"),
        ({"end": START}, "not after its start"),
        ({"start": START.replace(tzinfo=None)}, "timezone-aware"),
        ({"dpia_ref": " "}, "dpia_ref is empty"),
        ({"alert_threshold": 1.5}, "alert_threshold"),
        ({"watchlist_cap": 0}, "watchlist_cap"),
        ({"device_ids": ()}, "names no device"),
        ({"device_ids": ("a/b",)}, "invalid device id"),
    ],
)
def test_invalid_records_refused(changes, message):
    with pytest.raises(ConfigError, match=message):
        make_record(**changes)


def test_unknown_fields_refused():
    doc = make_record().to_json()
    doc["threshold"] = 0.1
    with pytest.raises(ConfigError, match="unknown fields threshold"):
        DeploymentRecord.from_json(doc)


CITATION = CalibrationCitation(
    report_sha256="ab" * 32, created_at="2026-11-20T12:00:00+00:00", tool_version="edge_agent 0.1.0",
    evaluation_report_sha256="cd" * 32, evaluation_set_sha256="ef" * 32,
    detector_sha256="d" * 64, aligner="arcface112-umeyama-eyes-nose-mouthcentre-v1", embedder_sha256="e" * 64,
    budget=1 / 6000, budget_text="1/6000", watchlist_size=2000, evaluated_watchlist_size=10000, threshold=0.5812,
    fpir_upper95=0.000162, nonmated_searches=300000, mated_searches=1000,
)
GOLDEN_V2_PROVISIONAL = (
    '{"alert_threshold":0.6,"authorising_officer":"Supt A. Example (collar 1234)",'
    '"calibration":{"basis":"provisional_default","default_threshold":0.55},"deployment_id":"DEP-2026-0042",'
    '"device_ids":["cam-01","cam-02"],"dpia_ref":"DPIA-LFR-2026-07","end":"2026-11-22T16:00:00Z",'
    '"equality_impact_ref":"EIA-LFR-2026-03","false_alert_budget":null,"format":"edge-agent-deployment",'
    '"legal_basis":"Common law policing powers; DPA 2018 s35","location":"Example Street, Croydon",'
    '"location_rationale":"Crime hotspot; intelligence that listed subjects attend","mode":"LFR","platform":"body_worn",'
    '"purpose":"Locate people wanted on warrant at a city-centre event","silent":true,"start":"2026-11-22T08:00:00Z",'
    '"version":2,"watchlist_cap":2000}'
)
GOLDEN_V2_CITED = (
    '{"alert_threshold":0.6,"authorising_officer":"Supt A. Example (collar 1234)",'
    '"calibration":{"basis":"calibration_report","budget":0.00016666666666666666,"budget_text":"1/6000",'
    '"created_at":"2026-11-20T12:00:00+00:00","evaluated_watchlist_size":10000,'
    '"evaluation_report_sha256":"' + "cd" * 32 + '","evaluation_set_sha256":"' + "ef" * 32 + '",'
    '"fpir_upper95":0.000162,"mated_searches":1000,"model":{"aligner":"arcface112-umeyama-eyes-nose-mouthcentre-v1",'
    '"detector_sha256":"' + "d" * 64 + '","embedder_sha256":"' + "e" * 64 + '"},"nonmated_searches":300000,'
    '"report_sha256":"' + "ab" * 32 + '","threshold":0.5812,"tool_version":"edge_agent 0.1.0","watchlist_size":2000},'
    '"deployment_id":"DEP-2026-0042","device_ids":["cam-01","cam-02"],"dpia_ref":"DPIA-LFR-2026-07",'
    '"end":"2026-11-22T16:00:00Z","equality_impact_ref":"EIA-LFR-2026-03","false_alert_budget":0.00016666666666666666,'
    '"format":"edge-agent-deployment","legal_basis":"Common law policing powers; DPA 2018 s35",'
    '"location":"Example Street, Croydon","location_rationale":"Crime hotspot; intelligence that listed subjects attend",'
    '"mode":"LFR","platform":"body_worn","purpose":"Locate people wanted on warrant at a city-centre event","silent":true,'
    '"start":"2026-11-22T08:00:00Z","version":2,"watchlist_cap":2000}'
)


def test_golden_canonical_bytes():
    """Pins the version 1 encoding: any change to field names, order or time format breaks old signatures."""
    expected = (
        '{"alert_threshold":0.6,"authorising_officer":"Supt A. Example (collar 1234)","deployment_id":"DEP-2026-0042",'
        '"device_ids":["cam-01","cam-02"],"dpia_ref":"DPIA-LFR-2026-07","end":"2026-11-22T16:00:00Z",'
        '"equality_impact_ref":"EIA-LFR-2026-03","format":"edge-agent-deployment","legal_basis":"Common law policing powers; DPA 2018 s35",'
        '"location":"Example Street, Croydon","location_rationale":"Crime hotspot; intelligence that listed subjects attend",'
        '"mode":"LFR","platform":"body_worn","purpose":"Locate people wanted on warrant at a city-centre event",'
        '"silent":true,"start":"2026-11-22T08:00:00Z","version":1,"watchlist_cap":2000}'
    )
    v1 = make_record(version=1, calibration=None)
    assert v1.canonical_bytes() == expected.encode()
    assert DeploymentRecord.from_json(json.loads(expected)) == v1


def test_golden_canonical_bytes_v2():
    """Pins version 2 with both threshold bases; the documented examples are these bytes."""
    provisional = make_record(version=2)
    cited = make_record(calibration=CITATION, false_alert_budget=1 / 6000, version=2)
    assert provisional.canonical_bytes() == GOLDEN_V2_PROVISIONAL.encode()
    assert cited.canonical_bytes() == GOLDEN_V2_CITED.encode()
    for golden, record in ((GOLDEN_V2_PROVISIONAL, provisional), (GOLDEN_V2_CITED, cited)):
        assert DeploymentRecord.from_json(json.loads(golden)) == record
        assert golden in DOCS.read_text()


def test_doc_lists_every_field():
    text = DOCS.read_text()
    documented = re.findall(r"^\| `([a-z_0-9]+)` \|", text, flags=re.M)
    assert set(RECORD_FIELDS) | set(V2_FIELDS) | set(CITATION_FIELDS) | {"format", "version", "default_threshold"} <= set(documented)
    assert f"{calibration.CALIBRATED_DEFAULT_THRESHOLD:.2f}" in text and "CALIBRATED_DEFAULT_THRESHOLD" in text


def test_signed_but_invalid_record_is_a_security_refusal(authority):
    doc = make_record().to_json()
    doc["mode"] = "everything"
    data = jcs(doc)
    signed = SignedDeployment(data, sign(authority, DEPLOYMENT_V3, data))
    with pytest.raises(SecurityError, match="invalid.*mode"):
        signed.verify(authority.public_key())


# --- version 3: RFC 8785, the one timestamp form, its own domains, signed-file version 2 -------------

GOLDEN_V3_PROVISIONAL = GOLDEN_V2_PROVISIONAL.replace('"version":2', '"version":3').replace(':00Z"', ':00.000Z"')
#: Citing a version 2 calibration report, whose created_at is in the one form (the citation copies it as the report wrote it).
CITATION_V2_REPORT = dataclasses.replace(CITATION, created_at="2026-11-20T12:00:00.000Z")
GOLDEN_V3_CITED = GOLDEN_V2_CITED.replace('"version":2', '"version":3').replace(':00Z"', ':00.000Z"').replace("12:00:00+00:00", "12:00:00.000Z")


def test_golden_canonical_bytes_v3():
    """Version 3 is RFC 8785 with the one timestamp form; the documented examples are these bytes (and
    for these values RFC 8785 and the old encoding agree on everything but the version and times)."""
    provisional = make_record()
    cited = make_record(calibration=CITATION_V2_REPORT, false_alert_budget=1 / 6000)
    assert provisional.version == cited.version == 3
    assert provisional.canonical_bytes() == GOLDEN_V3_PROVISIONAL.encode() == jcs(json.loads(GOLDEN_V3_PROVISIONAL))
    assert cited.canonical_bytes() == GOLDEN_V3_CITED.encode() == jcs(json.loads(GOLDEN_V3_CITED))
    for golden, record in ((GOLDEN_V3_PROVISIONAL, provisional), (GOLDEN_V3_CITED, cited)):
        assert DeploymentRecord.from_json(json.loads(golden)) == record
        assert golden in DOCS.read_text()


def test_v3_numbers_are_written_as_rfc_8785_not_python():
    """Where the two encodings differ (1e-07 vs 1e-7), version 3 follows RFC 8785 and version 2 keeps Python's form."""
    v3 = make_record(false_alert_budget=1e-7)
    v2 = make_record(false_alert_budget=1e-7, version=2)
    assert b'"false_alert_budget":1e-7,' in v3.canonical_bytes()
    assert b'"false_alert_budget":1e-07,' in v2.canonical_bytes()
    assert DeploymentRecord.from_json(json.loads(v3.canonical_bytes())) == v3


def test_v3_is_signed_under_its_own_domain_in_signed_file_version_2(authority):
    record = make_record()
    signed = SignedDeployment.sign(record, authority)
    authority.public_key().verify(signed.authority_signature, b"edge-agent deployment v3\x00" + record.canonical_bytes())
    doc = json.loads(signed.to_bytes())
    assert doc["version"] == 2 and signed.to_bytes() == jcs(doc)
    # the same bytes signed under the version 1 domain (what records 1-2 use) do not verify as version 3
    moved = SignedDeployment(signed.record_bytes, sign(authority, DEPLOYMENT_V1, signed.record_bytes))
    with pytest.raises(SecurityError, match="signature is not valid"):
        moved.verify(authority.public_key())
    # and a version 2 record keeps the version 1 domain and signed-file version 1
    old = SignedDeployment.sign(make_record(version=2), authority)
    authority.public_key().verify(old.authority_signature, DEPLOYMENT_V1 + old.record_bytes)
    assert json.loads(old.to_bytes())["version"] == 1 and old.to_bytes() == canonical_json(old.to_json())


@pytest.mark.parametrize("spelling", [
    lambda doc: json.dumps(doc, sort_keys=True).encode(),  # whitespace
    lambda doc: json.dumps(doc, separators=(",", ":")).encode(),  # keys not sorted
    lambda doc: jcs(doc).replace(b'"alert_threshold":0.6', b'"alert_threshold":6e-1'),  # another number spelling
    lambda doc: canonical_json({**doc, "false_alert_budget": 1e-7}),  # Python's exponent form
    lambda doc: jcs(doc).replace(b'{"alert_threshold":0.6', b'{"alert_threshold":0.6,"alert_threshold":0.6', 1),  # duplicate member
])
def test_v3_record_whose_bytes_are_not_rfc_8785_is_refused_even_when_signed(authority, spelling):
    """A receiver refuses a validly signed version 3 record unless its bytes are exactly the RFC 8785 encoding."""
    data = spelling(make_record().to_json())
    signed = SignedDeployment(data, sign(authority, DEPLOYMENT_V3, data))
    with pytest.raises(SecurityError, match="canonical form \\(RFC 8785\\)|not JSON"):
        signed.verify(authority.public_key())


@pytest.mark.parametrize("start", ["2026-11-22T08:00:00Z", "2026-11-22T08:00:00+00:00", "2026-11-22T08:00:00.000000Z"])
def test_v3_record_holds_only_the_one_timestamp_form(authority, start):
    doc = {**make_record().to_json(), "start": start}
    data = jcs(doc)
    with pytest.raises(SecurityError, match="milliseconds"):
        SignedDeployment(data, sign(authority, DEPLOYMENT_V3, data)).verify(authority.public_key())
    # a spec (authoring) may write any UTC form; the record it makes holds the one form
    assert DeploymentRecord.from_json(doc, fill_defaults=True).to_json()["start"] == "2026-11-22T08:00:00.000Z"


def test_v3_times_are_held_to_the_millisecond(authority):
    record = make_record(start=START + timedelta(microseconds=123456))
    assert record.start == START + timedelta(microseconds=123000)
    assert SignedDeployment.sign(record, authority).verify(authority.public_key()) == record


def test_v3_approval_is_made_and_checked_under_the_v3_approval_domain(authority):
    approver = Ed25519PrivateKey.generate()
    signed = SignedDeployment.sign(make_record(alert_threshold=0.5), authority)
    approved = signed.approve(approver)
    signature = base64.b64decode(approved.approvals[0].signature)
    approver.public_key().verify(signature, b"edge-agent threshold-approval v3\x00" + signed.record_bytes)
    assert approved.threshold_approved([approver.public_key()], authority.public_key())
    # an approval over the same bytes under the version 1 approval domain does not count for version 3
    old_style = Approval(approved.approvals[0].public_key, base64.b64encode(sign(approver, THRESHOLD_APPROVAL_V1, signed.record_bytes)).decode())
    assert not dataclasses.replace(signed, approvals=(old_style,)).threshold_approved([approver.public_key()], authority.public_key())


def test_signed_file_version_2_is_refused_unless_canonical_and_matching_its_record(authority):
    signed = SignedDeployment.sign(make_record(), authority)
    doc = signed.to_json()
    assert SignedDeployment.from_bytes(jcs(doc) + b"\n") == signed  # the file form: JCS and a final line feed
    with pytest.raises(SecurityError, match="not in canonical form"):
        SignedDeployment.from_bytes(json.dumps(doc, indent=1).encode())
    with pytest.raises(SecurityError, match="malformed"):
        SignedDeployment.from_bytes(jcs({**doc, "note": "x"}))
    with pytest.raises(SecurityError, match="cannot carry a version 3 record"):
        SignedDeployment.from_bytes(jcs({**doc, "version": 1}))
    old = SignedDeployment.sign(make_record(version=2), authority).to_json()
    with pytest.raises(SecurityError, match="cannot carry a version 2 record"):
        SignedDeployment.from_json({**old, "version": 2})
    with pytest.raises(SecurityError, match="unknown signed deployment version 3"):
        SignedDeployment.from_json({**doc, "version": 3})


def test_cli_create_sign_and_approve_write_version_3(tmp_path, capsys):
    """deployment create (unsigned), sign and approve: the record is version 3 in signed-file version 2, all RFC 8785."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from deployment_helpers import write_spec

    from edge_agent.cli.main import main

    assert main(["keys", "init-authority", str(tmp_path / "auth")]) == 0
    assert main(["keys", "init-approver", str(tmp_path / "appr")]) == 0
    spec = write_spec(tmp_path / "spec.json", alert_threshold=0.5)
    assert main(["deployment", "create", "--spec", str(spec), "--out", str(tmp_path / "rec.json")]) == 0
    unsigned = (tmp_path / "rec.json").read_bytes()
    assert unsigned == jcs(json.loads(unsigned)) + b"\n" and json.loads(unsigned)["version"] == 3
    assert main(["deployment", "sign", str(tmp_path / "rec.json"), "--authority-key", str(tmp_path / "auth"), "--out", str(tmp_path / "dep.json")]) == 0
    assert main(["deployment", "approve", str(tmp_path / "dep.json"), "--approver-key", str(tmp_path / "appr")]) == 0
    data = (tmp_path / "dep.json").read_bytes()
    doc = json.loads(data)
    assert data == jcs(doc) + b"\n" and doc["version"] == 2 and len(doc["approvals"]) == 1
    assert base64.b64decode(doc["record"]) == unsigned[:-1]
    capsys.readouterr()
    assert main(["deployment", "verify", str(tmp_path / "dep.json"), "--authority-pub", str(tmp_path / "auth"),
                 "--approver-pub", str(tmp_path / "appr")]) == 0
    assert "record version 3" in capsys.readouterr().out

"""Issue 10.6: the device gets a minimal watchlist (format v2); the rest of each listing stays in the
signed central build record. v1 packages still load, keeping only the minimal fields in memory."""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from watchlist_helpers import DURING, MODEL, make_entries, unit_templates

from edge_agent.crypto.sealing import open_sealed
from edge_agent.identity.keys import DeviceKeys
from edge_agent.watchlist.build_record import BuildRecordInvalid, make_build_record, sign_build_record, verify_build_record
from edge_agent.watchlist.entry import DEVICE_ENTRY_FIELDS, ENTRY_FIELDS, DeviceEntry, WatchlistEntry
from edge_agent.watchlist.errors import PackageTampered
from edge_agent.watchlist.format import MAGIC, NONCE_LEN, SEAL_CONTEXTS, decode_container, seal_aad
from edge_agent.watchlist.loader import load_watchlist

GOLDEN = Path(__file__).resolve().parent / "golden"
DOC = Path(__file__).resolve().parents[2] / "docs" / "formats" / "watchlist.md"
CHILD = WatchlistEntry("CASE-CHILD", "missing_vulnerable", "family photo", "Missing person report MP-9", date(2026, 1, 1), date(2026, 10, 1),
                       True, "High risk missing child; parental consent", 1)


def _plaintext(data: bytes, device: DeviceKeys) -> bytes:
    """What the device decrypts (done here by hand, as an integrator would from the doc)."""
    c = decode_container(data)
    key = open_sealed(c.seals[device.device_id], device.sealing_key, SEAL_CONTEXTS[c.version], seal_aad(c.prefix, device.device_id, c.version))
    return AESGCM(key).decrypt(c.payload[:NONCE_LEN], c.payload[NONCE_LEN:], c.prefix)


def _golden():
    keys = json.loads((GOLDEN / "keys.json").read_text())
    authority = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(keys["authority_ed25519"]))
    device = DeviceKeys(keys["device_id"], Ed25519PrivateKey.generate(), X25519PrivateKey.from_private_bytes(bytes.fromhex(keys["device_x25519"])))
    return authority.public_key(), device


def test_a_v2_package_carries_only_reference_category_and_template_count(world):
    entries = [*make_entries(3), CHILD]
    data, _ = world.pack(entries=entries)
    assert data[:5] == MAGIC + b"\x02"
    plaintext = _plaintext(data, world.devices["cam-01"])
    meta_len = int.from_bytes(plaintext[:4], "big")
    meta = json.loads(plaintext[4 : 4 + meta_len])
    assert [set(e) for e in meta["entries"]] == [set(DEVICE_ENTRY_FIELDS)] * 4
    assert meta["entries"][3] == {"subject_ref": "CASE-CHILD", "category": "missing_vulnerable", "templates": 1}
    for secret in ("custody image", "PACE s64A", "family photo", "Missing person report", "parental consent", "2026-01-01", "under_18"):
        assert secret.encode() not in plaintext and secret.encode() not in data, secret
    loaded = load_watchlist(data, world.devices["cam-01"], world.authority.public_key(), MODEL, DURING)
    assert loaded.version == 2 and all(type(e) is DeviceEntry for e in loaded.entries)
    assert [dataclasses.asdict(e) for e in loaded.entries][3] == meta["entries"][3]


def test_the_search_above_finds_listing_details_in_a_v1_package():
    """Positive control: the committed v1 package does carry the listing fields to the device."""
    authority_pub, device = _golden()
    data = (GOLDEN / "v1.eawl").read_bytes()
    plaintext = _plaintext(data, device)
    assert b"custody image" in plaintext and b"PACE s64A" in plaintext and b"under_18_justification" in plaintext
    loaded = load_watchlist(data, device, authority_pub, MODEL, DURING)
    assert loaded.version == 1
    assert [dataclasses.asdict(e) for e in loaded.entries][0] == {"subject_ref": "CASE-00000", "category": "wanted_by_court", "templates": 2}
    assert all(not hasattr(e, "legal_basis") for e in loaded.entries), "a v1 load keeps only what matching needs"


def test_golden_v2_package_decodes():
    authority_pub, device = _golden()
    data = (GOLDEN / "v2.eawl").read_bytes()
    wl = load_watchlist(data, device, authority_pub, MODEL, DURING)
    assert wl.version == 2 and [e.subject_ref for e in wl.entries] == ["CASE-00000", "CASE-00001", "CASE-00002"]
    expected = unit_templates(6, seed=42)
    assert np.array_equal(np.sort(wl.gallery.templates, axis=0), np.sort(expected, axis=0))
    header = decode_container(data).header
    assert header["version"] == 2 and header["expires"] == "2026-11-22T16:00:00.000Z" and header["not_before"] == "2026-11-22T08:00:00.000Z"


def test_a_v2_package_relabelled_v1_is_refused(world):
    """The signing domain names the version: a v2 signature is no v1 signature."""
    data, _ = world.pack()
    with pytest.raises(PackageTampered, match="signature is not valid"):
        load_watchlist(data[:4] + b"\x01" + data[5:], world.devices["cam-01"], world.authority.public_key(), MODEL, DURING)


def test_non_canonical_v2_header_is_refused(world):
    """A header that is not its own JCS (here: a space added, re-signed by the authority) is refused."""
    from edge_agent.crypto.signing import sign
    from edge_agent.watchlist.format import SIGNATURE_DOMAIN, SIGNATURE_LEN

    data, _ = world.pack()
    header_len = int.from_bytes(data[5:9], "big")
    header = data[9 : 9 + header_len]
    spaced = header.replace(b'"cipher":', b'"cipher": ', 1)
    unsigned = data[:5] + len(spaced).to_bytes(4, "big") + spaced + data[9 + header_len : -SIGNATURE_LEN]
    forged = unsigned + sign(world.authority, SIGNATURE_DOMAIN, unsigned)
    with pytest.raises(PackageTampered, match="not canonical"):
        load_watchlist(forged, world.devices["cam-01"], world.authority.public_key(), MODEL, DURING)


def _record(world, entries=None):
    entries = entries or [*make_entries(2), CHILD]
    data, _ = world.pack(entries=entries, recipients=("cam-01", "cam-02"))
    warnings = [{"code": "old_image", "subject_ref": "CASE-00001", "message": "a.jpg: taken 2010-06-01, older than 5 years"}]
    return data, entries, sign_build_record(make_build_record(data, entries, warnings), world.authority)


def test_the_build_record_keeps_every_listing_and_is_bound_to_its_package(world):
    data, entries, signed = _record(world)
    record = verify_build_record(signed, world.authority.public_key(), data)
    assert record.subjects == tuple(entries) and record.recipients == ("cam-01", "cam-02")
    assert record.package_id == decode_container(data).header["package_id"] and record.deployment_id == "DEP-2026-0042"
    assert record.subjects[2].under_18_justification == "High risk missing child; parental consent"
    assert [set(s) for s in json.loads(signed)["record"]["subjects"]] == [set(ENTRY_FIELDS)] * 3
    assert record.warnings[0]["code"] == "old_image"


def test_a_build_record_that_is_altered_foreign_or_for_another_package_is_refused(world):
    data, entries, signed = _record(world)
    altered = signed.replace(b"parental consent", b"no consent needed")
    with pytest.raises(BuildRecordInvalid, match="signature is not valid"):
        verify_build_record(altered, world.authority.public_key())
    with pytest.raises(BuildRecordInvalid, match="signature is not valid"):
        verify_build_record(signed, Ed25519PrivateKey.generate().public_key())
    other, _ = world.pack(seed=5)
    with pytest.raises(BuildRecordInvalid, match="not this file"):
        verify_build_record(signed, world.authority.public_key(), other)
    doc = json.loads(signed)
    with pytest.raises(BuildRecordInvalid, match="canonical"):
        verify_build_record(json.dumps(doc, indent=1).encode(), world.authority.public_key())
    with pytest.raises(BuildRecordInvalid, match="duplicate key"):
        verify_build_record(b'{"signature":"x",' + signed[1:], world.authority.public_key())


def test_doc_lists_the_device_entry_and_build_record_fields():
    from edge_agent.watchlist.build_record import RECORD_FIELDS

    text = DOC.read_text()
    documented = set(re.findall(r"^\| `([a-z_0-9]+)` \|", text, flags=re.M))
    assert set(DEVICE_ENTRY_FIELDS) | set(ENTRY_FIELDS) | set(RECORD_FIELDS) | {"record", "signature"} <= documented
    assert "edge-agent watchlist build-record v1\\x00" in text and "edge-agent watchlist v2\\x00" in text


@pytest.mark.parametrize("record_version, signed_file_version", [(3, 2), (2, 1)])
def test_a_package_embeds_and_verifies_a_deployment_of_either_record_version(world, record_version, signed_file_version):
    """Issue 16.1: a version 3 deployment (RFC 8785, signed-file version 2) embeds in a package, loads
    and has its build record; one issued as version 2 before keeps doing so."""
    from watchlist_helpers import make_record

    from edge_agent.crypto.canonical import jcs
    from edge_agent.deployment.record import SignedDeployment

    deployment = SignedDeployment.sign(make_record(version=record_version), world.authority)
    entries = make_entries(2)
    data, _ = world.pack(entries=entries, deployment=deployment)
    header = decode_container(data).header
    assert header["deployment"]["version"] == signed_file_version and SignedDeployment.from_json(header["deployment"]) == deployment
    loaded = load_watchlist(data, world.devices["cam-01"], world.authority.public_key(), MODEL, DURING, expected_deployment=deployment)
    assert loaded.deployment.version == record_version and loaded.deployment == deployment.unverified_record()
    build = verify_build_record(sign_build_record(make_build_record(data, entries, []), world.authority), world.authority.public_key(), data)
    assert build.deployment_id == loaded.deployment.deployment_id
    if record_version == 3:  # a validly signed but non-canonical record: not packed, and refused by the policy the loader applies
        from edge_agent.crypto.signing import DEPLOYMENT_V3, sign
        from edge_agent.deployment.errors import DeploymentRefused
        from edge_agent.deployment.policy import authorise
        from edge_agent.errors import SecurityError

        spaced = json.dumps(json.loads(deployment.record_bytes)).encode()
        assert spaced != jcs(json.loads(spaced))
        bad = SignedDeployment(spaced, sign(world.authority, DEPLOYMENT_V3, spaced))
        with pytest.raises(SecurityError, match="canonical form"):
            world.pack(entries=entries, deployment=bad)
        with pytest.raises(DeploymentRefused, match="canonical form"):
            authorise(bad, world.authority.public_key(), "cam-01", DURING)

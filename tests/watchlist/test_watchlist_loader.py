"""Device-side loading: every refusal is specific; a good package matches; matching stops at the end."""

from __future__ import annotations

import struct
from datetime import timedelta

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from watchlist_helpers import DURING, END, MODEL, START, citation, make_entries, make_record, unit_templates

from edge_agent.deployment.errors import CalibrationMismatch, DeploymentRefused, DeviceNotInDeployment, ThresholdApprovalMissing
from edge_agent.deployment.record import SignedDeployment
from edge_agent.errors import ConfigError, SecurityError
from edge_agent.watchlist.errors import (
    DeploymentMismatch,
    ModelMismatch,
    NotAWatchlist,
    PackageTampered,
    UnknownFormatVersion,
    WatchlistBuildError,
    WatchlistExpired,
    WatchlistNotYetValid,
    WrongDevice,
)
from edge_agent.watchlist.format import decode_container
from edge_agent.watchlist.loader import load_watchlist


def test_round_trip_and_search(world):
    data, templates = world.pack(n=6, templates_each=2, recipients=("cam-01", "cam-02"))
    for device_id in ("cam-01", "cam-02"):
        wl = load_watchlist(data, world.devices[device_id], world.authority.public_key(), MODEL, DURING)
        assert len(wl.gallery) == 12 and len(wl.entries) == 6 and wl.version == 2  # new packages are format v2
        assert wl.deployment.deployment_id == "DEP-2026-0042" and wl.expires_at == END
        assert np.array_equal(np.sort(wl.gallery.templates, axis=0), np.sort(templates, axis=0))
        best = wl.search(templates[7], DURING, k=3)[0]
        assert best.subject_ref == "CASE-00003" and best.score == pytest.approx(1.0, abs=1e-5)
        assert wl.category_of("CASE-00003") == "risk_to_self_or_others"


def test_matching_stops_at_deployment_end(world):
    data, templates = world.pack()
    wl = load_watchlist(data, world.devices["cam-01"], world.authority.public_key(), MODEL, DURING)
    assert wl.search(templates[0], END - timedelta(seconds=1))
    assert wl.search(templates[0], END) == []
    assert wl.search(templates[0], END + timedelta(days=1)) == []


def _regions(data: bytes) -> dict[str, tuple[int, int]]:
    """Byte ranges of each region of a package: (start, end)."""
    c = decode_container(data)
    header_len = struct.unpack_from(">I", data, 5)[0]
    regions = {"magic": (0, 4), "version": (4, 5), "header_len": (5, 9), "header": (9, 9 + header_len)}
    pos = 9 + header_len
    regions["seal_count"] = (pos, pos + 2)
    pos += 2
    for device_id in sorted(c.seals):
        id_len = data[pos]
        regions[f"seal_id:{device_id}"] = (pos + 1, pos + 1 + id_len)
        pos += 1 + id_len + 2
        regions[f"seal:{device_id}"] = (pos, pos + len(c.seals[device_id]))
        pos += len(c.seals[device_id])
    regions["payload_len"] = (pos, pos + 8)
    regions["payload_nonce"] = (pos + 8, pos + 20)
    regions["payload_ciphertext"] = (pos + 20, len(data) - 64 - 16)
    regions["payload_tag"] = (len(data) - 64 - 16, len(data) - 64)
    regions["signature"] = (len(data) - 64, len(data))
    return regions


def test_every_region_tampered_is_refused(world):
    data, _ = world.pack(n=3, recipients=("cam-01", "cam-02"))
    device = world.devices["cam-01"]
    regions = _regions(data)
    assert len(regions) == 14
    for name, (start, end) in regions.items():
        for offset in sorted({start, (start + end) // 2, end - 1}):
            bad = bytearray(data)
            bad[offset] ^= 0x01
            with pytest.raises(SecurityError) as info:
                load_watchlist(bytes(bad), device, world.authority.public_key(), MODEL, DURING)
            expected = {"magic": NotAWatchlist, "version": UnknownFormatVersion}.get(name, PackageTampered)
            assert isinstance(info.value, expected), f"{name} byte {offset}: {type(info.value).__name__}"


def test_truncated_and_extended_refused(world):
    data, _ = world.pack()
    for bad in (data[:-1], data + b"\x00", data[:100], b"EAWL\x01"):
        with pytest.raises(PackageTampered):
            load_watchlist(bad, world.devices["cam-01"], world.authority.public_key(), MODEL, DURING)


def test_not_a_package(world):
    with pytest.raises(NotAWatchlist, match="bad magic"):
        load_watchlist(b"PK\x03\x04 zip file", world.devices["cam-01"], world.authority.public_key(), MODEL, DURING)


def test_other_authority_refused(world):
    data, _ = world.pack()
    with pytest.raises(PackageTampered, match="pinned authority key"):
        load_watchlist(data, world.devices["cam-01"], Ed25519PrivateKey.generate().public_key(), MODEL, DURING)


def test_wrong_device_refused(world):
    data, _ = world.pack(recipients=("cam-01",))
    with pytest.raises(WrongDevice, match="not issued to device 'cam-02'"):
        load_watchlist(data, world.devices["cam-02"], world.authority.public_key(), MODEL, DURING)


def test_device_with_same_id_but_other_key_refused(world):
    from dataclasses import replace

    data, _ = world.pack(recipients=("cam-01",))
    impostor = replace(world.devices["cam-02"], device_id="cam-01")
    with pytest.raises(WrongDevice, match="does not open"):
        load_watchlist(data, impostor, world.authority.public_key(), MODEL, DURING)


def test_device_not_in_deployment_refused(world):
    data, _ = world.pack(recipients=("cam-01",))
    with pytest.raises(WatchlistBuildError, match="not named in deployment"):
        world.pack(recipients=("cam-03",))
    with pytest.raises(DeviceNotInDeployment, match="cam-03"):
        load_watchlist(data, world.devices["cam-03"], world.authority.public_key(), MODEL, DURING)


def test_expired_and_not_yet_valid(world):
    data, _ = world.pack()
    dev, pub = world.devices["cam-01"], world.authority.public_key()
    with pytest.raises(WatchlistExpired, match="expired"):
        load_watchlist(data, dev, pub, MODEL, END)
    with pytest.raises(WatchlistNotYetValid, match="valid from"):
        load_watchlist(data, dev, pub, MODEL, START - timedelta(minutes=1))
    assert load_watchlist(data, dev, pub, MODEL, START).active(START)


def test_early_expiry_honoured(world):
    data, _ = world.pack(expires=START + timedelta(hours=2))
    with pytest.raises(WatchlistExpired):
        load_watchlist(data, world.devices["cam-01"], world.authority.public_key(), MODEL, START + timedelta(hours=3))


def test_expiry_after_deployment_end_cannot_be_built(world):
    with pytest.raises(WatchlistBuildError, match="after the deployment end"):
        world.pack(expires=END + timedelta(seconds=1))


@pytest.mark.parametrize("field", ["detector_sha256", "aligner", "embedder_sha256"])
def test_model_mismatch(world, field):
    data, _ = world.pack()
    other = dict(MODEL, **{field: "0" * 64})
    with pytest.raises(ModelMismatch, match=field):
        load_watchlist(data, world.devices["cam-01"], world.authority.public_key(), other, DURING)


def test_threshold_lowered_without_approval_refused(world):
    approver = Ed25519PrivateKey.generate()
    low = SignedDeployment.sign(make_record(alert_threshold=0.4), world.authority)
    data, _ = world.pack(deployment=low)
    dev, pub = world.devices["cam-01"], world.authority.public_key()
    with pytest.raises(ThresholdApprovalMissing):
        load_watchlist(data, dev, pub, MODEL, DURING, [approver.public_key()])
    data, _ = world.pack(deployment=low.approve(approver))
    assert load_watchlist(data, dev, pub, MODEL, DURING, [approver.public_key()]).deployment.alert_threshold == 0.4


@pytest.mark.parametrize("field", ["detector_sha256", "aligner", "embedder_sha256"])
def test_cited_calibration_for_other_models_refused_on_the_device(world, field):
    """The watchlist matches the device's models, but the threshold's calibration was made with others."""
    dep = SignedDeployment.sign(make_record(calibration=citation(**{field: "0" * 64})), world.authority)
    data, _ = world.pack(deployment=dep)
    with pytest.raises(CalibrationMismatch, match=field):
        load_watchlist(data, world.devices["cam-01"], world.authority.public_key(), MODEL, DURING)


def test_cited_calibration_sets_the_calibrated_default_on_the_device(world):
    """Below the cited calibration's threshold (0.58) an approval is needed, even above the provisional 0.55."""
    approver = Ed25519PrivateKey.generate()
    dev, pub = world.devices["cam-01"], world.authority.public_key()
    low = SignedDeployment.sign(make_record(alert_threshold=0.57, calibration=citation(threshold=0.58)), world.authority)
    data, _ = world.pack(deployment=low)
    with pytest.raises(ThresholdApprovalMissing, match="0.58 of its cited calibration"):
        load_watchlist(data, dev, pub, MODEL, DURING, [approver.public_key()])
    data, _ = world.pack(deployment=low.approve(approver))
    assert load_watchlist(data, dev, pub, MODEL, DURING, [approver.public_key()]).deployment.alert_threshold == 0.57
    # a calibration that certifies a lower threshold (0.5) lets 0.52 run without approval
    cited_low = SignedDeployment.sign(make_record(alert_threshold=0.52, calibration=citation(threshold=0.5)), world.authority)
    data, _ = world.pack(deployment=cited_low)
    assert load_watchlist(data, dev, pub, MODEL, DURING).deployment.alert_threshold == 0.52


def test_over_cap_refused_at_build(world):
    small = SignedDeployment.sign(make_record(watchlist_cap=3), world.authority)
    with pytest.raises(WatchlistBuildError, match="cap of 3"):
        world.pack(n=4, deployment=small)


def test_unknown_version_named(world):
    data, _ = world.pack()
    with pytest.raises(UnknownFormatVersion, match="version 3 is not supported") as info:
        load_watchlist(data[:4] + b"\x03" + data[5:], world.devices["cam-01"], world.authority.public_key(), MODEL, DURING)
    assert "reads versions 1, 2" in info.value.message


def test_entries_carry_no_names_or_free_categories():
    with pytest.raises(ConfigError, match="opaque reference"):
        make_entries(1)[0].__class__(**{**make_entries(1)[0].__dict__, "subject_ref": "John Smith"})
    with pytest.raises(ConfigError, match="closed list"):
        make_entries(1)[0].__class__(**{**make_entries(1)[0].__dict__, "category": "other"})
    with pytest.raises(ConfigError, match="under 18"):
        make_entries(1)[0].__class__(**{**make_entries(1)[0].__dict__, "under_18": True, "under_18_justification": " "})


def test_separately_pushed_deployment_must_be_the_bound_one(world):
    data, _ = world.pack()
    dev, pub = world.devices["cam-01"], world.authority.public_key()
    assert load_watchlist(data, dev, pub, MODEL, DURING, expected_deployment=world.deployment).deployment.deployment_id == "DEP-2026-0042"
    other = SignedDeployment.sign(make_record(purpose="something else"), world.authority)
    with pytest.raises(DeploymentMismatch, match="different deployment record"):
        load_watchlist(data, dev, pub, MODEL, DURING, expected_deployment=other)


def test_separately_pushed_deployment_must_carry_a_valid_signature(world):
    """Equal bytes are not enough: the pushed file is what operators read as the authority (issue 11)."""
    data, _ = world.pack()
    dev, pub = world.devices["cam-01"], world.authority.public_key()
    signature = bytearray(world.deployment.authority_signature)
    signature[0] ^= 0x80
    for bad in (
        SignedDeployment(world.deployment.record_bytes, bytes(signature), world.deployment.approvals),
        SignedDeployment.sign(world.deployment.unverified_record(), Ed25519PrivateKey.generate()),
    ):
        assert bad.record_bytes == world.deployment.record_bytes
        with pytest.raises(DeploymentRefused, match="separately pushed deployment record is refused: .*signature is not valid"):
            load_watchlist(data, dev, pub, MODEL, DURING, expected_deployment=bad)


def test_a_package_from_the_retired_four_point_aligner_is_refused_with_what_to_do(world):
    """Issue 13: templates from the four-point aligner do not compare with five-point ones; a
    device on this release refuses such a package and says to rebuild it (not just 'models differ')."""
    from edge_agent.vision.identity import FOUR_POINT_ALIGNER, mesh_aligner_id
    from edge_agent.watchlist.package import pack_watchlist

    old = dict(MODEL, aligner=FOUR_POINT_ALIGNER)
    entries = make_entries(3)
    data = pack_watchlist(world.deployment, entries, unit_templates(3), old, {"cam-01": world.devices["cam-01"].sealing_public},
                          world.authority, START - timedelta(hours=2))
    device = dict(MODEL, aligner=mesh_aligner_id("a" * 64))
    with pytest.raises(ModelMismatch, match="retired four-point aligner") as caught:
        load_watchlist(data, world.devices["cam-01"], world.authority.public_key(), device, DURING)
    assert "rebuild the watchlist" in caught.value.hint

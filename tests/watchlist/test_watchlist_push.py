"""Issue 10.8: a refused package never replaces a good one.

A pushed package is verified in full (signature, device, deployment, expiry, model) before the
store's atomic replace; every refusal is audited with where the package came from and its hash;
a failure while replacing leaves the installed package intact.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from watchlist_helpers import DURING, END, MODEL, START, make_entries, make_record, unit_templates

from edge_agent.audit import AuditLog
from edge_agent.deployment.record import SignedDeployment
from edge_agent.watchlist.installed import accept_pushed, load_installed
from edge_agent.watchlist.loader import DeviceTrust
from edge_agent.watchlist.package import pack_watchlist
from edge_agent.watchlist.store import WatchlistStore, WatchlistStoreError


def _audit(world, tmp_path):
    return AuditLog.open(tmp_path / "state" / "audit.jsonl", world.devices["cam-01"].signing_key, "device:cam-01")


def _records(tmp_path: Path) -> list[dict]:
    return [json.loads(line) for line in (tmp_path / "state" / "audit.jsonl").read_text().splitlines()]


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1:]


def _forged(world) -> bytes:
    """A well-formed package from someone else's authority key, for the right device."""
    other = Ed25519PrivateKey.generate()
    entries = make_entries(3)
    return pack_watchlist(SignedDeployment.sign(make_record(), other), entries, unit_templates(3, 9), MODEL,
                          {"cam-01": world.devices["cam-01"].sealing_public}, other, START - timedelta(hours=2))


BAD_PUSHES = {
    # name: (make the pushed bytes, model identity the device runs, expected refusal class)
    "forged": (lambda w, good: _forged(w), MODEL, "PackageTampered"),
    "corrupt_payload": (lambda w, good: _flip(good, len(good) - 80), MODEL, "PackageTampered"),
    "corrupt_header_magic_intact": (lambda w, good: _flip(good, 40), MODEL, "PackageTampered"),
    "other_device": (lambda w, good: w.pack(seed=3, recipients=("cam-02",))[0], MODEL, "WrongDevice"),
    "other_models": (lambda w, good: w.pack(seed=4)[0], {**MODEL, "embedder_sha256": "f" * 64}, "ModelMismatch"),
    "not_a_watchlist": (lambda w, good: b"EAWL" + os.urandom(200), MODEL, None),
}


@pytest.mark.parametrize("case", sorted(BAD_PUSHES))
def test_a_refused_push_leaves_the_installed_package_and_is_audited(world, tmp_path, case):
    make, model, reason = BAD_PUSHES[case]
    good, templates = world.pack(seed=1)
    store = WatchlistStore(tmp_path / "state" / "watchlist")
    store.install(good)
    bad = make(world, good)
    pushed = tmp_path / "incoming" / "watchlist.eawl"
    pushed.parent.mkdir()
    pushed.write_bytes(bad)
    with _audit(world, tmp_path) as audit:
        outcome = accept_pushed(store, pushed, DeviceTrust(world.devices["cam-01"], world.authority.public_key(), model), DURING, audit)
        assert outcome.loaded is None and outcome.refusal is not None and not outcome.ended
        assert store.read() == good, "the installed package is byte for byte what it was"
        wl = load_installed(store, DeviceTrust(world.devices["cam-01"], world.authority.public_key(), MODEL), DURING, audit)
        assert wl.search(templates[0], DURING)[0].score > 0.999, "and it still matches"
    assert pushed.read_bytes() == bad, "a refused push stays where it was pushed, for the operator to see"
    refused = [r["details"] for r in _records(tmp_path) if r["kind"] == "watchlist_refused"]
    assert len(refused) == 1
    assert refused[0]["source"] == str(pushed) and refused[0]["package_sha256"] == hashlib.sha256(bad).hexdigest()
    if reason is not None:
        assert refused[0]["reason"] == reason
    assert [r["kind"] for r in _records(tmp_path) if r["kind"] != "checkpoint"] == ["watchlist_refused", "watchlist_loaded"]


def test_a_push_bound_to_another_deployment_record_is_refused(world, tmp_path):
    good, _ = world.pack(seed=1)
    store = WatchlistStore(tmp_path / "state" / "watchlist")
    store.install(good)
    other = SignedDeployment.sign(make_record(deployment_id="DEP-2026-0099"), world.authority)
    pushed = tmp_path / "push.eawl"
    pushed.write_bytes(world.pack(seed=2, deployment=other)[0])
    with _audit(world, tmp_path) as audit:
        outcome = accept_pushed(store, pushed, DeviceTrust(world.devices["cam-01"], world.authority.public_key(), MODEL,
                                                                expected_deployment=world.deployment), DURING, audit)
    assert type(outcome.refusal).__name__ == "DeploymentMismatch"
    assert store.read() == good


def test_a_push_for_a_later_deployment_waits_and_is_accepted_once_it_starts(world, tmp_path):
    later = SignedDeployment.sign(make_record(deployment_id="DEP-LATER", start=END, end=END + timedelta(hours=8)), world.authority)
    current, _ = world.pack(seed=1)
    store = WatchlistStore(tmp_path / "state" / "watchlist")
    store.install(current)
    pushed = tmp_path / "push.eawl"
    next_package = world.pack(seed=2, deployment=later)[0]
    pushed.write_bytes(next_package)
    with _audit(world, tmp_path) as audit:
        early = accept_pushed(store, pushed, DeviceTrust(world.devices["cam-01"], world.authority.public_key(), MODEL), DURING, audit)
        assert type(early.refusal).__name__ == "WatchlistNotYetValid" and store.read() == current and pushed.exists()
        started = accept_pushed(store, pushed, DeviceTrust(world.devices["cam-01"], world.authority.public_key(), MODEL), END + timedelta(minutes=1), audit)
    assert started.loaded is not None and started.loaded.deployment.deployment_id == "DEP-LATER"
    assert store.read() == next_package and not pushed.exists()


def test_an_expired_push_is_destroyed_not_installed(world, tmp_path):
    current, _ = world.pack(seed=1)
    store = WatchlistStore(tmp_path / "state" / "watchlist")
    store.install(current)
    pushed = tmp_path / "push.eawl"
    pushed.write_bytes(world.pack(seed=2, expires=START + timedelta(minutes=30))[0])
    with _audit(world, tmp_path) as audit:
        outcome = accept_pushed(store, pushed, DeviceTrust(world.devices["cam-01"], world.authority.public_key(), MODEL), DURING, audit)
    assert outcome.ended and type(outcome.refusal).__name__ == "WatchlistExpired"
    assert store.read() == current and not pushed.exists()
    assert [r["kind"] for r in _records(tmp_path) if r["kind"] != "checkpoint"] == ["watchlist_refused", "deployment_ended", "watchlist_wiped"]


def test_a_failed_replace_leaves_the_old_package_installed(world, tmp_path, monkeypatch):
    """Today's store overwrote the old package before the rename: a failed rename destroyed it."""
    good, _ = world.pack(seed=1)
    newer, _ = world.pack(seed=2)
    store = WatchlistStore(tmp_path / "w")
    store.install(good)

    def failing_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(WatchlistStoreError, match="No space left on device") as info:
        store.install(newer)
    assert "free space" in info.value.hint
    monkeypatch.undo()
    assert store.read() == good
    assert [p.name for p in store.directory.iterdir()] == ["watchlist.eawl"], "no temporary copy or extra link is left"


def test_leftovers_of_a_crashed_install_are_destroyed(world, tmp_path):
    good, _ = world.pack(seed=1)
    store = WatchlistStore(tmp_path / "w")
    store.directory.mkdir()
    (store.directory / ".watchlist-replaced").write_bytes(good)
    (store.directory / ".watchlist-abc123").write_bytes(good[:100])
    store.install(good)
    assert [p.name for p in store.directory.iterdir()] == ["watchlist.eawl"]

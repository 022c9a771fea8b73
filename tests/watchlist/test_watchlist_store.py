"""Stored package: ciphertext only on disk, audited wipe, destruction at deployment end, audited loads."""

from __future__ import annotations

import json
import os
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import pytest
from watchlist_helpers import DURING, END, MODEL, START, citation, make_record

from edge_agent.audit import AuditLog, verify_audit_log
from edge_agent.deployment.record import SignedDeployment
from edge_agent.watchlist.errors import WatchlistExpired
from edge_agent.watchlist.installed import accept_pushed, load_installed
from edge_agent.watchlist.loader import DeviceTrust
from edge_agent.watchlist.retention import enforce_retention
from edge_agent.watchlist.store import WatchlistStore


def _audit(world, tmp_path):
    return AuditLog.open(tmp_path / "state" / "audit.jsonl", world.devices["cam-01"].signing_key, "device:cam-01", checkpoint_every=10)


def _kinds(path: Path) -> list[str]:
    return [json.loads(line)["kind"] for line in path.read_text().splitlines()]


def _files_touched_since(root: Path, since: float):
    for dirpath, dirs, files in os.walk(root, onerror=lambda e: None):
        # Not into other filesystems: a chroot being built under /tmp has /proc mounted, and
        # reading its kmsg blocks forever.
        dirs[:] = [d for d in dirs if not os.path.ismount(os.path.join(dirpath, d))]
        for name in files:
            path = Path(dirpath) / name
            try:
                if path.is_file() and not path.is_symlink() and path.stat().st_mtime >= since:
                    yield path
            except OSError:
                continue


def test_no_plaintext_template_bytes_on_disk(world, tmp_path):
    """After build, install, load and search, no file in the state dir or temp dir holds template bytes."""
    started = time.time() - 1
    state = tmp_path / "state"
    data, templates = world.pack(n=20, templates_each=2)
    store = WatchlistStore(state / "watchlist")
    store.install(data)
    with _audit(world, tmp_path) as audit:
        wl = load_installed(store, DeviceTrust(world.devices["cam-01"], world.authority.public_key(), MODEL), DURING, audit)
        for t in templates:
            assert wl.search(t, DURING)[0].score > 0.999
    needles = [t.astype("<f4").tobytes()[:32] for t in templates]
    scanned = 0
    for root in (tmp_path, Path(tempfile.gettempdir())):
        for path in _files_touched_since(root, started):
            try:
                blob = path.read_bytes()
            except OSError:
                continue
            scanned += 1
            for needle in needles:
                assert needle not in blob, f"plaintext template bytes found in {path}"
    assert scanned >= 2  # at least the stored package and the audit log were examined
    assert store.read() == data  # what is stored is exactly the encrypted package


def test_wipe_overwrites_unlinks_and_audits(world, tmp_path):
    data, _ = world.pack()
    store = WatchlistStore(tmp_path / "state" / "watchlist")
    path = store.install(data)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    inode_before = path.stat().st_ino
    with _audit(world, tmp_path) as audit:
        assert store.wipe(audit, "operator request", DURING, actor="operator:pc1234")
        assert not store.exists() and not store.wipe(audit, "again", DURING)
    assert list((tmp_path / "state" / "watchlist").iterdir()) == []
    assert inode_before  # the file was real
    log = tmp_path / "state" / "audit.jsonl"
    assert _kinds(log)[0] == "watchlist_wiped"
    assert "DEP-2026-0042" in log.read_text() and "operator:pc1234" in log.read_text()
    assert verify_audit_log(log, world.devices["cam-01"].signing_public, 10).ok


def test_retention_destroys_at_deployment_end(world, tmp_path):
    data, _ = world.pack()
    store = WatchlistStore(tmp_path / "state" / "watchlist")
    store.install(data)
    with _audit(world, tmp_path) as audit:
        assert not enforce_retention(store, END - timedelta(seconds=1), audit)
        assert store.exists()
        assert enforce_retention(store, END, audit)
        assert not store.exists()
        assert not enforce_retention(store, END + timedelta(hours=1), audit)
    assert _kinds(tmp_path / "state" / "audit.jsonl")[:2] == ["deployment_ended", "watchlist_wiped"]


def test_retention_destroys_unreadable_package(world, tmp_path):
    store = WatchlistStore(tmp_path / "state" / "watchlist")
    store.directory.mkdir(parents=True)
    store.path.write_bytes(b"EAWL\x01garbage")
    with _audit(world, tmp_path) as audit:
        assert enforce_retention(store, DURING, audit)
    assert not store.exists()


def test_refusal_is_audited(world, tmp_path):
    data, _ = world.pack()
    store = WatchlistStore(tmp_path / "state" / "watchlist")
    store.install(data)
    with _audit(world, tmp_path) as audit:
        with pytest.raises(WatchlistExpired):
            load_installed(store, DeviceTrust(world.devices["cam-01"], world.authority.public_key(), MODEL), END, audit)
        load_installed(store, DeviceTrust(world.devices["cam-01"], world.authority.public_key(), MODEL), START, audit)
    text = (tmp_path / "state" / "audit.jsonl").read_text()
    assert _kinds(tmp_path / "state" / "audit.jsonl")[:2] == ["watchlist_refused", "watchlist_loaded"]
    assert "WatchlistExpired" in text


def test_load_audit_record_names_the_threshold_evidence(world, tmp_path):
    cited = SignedDeployment.sign(make_record(calibration=citation(report_sha256="9f" * 32)), world.authority)
    for deployment, state in ((cited, "cited"), (world.deployment, "provisional")):
        data, _ = world.pack(deployment=deployment)
        store = WatchlistStore(tmp_path / state / "watchlist")
        store.install(data)
        with AuditLog.open(tmp_path / state / "audit.jsonl", None, "device:cam-01") as audit:
            load_installed(store, DeviceTrust(world.devices["cam-01"], world.authority.public_key(), MODEL), DURING, audit)
    loaded = {state: json.loads((tmp_path / state / "audit.jsonl").read_text().splitlines()[0])["details"] for state in ("cited", "provisional")}
    assert loaded["cited"]["threshold_basis"] == "calibration_report" and loaded["cited"]["calibration_sha256"] == "9f" * 32
    assert loaded["cited"]["calibrated_default"] == 0.58 and loaded["cited"]["calibration_budget"] == "1/6000"
    assert loaded["provisional"]["threshold_basis"] == "provisional_default" and "calibration_sha256" not in loaded["provisional"]


def test_install_replaces_atomically(world, tmp_path):
    a, _ = world.pack(seed=1)
    b, _ = world.pack(seed=2)
    store = WatchlistStore(tmp_path / "w")
    store.install(a)
    store.install(b)
    assert store.read() == b
    assert [p.name for p in store.directory.iterdir()] == ["watchlist.eawl"]


def test_import_file_leaves_no_pushed_copy(world, tmp_path):
    data, _ = world.pack()
    pushed = tmp_path / "push" / "current.ewl"
    pushed.parent.mkdir()
    pushed.write_bytes(data)
    store = WatchlistStore(tmp_path / "state" / "watchlist")
    with _audit(world, tmp_path) as audit:
        outcome = accept_pushed(store, pushed, DeviceTrust(world.devices["cam-01"], world.authority.public_key(), MODEL), DURING, audit)
    assert outcome.loaded is not None and outcome.refusal is None
    assert store.read() == data and not pushed.exists()

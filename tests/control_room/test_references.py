"""Reference images for the reviewer: written by the central build sealed to the control room,
never in the device's package, imported still sealed, opened only with the control room's key."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from control_room_helpers import AuditRecorder, make_deployment
from edge_agent.control_room.references import ReferenceBook
from edge_agent.control_room.store import AlertStore
from edge_agent.demo.live import _subjects_csv
from edge_agent.errors import SecurityError
from edge_agent.watchlist.build import build_watchlist, read_subjects_csv


def test_the_build_seals_kept_reference_images_to_the_control_room(core, fixtures_dir, tmp_path):
    faces = fixtures_dir / "faces"
    authority = Ed25519PrivateKey.generate()
    room = X25519PrivateKey.generate()
    now = datetime.now(timezone.utc)
    deployment = make_deployment(authority, "dep-refs", devices=("cam-01",), start=now - timedelta(hours=1), end=now + timedelta(hours=8))
    subjects = read_subjects_csv(_subjects_csv(tmp_path / "subjects.csv", [("WL-1", "suspect", "obama_1.jpg"), ("WL-2", "suspect", "biden_1.jpg")]))
    result = build_watchlist(deployment, subjects, faces, {"cam-01": X25519PrivateKey.generate().public_key()}, authority, core, now,
                             control_room=room.public_key())
    doc = json.loads(result.references)
    assert doc["deployment_id"] == "dep-refs" and sorted(i["subject_ref"] for i in doc["images"]) == ["WL-1", "WL-2"]
    original = (faces / "obama_1.jpg").read_bytes()
    assert base64.b64encode(original)[:80] not in result.references  # sealed, not merely encoded
    assert original[100:164] not in result.package  # and not in what goes to the device
    references = tmp_path / "refs.json"
    references.write_bytes(result.references)
    with AlertStore(tmp_path / "alerts.db") as store:
        book = ReferenceBook(store.db)
        audit = AuditRecorder()
        with pytest.raises(SecurityError):  # sealed to another control room: nothing is imported
            book.import_file(references, X25519PrivateKey.generate(), audit)
        assert book.count("dep-refs", "WL-1") == 0
        assert book.import_file(references, room, audit) == 2
        assert book.image("dep-refs", "WL-1", 0, room)[0] == original
        with pytest.raises(SecurityError):
            book.image("dep-refs", "WL-1", 0, X25519PrivateKey.generate())
        assert audit.records == [("references_imported", {"deployment_id": "dep-refs", "image_count": 2, "subjects": 2})]
    # Without a control-room key the build writes no references.
    assert build_watchlist(deployment, subjects, faces, {"cam-01": X25519PrivateKey.generate().public_key()}, authority, core, now).references is None

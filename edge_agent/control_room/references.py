"""Watchlist reference images for the reviewer, sealed to the control room (never sent to a device).

The central watchlist build writes them, each image sealed to the control room's X25519 key
(edge_agent.crypto.sealing, context ``reference-image-v1``, associated data binding deployment,
subject and index), into one file beside the package. The control room imports that file into
its store, still sealed: a reference image is decrypted only in memory, for an audited review.

File format ``edge-agent-reference-images`` version 1 (JSON): ``format``, ``version``,
``deployment_id``, ``images``: a list of ``{"subject_ref", "idx", "image_date", "sealed"}``
(``sealed``: base64 of the sealed image bytes, JPEG or PNG as supplied to the build).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from edge_agent.control_room.auditing import REFERENCES_IMPORTED, AuditSink
from edge_agent.control_room.db import Database
from edge_agent.crypto.sealing import open_sealed, seal
from edge_agent.errors import ConfigError, SecurityError
from edge_agent.identifiers import check_deployment_id, check_subject_ref
from edge_agent.safe_load import json_loads

REFERENCES_FORMAT = "edge-agent-reference-images"
REFERENCES_VERSION = 1
REFERENCE_CONTEXT = b"reference-image-v1"
MAX_IMAGE_BYTES = 8 * 1024 * 1024


def reference_aad(deployment_id: str, subject_ref: str, idx: int) -> bytes:
    return f"{deployment_id}\x00{subject_ref}\x00{idx}".encode("ascii")


@dataclass(frozen=True)
class SealedReference:
    subject_ref: str
    idx: int
    image_date: str
    sealed: bytes


def seal_references(deployment_id: str, images: Sequence[tuple[str, int, date, bytes]], control_room: X25519PublicKey) -> bytes:
    """The reference-images file for ``(subject_ref, idx, image_date, image bytes)`` items."""
    items = []
    for subject_ref, idx, image_date, data in images:
        if len(data) > MAX_IMAGE_BYTES:
            raise ConfigError(f"reference image {idx} of {subject_ref} is over {MAX_IMAGE_BYTES // 2**20} MiB", "resize it before the build")
        sealed = seal(data, control_room, REFERENCE_CONTEXT, reference_aad(deployment_id, subject_ref, idx))
        items.append({"subject_ref": subject_ref, "idx": idx, "image_date": image_date.isoformat(), "sealed": base64.b64encode(sealed).decode()})
    doc = {"format": REFERENCES_FORMAT, "version": REFERENCES_VERSION, "deployment_id": deployment_id, "images": items}
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode() + b"\n"


def parse_references(data: bytes) -> tuple[str, list[SealedReference]]:
    try:
        doc = json_loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise ConfigError("reference-images file is not JSON", "use the file written by edge-agent watchlist build --references-out") from None
    if not isinstance(doc, dict) or doc.get("format") != REFERENCES_FORMAT:
        raise ConfigError("not a reference-images file", "use the file written by edge-agent watchlist build --references-out")
    if doc.get("version") != REFERENCES_VERSION:
        raise ConfigError(f"reference-images version {doc.get('version')!r} is not {REFERENCES_VERSION}", "upgrade edge-agent")
    deployment_id = check_deployment_id(doc.get("deployment_id"))
    out = []
    try:
        for item in doc["images"]:
            out.append(SealedReference(check_subject_ref(item["subject_ref"]), int(item["idx"]), date.fromisoformat(item["image_date"]).isoformat(),
                                       base64.b64decode(item["sealed"], validate=True)))
    except (KeyError, TypeError, ValueError, binascii.Error):
        raise ConfigError("reference-images file has a malformed entry", "rebuild it with edge-agent watchlist build --references-out") from None
    return deployment_id, out


class ReferenceBook:
    def __init__(self, db: Database) -> None:
        self._db = db

    def import_file(self, path: Path, control_room_key: X25519PrivateKey, audit: AuditSink) -> int:
        """Import a reference-images file; every image must open with this control room's key first."""
        deployment_id, items = parse_references(Path(path).read_bytes())
        for item in items:  # refuse a file sealed to someone else before storing any of it
            open_sealed(item.sealed, control_room_key, REFERENCE_CONTEXT, reference_aad(deployment_id, item.subject_ref, item.idx))
        with self._db.write() as tx:
            tx.run("DELETE FROM reference_images WHERE deployment_id=?", (deployment_id,))
            tx.many("INSERT INTO reference_images (deployment_id, subject_ref, idx, image_date, sealed) VALUES (?,?,?,?,?)",
                    [(deployment_id, i.subject_ref, i.idx, i.image_date, i.sealed) for i in items])
        audit.append(REFERENCES_IMPORTED, {"deployment_id": deployment_id, "image_count": len(items),
                                           "subjects": len({i.subject_ref for i in items})})
        return len(items)

    def count(self, deployment_id: str, subject_ref: str) -> int:
        with self._db.read() as tx:
            return int(tx.one("SELECT COUNT(*) FROM reference_images WHERE deployment_id=? AND subject_ref=?", (deployment_id, subject_ref))[0])

    def image(self, deployment_id: str, subject_ref: str, idx: int, control_room_key: X25519PrivateKey) -> tuple[bytes, str]:
        """(image bytes, image date), decrypted in memory."""
        with self._db.read() as tx:
            row = tx.one("SELECT sealed, image_date FROM reference_images WHERE deployment_id=? AND subject_ref=? AND idx=?",
                         (deployment_id, subject_ref, idx))
        if row is None:
            raise SecurityError(f"no reference image {idx} for {subject_ref} in deployment {deployment_id}", "import the build's reference-images file")
        return open_sealed(bytes(row[0]), control_room_key, REFERENCE_CONTEXT, reference_aad(deployment_id, subject_ref, idx)), row[1]

"""The central build record: why each subject is on a watchlist, kept by the authority, never on a device.

Issue 10.6 / policing.md 5-8: a device needs only templates, an opaque reference and the category
(format v2 packages carry nothing else). The rest of each listing (image source, legal basis,
image and review dates, under-18 and its justification) is still needed for oversight, so the build
writes it here, bound to the package it describes by the package's id and SHA-256 and signed by
the authority. Format: docs/formats/watchlist.md ("Central build record").
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edge_agent.crypto.canonical import is_jcs, jcs
from edge_agent.crypto.signing import WATCHLIST_BUILD_RECORD_V1, SignatureInvalid, sign, verify
from edge_agent.errors import ConfigError, SecurityError
from edge_agent.watchlist.entry import WatchlistEntry
from edge_agent.watchlist.format import decode_container

RECORD_FORMAT = "edge-agent-watchlist-build-record"
SIGNED_FORMAT = "edge-agent-signed-watchlist-build-record"
RECORD_VERSION = 1
RECORD_FIELDS = ("format", "version", "package_id", "package_sha256", "deployment_id", "created", "expires", "model", "recipients", "subjects", "warnings")
WARNING_FIELDS = ("code", "subject_ref", "message")


class BuildRecordInvalid(SecurityError):
    """A build record is malformed, not signed by the authority, or not the record of this package."""


@dataclass(frozen=True)
class BuildRecord:
    package_id: str
    package_sha256: str
    deployment_id: str
    created: str  # the package header's timestamps, as written there
    expires: str
    model: dict[str, str]
    recipients: tuple[str, ...]
    subjects: tuple[WatchlistEntry, ...]  # package order
    warnings: tuple[dict[str, str], ...]  # the build's warnings: code, subject_ref, message

    def to_json(self) -> dict[str, Any]:
        return {
            "format": RECORD_FORMAT,
            "version": RECORD_VERSION,
            "package_id": self.package_id,
            "package_sha256": self.package_sha256,
            "deployment_id": self.deployment_id,
            "created": self.created,
            "expires": self.expires,
            "model": dict(self.model),
            "recipients": list(self.recipients),
            "subjects": [s.to_json() for s in self.subjects],
            "warnings": [dict(w) for w in self.warnings],
        }

    @classmethod
    def from_json(cls, doc: Any) -> BuildRecord:
        if not isinstance(doc, dict) or set(doc) != set(RECORD_FIELDS):
            raise BuildRecordInvalid("build record has missing or unexpected fields", f"expected {', '.join(RECORD_FIELDS)}")
        if doc["format"] != RECORD_FORMAT or doc["version"] != RECORD_VERSION:
            raise BuildRecordInvalid(f"not a version {RECORD_VERSION} build record", "see docs/formats/watchlist.md")
        try:
            warnings = tuple(_warning(w) for w in doc["warnings"])
            subjects = tuple(WatchlistEntry.from_json(s) for s in doc["subjects"])
            model = {str(k): str(v) for k, v in dict(doc["model"]).items()}
            recipients = tuple(str(r) for r in doc["recipients"])
            texts = {k: doc[k] for k in ("package_id", "package_sha256", "deployment_id", "created", "expires")}
            if not all(isinstance(t, str) for t in texts.values()):
                raise TypeError("identifiers and times must be strings")
        except (ConfigError, TypeError, ValueError) as exc:
            raise BuildRecordInvalid(f"build record is malformed ({exc})", "use the record exactly as the build wrote it") from None
        return cls(**texts, model=model, recipients=recipients, subjects=subjects, warnings=warnings)


def _warning(doc: Any) -> dict[str, str]:
    if not isinstance(doc, dict) or set(doc) != set(WARNING_FIELDS) or not all(isinstance(v, str) for v in doc.values()):
        raise ValueError("a warning must hold code, subject_ref and message strings")
    return dict(doc)


def make_build_record(package: bytes, subjects: Sequence[WatchlistEntry], warnings: Sequence[dict[str, str]]) -> BuildRecord:
    """The record of ``package`` (its header supplies id, deployment, times, model, recipients)."""
    container = decode_container(package)
    header = container.header
    return BuildRecord(
        package_id=str(header["package_id"]),
        package_sha256=hashlib.sha256(package).hexdigest(),
        deployment_id=str(header["deployment_id"]),
        created=str(header["created"]),
        expires=str(header["expires"]),
        model={str(k): str(v) for k, v in dict(header["model"]).items()},
        recipients=tuple(sorted(container.seals)),
        subjects=tuple(subjects),
        warnings=tuple(dict(w) for w in warnings),
    )


def sign_build_record(record: BuildRecord, authority_key: Ed25519PrivateKey) -> bytes:
    """The signed file: JCS of {format, version, record, signature}, signature = Ed25519 over
    ``WATCHLIST_BUILD_RECORD_V1 + jcs(record)``."""
    body = record.to_json()
    signature = sign(authority_key, WATCHLIST_BUILD_RECORD_V1, jcs(body))
    return jcs({"format": SIGNED_FORMAT, "version": RECORD_VERSION, "record": body, "signature": base64.b64encode(signature).decode("ascii")}) + b"\n"


def verify_build_record(data: bytes, authority_pub: Ed25519PublicKey, package: bytes | None = None) -> BuildRecord:
    """Parse and verify a signed build record; with ``package``, also that it is that package's record."""
    try:
        doc = json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BuildRecordInvalid(f"build record is not JSON ({exc})", "use the record exactly as the build wrote it") from None
    if not isinstance(doc, dict) or set(doc) != {"format", "version", "record", "signature"} or doc["format"] != SIGNED_FORMAT:
        raise BuildRecordInvalid("not a signed watchlist build record", "see docs/formats/watchlist.md")
    if doc["version"] != RECORD_VERSION:
        raise BuildRecordInvalid(f"unknown build record version {doc['version']!r}", f"this edge-agent reads version {RECORD_VERSION}")
    if not is_jcs(data.removesuffix(b"\n"), doc):
        raise BuildRecordInvalid("build record is not in canonical form (JCS)", "use the record exactly as the build wrote it")
    try:
        signature = base64.b64decode(str(doc["signature"]), validate=True)
        verify(authority_pub, WATCHLIST_BUILD_RECORD_V1, jcs(doc["record"]), signature)
    except (SignatureInvalid, binascii.Error):
        raise BuildRecordInvalid(
            "build record signature is not valid for the authority key (altered, or signed by another key)",
            "use the record exactly as issued, and check the authority public key",
        ) from None
    record = BuildRecord.from_json(doc["record"])
    if package is not None and not hmac.compare_digest(record.package_sha256, hashlib.sha256(package).hexdigest()):
        raise BuildRecordInvalid(
            f"build record describes package {record.package_id} (sha256 {record.package_sha256[:12]}...), not this file",
            "pair each package with the record its build wrote",
        )
    return record


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError("duplicate key")
    return dict(pairs)

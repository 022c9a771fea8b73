"""Deployment records: the signed authority to match (policing.md "Deployment").

A record is canonical JSON signed by the authority's Ed25519 key. Approvals (needed when the
threshold is below the calibrated default) are extra Ed25519 signatures over the same record
bytes by approver keys. Format: docs/formats/deployment.md.

Version 3 (written now) is RFC 8785 (``jcs``) with the one timestamp form, signed under its own
domains and carried in signed-file version 2, so a verifier in any language reproduces the bytes.
Version 2 added what the threshold rests on (``calibration``: a cited report or the provisional
default) and the false-alert budget. Versions 1 and 2 (``canonical_json``), signed before, still
parse and re-encode to their exact signed bytes, so they keep verifying.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edge_agent.config_reader import read_file_bytes
from edge_agent.crypto.canonical import CanonicalJsonError, canonical_json, format_utc, is_jcs, jcs, loads_strict, parse_utc
from edge_agent.crypto.keyfiles import ed25519_public_from_b64, public_b64, public_raw
from edge_agent.crypto.signing import DEPLOYMENT_V1, DEPLOYMENT_V3, THRESHOLD_APPROVAL_V1, THRESHOLD_APPROVAL_V3, SignatureInvalid, sign, verify
from edge_agent.deployment.calibration import (
    CALIBRATED_DEFAULT_THRESHOLD,
    CalibrationCitation,
    ProvisionalDefault,
    ThresholdEvidence,
    evidence_from_json,
)
from edge_agent.durable import atomic_write
from edge_agent.errors import ConfigError, SecurityError
from edge_agent.identifiers import check_deployment_id, check_device_id
from edge_agent.timestamps import TimestampError, format_timestamp, parse_timestamp, truncate_to_ms

DEPLOYMENT_FORMAT = "edge-agent-deployment"
DEPLOYMENT_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)
#: Record versions encoded with RFC 8785 and the one timestamp form (edge_agent.timestamps).
JCS_VERSIONS = (3,)
SIGNED_FORMAT = "edge-agent-signed-deployment"
#: The signed-file version that carries each record version: 1 for records 1-2, 2 for record 3.
SIGNED_VERSION_OF_RECORD = {1: 1, 2: 1, 3: 2}
READABLE_SIGNED_VERSIONS = (1, 2)
MODES = ("LFR", "RFR", "OIFR")
PLATFORMS = ("body_worn", "fixed", "handheld", "central")
# Domain separation: an authority signature on a deployment can never be replayed as anything else,
# and a version 3 signature (over RFC 8785 bytes) never as one over the older encoding.
AUTHORITY_DOMAINS = {1: DEPLOYMENT_V1, 2: DEPLOYMENT_V1, 3: DEPLOYMENT_V3}
APPROVAL_DOMAINS = {1: THRESHOLD_APPROVAL_V1, 2: THRESHOLD_APPROVAL_V1, 3: THRESHOLD_APPROVAL_V3}
RECORD_FIELDS = (
    "deployment_id",
    "authorising_officer",
    "purpose",
    "legal_basis",
    "location",
    "location_rationale",
    "start",
    "end",
    "dpia_ref",
    "equality_impact_ref",
    "mode",
    "platform",
    "silent",
    "alert_threshold",
    "watchlist_cap",
    "device_ids",
)
#: Required from version 2 on, refused in version 1.
V2_FIELDS = ("false_alert_budget", "calibration")
SIGNED_FIELDS = ("format", "version", "record", "authority_signature", "approvals")


def default_silent(mode: str, platform: str) -> bool:
    """Body-worn LFR is silent unless the deployment says otherwise (policing.md 3)."""
    return mode == "LFR" and platform == "body_worn"


@dataclass(frozen=True)
class DeploymentRecord:
    deployment_id: str
    authorising_officer: str
    purpose: str
    legal_basis: str
    location: str
    location_rationale: str
    start: datetime
    end: datetime
    dpia_ref: str
    equality_impact_ref: str
    mode: str
    platform: str
    silent: bool
    alert_threshold: float
    watchlist_cap: int
    device_ids: tuple[str, ...]
    false_alert_budget: float | None = None  # authorised false alerts per face; None: not stated
    calibration: ThresholdEvidence | None = field(default_factory=lambda: ProvisionalDefault(CALIBRATED_DEFAULT_THRESHOLD))
    version: int = DEPLOYMENT_VERSION

    def __post_init__(self) -> None:
        check_deployment_id(self.deployment_id)
        for name in ("authorising_officer", "purpose", "legal_basis", "location", "location_rationale", "dpia_ref", "equality_impact_ref"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"deployment field {name} is empty", "every deployment must record it (policing.md 1)")
        for name in ("start", "end"):
            value = getattr(self, name)
            if not isinstance(value, datetime) or value.utcoffset() is None:
                raise ConfigError(f"deployment {name} must be a timezone-aware UTC datetime", "write it like 2026-11-22T08:00:00Z")
        if self.version in JCS_VERSIONS:  # what the one timestamp form carries, so the record equals its parse
            object.__setattr__(self, "start", truncate_to_ms(self.start))
            object.__setattr__(self, "end", truncate_to_ms(self.end))
        if self.end <= self.start:
            raise ConfigError(f"deployment end {self.end.isoformat()} is not after its start {self.start.isoformat()}", "fix the times")
        if self.mode not in MODES:
            raise ConfigError(f"deployment mode {self.mode!r} is not one of {', '.join(MODES)}", "state the mode explicitly")
        if self.platform not in PLATFORMS:
            raise ConfigError(f"deployment platform {self.platform!r} is not one of {', '.join(PLATFORMS)}", "state the camera platform")
        if not isinstance(self.silent, bool):
            raise ConfigError("deployment field silent must be true or false", "state it explicitly")
        t = self.alert_threshold
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or not 0.0 < t < 1.0:
            raise ConfigError(f"alert_threshold {t!r} must be a number between 0 and 1", "use the calibrated default or higher")
        if isinstance(self.watchlist_cap, bool) or not isinstance(self.watchlist_cap, int) or self.watchlist_cap < 1:
            raise ConfigError(f"watchlist_cap {self.watchlist_cap!r} must be a positive integer", "set the size cap per deployment (policing.md 7)")
        if not self.device_ids:
            raise ConfigError("deployment names no device", "list the device ids that may use it")
        for device_id in self.device_ids:
            check_device_id(device_id)
        if len(set(self.device_ids)) != len(self.device_ids):
            raise ConfigError("deployment lists a device id twice", "list each device once")
        if self.version == 1:
            if self.calibration is not None or self.false_alert_budget is not None:
                raise ConfigError("a version 1 deployment record cannot carry a calibration or budget", f"write a version {DEPLOYMENT_VERSION} record")
            return
        if self.version not in (2, 3):
            raise ConfigError(f"deployment record version {self.version!r} is not one of {READABLE_VERSIONS}", f"write a version {DEPLOYMENT_VERSION} record")
        if not isinstance(self.calibration, ProvisionalDefault | CalibrationCitation):
            raise ConfigError("deployment record states no threshold basis (calibration)", "cite a report with --calibration, or state the provisional default")
        b = self.false_alert_budget
        if b is not None and (isinstance(b, bool) or not isinstance(b, (int, float)) or not math.isfinite(b) or not 0.0 < b < 1.0):
            raise ConfigError(f"false_alert_budget {b!r} must be a rate between 0 and 1 (or null)", "e.g. \"1/6000\" in the spec")

    def to_json(self) -> dict[str, Any]:
        timestamp = format_timestamp if self.version in JCS_VERSIONS else format_utc
        doc = {
            "format": DEPLOYMENT_FORMAT,
            "version": self.version,
            "deployment_id": self.deployment_id,
            "authorising_officer": self.authorising_officer,
            "purpose": self.purpose,
            "legal_basis": self.legal_basis,
            "location": self.location,
            "location_rationale": self.location_rationale,
            "start": timestamp(self.start),
            "end": timestamp(self.end),
            "dpia_ref": self.dpia_ref,
            "equality_impact_ref": self.equality_impact_ref,
            "mode": self.mode,
            "platform": self.platform,
            "silent": self.silent,
            "alert_threshold": float(self.alert_threshold),
            "watchlist_cap": self.watchlist_cap,
            "device_ids": list(self.device_ids),
        }
        if self.version >= 2:
            if self.calibration is None:  # __post_init__ refuses this; kept for the type checker
                raise ConfigError("deployment record states no threshold basis (calibration)", "this is a bug in the record's author")
            doc["false_alert_budget"] = None if self.false_alert_budget is None else float(self.false_alert_budget)
            doc["calibration"] = self.calibration.to_json()
        return doc

    @classmethod
    def from_json(cls, doc: Any, *, fill_defaults: bool = False) -> "DeploymentRecord":
        """Parse a record object. ``fill_defaults`` (authoring only) derives ``silent`` from mode and
        platform, leaves the budget unstated, states the provisional default as threshold basis and
        accepts any UTC ISO 8601 time (a version 3 record itself holds only the one form)."""
        if not isinstance(doc, dict):
            raise ConfigError("deployment record is not a JSON object", "see docs/formats/deployment.md")
        if doc.get("format", DEPLOYMENT_FORMAT) != DEPLOYMENT_FORMAT:
            raise ConfigError(f"not a deployment record (format {doc.get('format')!r})", "see docs/formats/deployment.md")
        version = doc.get("version", DEPLOYMENT_VERSION)
        if isinstance(version, bool) or version not in READABLE_VERSIONS:
            raise SecurityError(
                f"unknown deployment record version {doc.get('version')!r}",
                f"this edge-agent reads versions {', '.join(map(str, READABLE_VERSIONS))}; upgrade it",
            )
        doc = dict(doc)
        if fill_defaults and "silent" not in doc and "mode" in doc and "platform" in doc:
            doc["silent"] = default_silent(doc["mode"], doc["platform"])
        if fill_defaults and version >= 2:
            doc.setdefault("false_alert_budget", None)
            doc.setdefault("calibration", ProvisionalDefault(CALIBRATED_DEFAULT_THRESHOLD).to_json())
        fields = RECORD_FIELDS + (V2_FIELDS if version >= 2 else ())
        missing = [f for f in fields if f not in doc]
        if missing:
            raise ConfigError(f"deployment record lacks {', '.join(missing)}", "every field in docs/formats/deployment.md is required")
        unknown = sorted(set(doc) - set(fields) - {"format", "version"})
        if unknown:
            raise ConfigError(f"deployment record has unknown fields {', '.join(unknown)}", "remove them (typo?)")
        parse_time = parse_timestamp if version in JCS_VERSIONS and not fill_defaults else parse_utc
        try:
            start = parse_time(doc["start"], "start")
            end = parse_time(doc["end"], "end")
        except (CanonicalJsonError, TimestampError) as exc:
            raise ConfigError(exc.message, exc.hint) from None
        devices = doc["device_ids"]
        if not isinstance(devices, list) or not all(isinstance(d, str) for d in devices):
            raise ConfigError("device_ids must be a list of strings", "list the device ids")
        values = {f: doc[f] for f in RECORD_FIELDS}
        values.update(start=start, end=end, device_ids=tuple(devices), version=version, calibration=None)
        if version >= 2:
            values.update(false_alert_budget=doc["false_alert_budget"], calibration=evidence_from_json(doc["calibration"]))
        return cls(**values)

    def canonical_bytes(self) -> bytes:
        """The signed bytes: RFC 8785 for version 3, the older canonical_json for versions 1-2."""
        return (jcs if self.version in JCS_VERSIONS else canonical_json)(self.to_json())

    def is_active(self, now: datetime) -> bool:
        return self.start <= now < self.end


@dataclass(frozen=True)
class Approval:
    public_key: str  # base64 raw Ed25519
    signature: str  # base64


@dataclass(frozen=True)
class SignedDeployment:
    """The record's exact signed bytes, the authority signature and any approvals.

    The signing domains follow the record's version (read from the signed bytes themselves, so
    changing it breaks the signature); the signed-file version follows from it too."""

    record_bytes: bytes
    authority_signature: bytes
    approvals: tuple[Approval, ...] = field(default=())

    @classmethod
    def sign(cls, record: DeploymentRecord, authority_key: Ed25519PrivateKey) -> "SignedDeployment":
        data = record.canonical_bytes()
        return cls(data, sign(authority_key, AUTHORITY_DOMAINS[record.version], data))

    def approve(self, approver_key: Ed25519PrivateKey) -> "SignedDeployment":
        """Return a copy carrying this approver's signature over the record bytes."""
        signature = sign(approver_key, APPROVAL_DOMAINS[self.record_version], self.record_bytes)
        approval = Approval(public_b64(approver_key.public_key()), base64.b64encode(signature).decode())
        kept = tuple(a for a in self.approvals if a.public_key != approval.public_key)
        return SignedDeployment(self.record_bytes, self.authority_signature, kept + (approval,))

    def _record_doc(self) -> Any:
        def refuse(message: str, hint: str) -> SecurityError:
            return SecurityError(f"deployment record bytes are not JSON ({message})", "the record is corrupt; ask the authority to reissue it")

        return loads_strict(self.record_bytes, refuse)

    @property
    def record_version(self) -> int:
        """The version the (unverified) record bytes state; it chooses the signing domains."""
        doc = self._record_doc()
        version = doc.get("version") if isinstance(doc, dict) else None
        if isinstance(version, bool) or version not in READABLE_VERSIONS:
            raise SecurityError(f"unknown deployment record version {version!r}",
                                f"this edge-agent reads versions {', '.join(map(str, READABLE_VERSIONS))}; upgrade it")
        return int(version)

    def unverified_record(self) -> DeploymentRecord:
        """Parse without checking signatures: only for display and retention decisions, never to authorise."""
        return DeploymentRecord.from_json(self._record_doc())

    def verify(self, authority_pub: Ed25519PublicKey) -> DeploymentRecord:
        try:
            verify(authority_pub, AUTHORITY_DOMAINS[self.record_version], self.record_bytes, self.authority_signature)
        except SignatureInvalid:
            raise SecurityError(
                "deployment record signature is not valid for the pinned authority key (altered, or signed by another key)",
                "use the record exactly as issued by the authority, and check the pinned authority key",
            ) from None
        try:
            record = self.unverified_record()
        except ConfigError as exc:  # signed, but not a valid record: refuse it as a security failure
            raise SecurityError(f"signed deployment record is invalid: {exc.message}", "the authority must reissue it") from None
        if record.canonical_bytes() != self.record_bytes:
            encoding = "RFC 8785" if record.version in JCS_VERSIONS else "canonical JSON"
            raise SecurityError(f"deployment record is not in canonical form ({encoding})", "the authority must re-sign it with edge-agent")
        return record

    def threshold_approved(self, approver_pubs: Sequence[Ed25519PublicKey], authority_pub: Ed25519PublicKey | None = None) -> bool:
        """True if an approval verifies under a pinned approver key that is not the authority's own key."""
        pinned = {public_raw(k) for k in approver_pubs}
        if authority_pub is not None:
            pinned.discard(public_raw(authority_pub))  # the second signature must come from a second key
        domain = APPROVAL_DOMAINS[self.record_version]
        for approval in self.approvals:
            try:
                key = ed25519_public_from_b64(approval.public_key)
                if public_raw(key) not in pinned:
                    continue
                verify(key, domain, self.record_bytes, base64.b64decode(approval.signature, validate=True))
                return True
            except (ValueError, SecurityError):
                continue
        return False

    def to_json(self) -> dict[str, Any]:
        return {
            "format": SIGNED_FORMAT,
            "version": SIGNED_VERSION_OF_RECORD[self.record_version],
            "record": base64.b64encode(self.record_bytes).decode("ascii"),
            "authority_signature": base64.b64encode(self.authority_signature).decode("ascii"),
            "approvals": [{"public_key": a.public_key, "signature": a.signature} for a in self.approvals],
        }

    @classmethod
    def from_json(cls, doc: Any) -> "SignedDeployment":
        """Version 1 carries records 1-2; version 2 carries record 3 and has exactly the documented fields."""
        if not isinstance(doc, dict) or doc.get("format") != SIGNED_FORMAT:
            raise SecurityError("not a signed deployment file", "see docs/formats/deployment.md")
        version = doc.get("version")
        if isinstance(version, bool) or version not in READABLE_SIGNED_VERSIONS:
            raise SecurityError(f"unknown signed deployment version {version!r}",
                                f"this edge-agent reads versions {', '.join(map(str, READABLE_SIGNED_VERSIONS))}; upgrade it")
        malformed = SecurityError("signed deployment file is malformed", "use the file exactly as issued by the authority")
        if version >= 2 and (set(doc) != set(SIGNED_FIELDS) or not isinstance(doc["approvals"], list)
                             or not all(isinstance(a, dict) and set(a) == {"public_key", "signature"} for a in doc["approvals"])):
            raise malformed
        try:
            approvals = tuple(Approval(str(a["public_key"]), str(a["signature"])) for a in doc.get("approvals", []))
            signed = cls(
                base64.b64decode(doc["record"], validate=True),
                base64.b64decode(doc["authority_signature"], validate=True),
                approvals,
            )
        except (KeyError, TypeError, ValueError):
            raise malformed from None
        if SIGNED_VERSION_OF_RECORD[signed.record_version] != version:
            raise SecurityError(f"signed deployment version {version} cannot carry a version {signed.record_version} record",
                                "use the file exactly as issued by the authority")
        return signed

    def to_bytes(self) -> bytes:
        """The signed file's bytes (without the final newline a file adds): RFC 8785 from version 2."""
        doc = self.to_json()
        return jcs(doc) if doc["version"] >= 2 else canonical_json(doc)

    @classmethod
    def from_bytes(cls, data: bytes) -> "SignedDeployment":
        def refuse(message: str, hint: str) -> SecurityError:
            return SecurityError(f"signed deployment is not JSON ({message})", "use the file exactly as issued by the authority")

        doc = loads_strict(data, refuse)
        signed = cls.from_json(doc)
        if doc["version"] >= 2 and not is_jcs(bytes(data).removesuffix(b"\n"), doc):
            raise SecurityError("signed deployment file is not in canonical form (RFC 8785)", "use the file exactly as issued by the authority")
        return signed

    @classmethod
    def load(cls, path: Path) -> "SignedDeployment":
        return cls.from_bytes(read_file_bytes(path, "deployment file", "check the path", "name the signed deployment file itself"))

    def save(self, path: Path) -> None:
        atomic_write(Path(path), self.to_bytes() + b"\n", 0o644)

    def is_active(self, now: datetime) -> bool:
        """Time window only, from the (unverified) record; authorisation goes through policy.authorise."""
        return self.unverified_record().is_active(now)

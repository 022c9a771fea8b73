"""Deployment records: the signed authority to match (policing.md "Deployment").

A record is canonical JSON (edge_agent.crypto.canonical) signed by the authority's Ed25519 key.
Approvals (needed when the threshold is below the calibrated default) are extra Ed25519
signatures over the same record bytes by approver keys. Format: docs/formats/deployment.md.

Version 2 adds what the threshold rests on (``calibration``: a cited calibration report or the
provisional default) and the authorised false-alert budget. Version 1 records, signed before,
still parse and re-encode to their exact signed bytes, so they keep verifying.
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

from edge_agent.crypto.canonical import CanonicalJsonError, canonical_json, format_utc, parse_utc
from edge_agent.crypto.keyfiles import ed25519_public_from_b64, public_b64, public_raw
from edge_agent.crypto.signing import DEPLOYMENT_V1, THRESHOLD_APPROVAL_V1, SignatureInvalid, sign, verify
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
from edge_agent.safe_load import json_loads

DEPLOYMENT_FORMAT = "edge-agent-deployment"
DEPLOYMENT_VERSION = 2
READABLE_VERSIONS = (1, 2)
#: The signed-file wrapper is unchanged by record v2, so it stays at version 1.
SIGNED_FORMAT = "edge-agent-signed-deployment"
SIGNED_VERSION = 1
MODES = ("LFR", "RFR", "OIFR")
PLATFORMS = ("body_worn", "fixed", "handheld", "central")
# Domain separation: an authority signature on a deployment can never be replayed as anything else.
AUTHORITY_DOMAIN = DEPLOYMENT_V1
APPROVAL_DOMAIN = THRESHOLD_APPROVAL_V1
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
#: Required in version 2 records, refused in version 1.
V2_FIELDS = ("false_alert_budget", "calibration")


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
                raise ConfigError("a version 1 deployment record cannot carry a calibration or budget", "write a version 2 record")
            return
        if self.version != 2:
            raise ConfigError(f"deployment record version {self.version!r} is not one of {READABLE_VERSIONS}", "write a version 2 record")
        if not isinstance(self.calibration, ProvisionalDefault | CalibrationCitation):
            raise ConfigError("deployment record states no threshold basis (calibration)", "cite a report with --calibration, or state the provisional default")
        b = self.false_alert_budget
        if b is not None and (isinstance(b, bool) or not isinstance(b, (int, float)) or not math.isfinite(b) or not 0.0 < b < 1.0):
            raise ConfigError(f"false_alert_budget {b!r} must be a rate between 0 and 1 (or null)", "e.g. \"1/6000\" in the spec")

    def to_json(self) -> dict[str, Any]:
        doc = {
            "format": DEPLOYMENT_FORMAT,
            "version": self.version,
            "deployment_id": self.deployment_id,
            "authorising_officer": self.authorising_officer,
            "purpose": self.purpose,
            "legal_basis": self.legal_basis,
            "location": self.location,
            "location_rationale": self.location_rationale,
            "start": format_utc(self.start),
            "end": format_utc(self.end),
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
        platform, leaves the budget unstated and states the provisional default as threshold basis."""
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
        try:
            start = parse_utc(doc["start"], "start")
            end = parse_utc(doc["end"], "end")
        except CanonicalJsonError as exc:
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
        return canonical_json(self.to_json())

    def is_active(self, now: datetime) -> bool:
        return self.start <= now < self.end


@dataclass(frozen=True)
class Approval:
    public_key: str  # base64 raw Ed25519
    signature: str  # base64


@dataclass(frozen=True)
class SignedDeployment:
    """The record's exact signed bytes, the authority signature and any approvals."""

    record_bytes: bytes
    authority_signature: bytes
    approvals: tuple[Approval, ...] = field(default=())

    @classmethod
    def sign(cls, record: DeploymentRecord, authority_key: Ed25519PrivateKey) -> "SignedDeployment":
        data = record.canonical_bytes()
        return cls(data, sign(authority_key, AUTHORITY_DOMAIN, data))

    def approve(self, approver_key: Ed25519PrivateKey) -> "SignedDeployment":
        """Return a copy carrying this approver's signature over the record bytes."""
        approval = Approval(public_b64(approver_key.public_key()), base64.b64encode(sign(approver_key, APPROVAL_DOMAIN, self.record_bytes)).decode())
        kept = tuple(a for a in self.approvals if a.public_key != approval.public_key)
        return SignedDeployment(self.record_bytes, self.authority_signature, kept + (approval,))

    def unverified_record(self) -> DeploymentRecord:
        """Parse without checking signatures: only for display and retention decisions, never to authorise."""
        try:
            doc = json_loads(self.record_bytes.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise SecurityError("deployment record bytes are not JSON", "the record is corrupt; ask the authority to reissue it") from None
        return DeploymentRecord.from_json(doc)

    def verify(self, authority_pub: Ed25519PublicKey) -> DeploymentRecord:
        try:
            verify(authority_pub, AUTHORITY_DOMAIN, self.record_bytes, self.authority_signature)
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
            raise SecurityError("deployment record is not in canonical form", "the authority must re-sign it with edge-agent")
        return record

    def threshold_approved(self, approver_pubs: Sequence[Ed25519PublicKey], authority_pub: Ed25519PublicKey | None = None) -> bool:
        """True if an approval verifies under a pinned approver key that is not the authority's own key."""
        pinned = {public_raw(k) for k in approver_pubs}
        if authority_pub is not None:
            pinned.discard(public_raw(authority_pub))  # the second signature must come from a second key
        for approval in self.approvals:
            try:
                key = ed25519_public_from_b64(approval.public_key)
                if public_raw(key) not in pinned:
                    continue
                verify(key, APPROVAL_DOMAIN, self.record_bytes, base64.b64decode(approval.signature, validate=True))
                return True
            except (ValueError, SecurityError):
                continue
        return False

    def to_json(self) -> dict[str, Any]:
        return {
            "format": SIGNED_FORMAT,
            "version": SIGNED_VERSION,
            "record": base64.b64encode(self.record_bytes).decode("ascii"),
            "authority_signature": base64.b64encode(self.authority_signature).decode("ascii"),
            "approvals": [{"public_key": a.public_key, "signature": a.signature} for a in self.approvals],
        }

    @classmethod
    def from_json(cls, doc: Any) -> "SignedDeployment":
        if not isinstance(doc, dict) or doc.get("format") != SIGNED_FORMAT:
            raise SecurityError("not a signed deployment file", "see docs/formats/deployment.md")
        if doc.get("version") != SIGNED_VERSION:
            raise SecurityError(f"unknown signed deployment version {doc.get('version')!r}", f"this edge-agent reads version {SIGNED_VERSION}")
        try:
            approvals = tuple(Approval(str(a["public_key"]), str(a["signature"])) for a in doc.get("approvals", []))
            return cls(
                base64.b64decode(doc["record"], validate=True),
                base64.b64decode(doc["authority_signature"], validate=True),
                approvals,
            )
        except (KeyError, TypeError, ValueError):
            raise SecurityError("signed deployment file is malformed", "use the file exactly as issued by the authority") from None

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_json())

    @classmethod
    def from_bytes(cls, data: bytes) -> "SignedDeployment":
        try:
            doc = json_loads(data.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise SecurityError("signed deployment is not JSON", "use the file exactly as issued by the authority") from None
        return cls.from_json(doc)

    @classmethod
    def load(cls, path: Path) -> "SignedDeployment":
        try:
            return cls.from_bytes(Path(path).read_bytes())
        except FileNotFoundError:
            raise ConfigError(f"deployment file {path} not found", "check the path") from None
        except IsADirectoryError:
            raise ConfigError(f"deployment file {path} is a directory, not a file", "name the signed deployment file itself") from None
        except PermissionError:
            raise ConfigError(f"deployment file {path} cannot be read (permission denied)", "fix its owner or mode") from None

    def save(self, path: Path) -> None:
        atomic_write(Path(path), self.to_bytes() + b"\n", 0o644)

    def is_active(self, now: datetime) -> bool:
        """Time window only, from the (unverified) record; authorisation goes through policy.authorise."""
        return self.unverified_record().is_active(now)

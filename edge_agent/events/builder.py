"""Turn a match decision into a signed, crop-sealed AlertEvent.

A ``MatchDecision`` cannot be constructed for a score below the threshold, and the builder takes
nothing else: there is no way to make an event (or a spool row, or a message) for a non-match.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from edge_agent.errors import EdgeAgentError
from edge_agent.events.crop import seal_crop
from edge_agent.events.schema import MATCH_BASES, MAX_CANDIDATES, AlertEvent, AuditHead, Candidate, format_time, parse_time, round_score
from edge_agent.events.signing import sign_event
from edge_agent.identifiers import check_device_id


class NotAMatchError(EdgeAgentError):
    """Something tried to raise an alert for a face that did not reach the threshold."""


class ScoredCandidate(Protocol):
    @property
    def subject_ref(self) -> str: ...

    @property
    def score(self) -> float: ...


@dataclass(frozen=True)
class MatchDecision:
    """The matcher's verdict that a face may be a watchlist subject (score >= threshold)."""

    subject_ref: str
    category: str
    score: float
    threshold: float
    candidates: tuple[Candidate, ...]  # best first, includes the alerted subject first
    face_box: tuple[float, float, float, float]
    basis: str = "single_frame"  # or "fused_track": the score fuses several frames of one track

    def __post_init__(self) -> None:
        if self.basis not in MATCH_BASES:
            raise ValueError(f"match basis {self.basis!r} is not one of {MATCH_BASES}")
        if not self.score >= self.threshold:
            raise NotAMatchError(
                f"score {self.score} is below threshold {self.threshold}: not an alert",
                "only matches produce events; discard non-matching faces",
            )

    @classmethod
    def from_search(
        cls,
        candidates: Sequence[ScoredCandidate],
        threshold: float,
        category: str,
        face_box: tuple[float, float, float, float],
        basis: str = "single_frame",
    ) -> "MatchDecision | None":
        """A decision from gallery search results (best first), or None when the best is below threshold."""
        if not candidates or candidates[0].score < threshold:
            return None
        top = tuple(Candidate(c.subject_ref, round_score(float(c.score))) for c in candidates[:MAX_CANDIDATES])
        return cls(top[0].subject_ref, category, top[0].score, round_score(float(threshold)), top, face_box, basis)


@dataclass(frozen=True)
class DeviceContext:
    """Who is alerting, under which authority, with which models."""

    device_id: str
    deployment_id: str
    watchlist_version: str
    model: dict[str, str]  # ModelIdentity.as_dict() (detector_sha256, aligner, embedder_sha256) plus "precision"


class EventBuilder:
    def __init__(self, context: DeviceContext, signing_key: Ed25519PrivateKey, control_room: X25519PublicKey) -> None:
        check_device_id(context.device_id)
        self.context = context
        self._signing_key = signing_key
        self._control_room = control_room

    def build(
        self,
        decision: MatchDecision,
        crop_jpeg: bytes,
        captured_at: datetime,
        seq: int,
        event_id: str | None = None,
        *,
        spool_epoch: str,
        audit_head: AuditHead,
    ) -> AlertEvent:
        """A signed lfr.alert/2 event; ``spool_epoch`` and ``audit_head`` come from the spool and
        audit log the event is committed with (edge_agent.events.outbox)."""
        if not isinstance(decision, MatchDecision):
            raise NotAMatchError("events are built only from a MatchDecision", "pass the matcher's decision")
        event_id = event_id or str(uuid.uuid4())
        x1, y1, x2, y2 = decision.face_box
        event = AlertEvent(
            event_id=event_id,
            device_id=self.context.device_id,
            deployment_id=self.context.deployment_id,
            watchlist_version=str(self.context.watchlist_version),
            seq=seq,
            captured_at=parse_time(format_time(captured_at)),
            subject_ref=decision.subject_ref,
            category=decision.category,
            score=round_score(decision.score),
            threshold=round_score(decision.threshold),
            model=dict(self.context.model),
            face_box=(int(round(x1)), int(round(y1)), int(round(x2)), int(round(y2))),
            candidates=tuple(Candidate(c.subject_ref, round_score(c.score)) for c in decision.candidates[:MAX_CANDIDATES]),
            crop=seal_crop(crop_jpeg, self._control_room, event_id),
            spool_epoch=spool_epoch,
            audit_head=audit_head,
            match_basis=decision.basis,
        )
        return sign_event(event, self._signing_key)

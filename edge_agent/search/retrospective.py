"""The search itself: candidates at or above the deployment's threshold, never a ranked tail.

Stills: each face (RFR), or only the still's subject (OIFR, ``vision/subject.py``), is searched on
its own template. Video: faces are followed as tracks by the live agent's tracker and matched the
way the agent matches them (``agent/tracking.py``: ``FaceTracker``, and ``TrackTemplates.match``:
the frame's own template and the track's fused template, the better one cited), so the result is
one ranked list per person with the time range they are seen in, not one list per sampled frame.

Privacy (policing.md 12): a face's template lives only inside the loop and is zeroed once
searched (a bystander's at once); a track's fusion copies are zeroed when it ends. Only candidates
at or above the threshold are kept: a face or track without one leaves nothing but the counts.
Matching stops when the deployment's window closes (policing.md 2), mid-video included.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from edge_agent.agent.tracking import SINGLE_FRAME, FaceTracker, TrackTemplates
from edge_agent.events.schema import round_score
from edge_agent.search.inputs import VIDEO, SearchFrame, SearchInput
from edge_agent.timestamps import format_timestamp
from edge_agent.vision.core import Face, RecognitionCore
from edge_agent.vision.subject import box_area, choose_subject
from edge_agent.watchlist.gallery import Candidate
from edge_agent.watchlist.loader import LoadedWatchlist

DEFAULT_TOP = 5  # candidates listed per face or track, at most, all at or above the threshold
COMPLETE, DEPLOYMENT_ENDED = "complete", "deployment ended"


@dataclass(frozen=True)
class Listed:
    """A candidate at or above the threshold."""

    subject_ref: str
    score: float
    basis: str  # agent/tracking.py SINGLE_FRAME or FUSED_TRACK
    at_s: float | None = None  # video: where in the recording the score was reached


@dataclass(frozen=True)
class StillHit:
    file: str
    face: int  # 1 is the largest face in the still
    box: tuple[float, float, float, float]
    candidates: tuple[Listed, ...]


@dataclass(frozen=True)
class TrackHit:
    track: int  # the person's number in order of first appearance (people without candidates are counted too)
    first_seen_s: float
    last_seen_s: float
    faces: int  # sampled frames the person was seen in
    candidates: tuple[Listed, ...]


@dataclass(frozen=True)
class SearchOutcome:
    input: SearchInput
    deployment_id: str
    mode: str
    package_id: str
    threshold: float
    started: datetime
    frames: int
    faces_found: int
    faces_searched: int
    faces_not_searched: int  # refused by the quality gate, or (OIFR) not the still's subject
    tracks: int | None  # video only: people followed
    hits: tuple[StillHit | TrackHit, ...]
    stopped_because: str  # COMPLETE or DEPLOYMENT_ENDED
    not_searched_because: str | None = None  # OIFR: why the still's subject could not be told

    def candidate_rows(self) -> list[dict[str, Any]]:
        """One row per (face or track, candidate): what the audit log records and ``--json`` prints."""
        rows: list[dict[str, Any]] = []
        for hit in self.hits:
            where: dict[str, Any] = (
                {"track": hit.track, "first_seen_s": round(hit.first_seen_s, 3), "last_seen_s": round(hit.last_seen_s, 3)}
                if isinstance(hit, TrackHit) else {"file": hit.file, "face": hit.face}
            )
            rows += [{**where, "rank": rank, "subject_ref": c.subject_ref, "score": round_score(c.score), "basis": c.basis}
                     for rank, c in enumerate(hit.candidates, 1)]
        return rows

    def audit_details(self) -> dict[str, Any]:
        """``search_run`` details (docs/formats/audit.md): counts and candidates, never a template or image."""
        details: dict[str, Any] = {
            "deployment_id": self.deployment_id,
            "mode": self.mode,
            "package_id": self.package_id,
            "threshold": float(self.threshold),
            "input": str(self.input.path),
            "input_kind": self.input.kind,
            "input_sha256": self.input.sha256,
            "input_files": self.input.files,
            "started": format_timestamp(self.started),
            "frames_searched": self.frames,
            "faces_found": self.faces_found,
            "faces_searched": self.faces_searched,
            "faces_not_searched": self.faces_not_searched,
            "stopped_because": self.stopped_because,
            "candidates": self.candidate_rows(),
        }
        if self.tracks is not None:
            details["tracks"] = self.tracks
        if self.not_searched_because is not None:
            details["not_searched_because"] = self.not_searched_because
        return details


@dataclass
class _Counts:
    frames: int = 0
    found: int = 0
    searched: int = 0
    not_searched: int = 0
    no_subject: str | None = None


@dataclass
class _Track:
    first_seen_s: float
    last_seen_s: float
    faces: int = 0
    best: dict[str, Listed] = field(default_factory=dict)  # per subject: its best score on this track


def run_search(
    core: RecognitionCore,
    watchlist: LoadedWatchlist,
    search_input: SearchInput,
    frames: Iterator[SearchFrame],
    clock: Callable[[], datetime],
    top: int = DEFAULT_TOP,
    max_track_gap_s: float = 1.0,
    on_frame: Callable[[], None] | None = None,
) -> SearchOutcome:
    """Search every frame while the deployment is active; ``max_track_gap_s``: a person unseen this
    long in a video is a new track (the caller sets it from the sampling rate)."""
    started = clock()
    record = watchlist.deployment
    threshold = record.alert_threshold
    counts = _Counts()
    video = search_input.kind == VIDEO
    tracker = FaceTracker(max_age_s=max_track_gap_s) if video else None
    templates = TrackTemplates()
    stills: list[StillHit] = []
    tracks: dict[tuple[int, int], _Track] = {}  # (tracker id, restarts): one person each
    stopped = COMPLETE
    try:
        for frame in frames:
            if on_frame is not None:
                on_frame()
            now = clock()
            if not watchlist.active(now):
                stopped = DEPLOYMENT_ENDED
                break
            counts.frames += 1

            def search(probe, now=now) -> list[Candidate]:
                return [c for c in watchlist.search(probe, now, k=top) if c.score >= threshold]

            faces = sorted(core.faces(frame.image), key=box_area, reverse=True)
            counts.found += len(faces)
            if tracker is not None:
                _track_frame(faces, frame, tracker, templates, tracks, counts, search)
            else:
                stills += _search_still(faces, frame, record.mode, counts, search)
    finally:
        templates.clear()
    if video:
        hits: tuple[StillHit | TrackHit, ...] = tuple(  # people numbered in order of first appearance
            TrackHit(n, t.first_seen_s, t.last_seen_s, t.faces, _ranked(t.best.values(), top))
            for n, t in enumerate(tracks.values(), 1) if t.best
        )
    else:
        hits = tuple(stills)
    return SearchOutcome(
        search_input, record.deployment_id, record.mode, watchlist.package_id, threshold, started, counts.frames,
        counts.found, counts.searched, counts.not_searched, len(tracks) if video else None, hits, stopped, counts.no_subject,
    )


def _search_still(faces: list[Face], frame: SearchFrame, mode: str, counts: _Counts, search: Callable) -> list[StillHit]:
    """RFR: every usable face of the still. OIFR: only its subject; a bystander is never searched."""
    if mode == "OIFR":
        choice = choose_subject(faces)
        chosen = [choice.face] if choice.face is not None else []
        if choice.face is None:
            counts.no_subject = f"{choice.reason}: {choice.detail}"
    else:
        chosen = [f for f in faces if f.embedding is not None]
    hits = []
    for n, face in enumerate(faces, 1):
        if face.embedding is None or not any(face is c for c in chosen):
            counts.not_searched += 1
            if face.embedding is not None:
                face.embedding.fill(0.0)
            continue
        counts.searched += 1
        candidates = search(face.embedding)
        face.embedding.fill(0.0)
        if candidates:
            x1, y1, x2, y2 = (round(float(v), 1) for v in face.detection.box)
            hits.append(StillHit(frame.file, n, (x1, y1, x2, y2), tuple(Listed(c.subject_ref, c.score, SINGLE_FRAME) for c in candidates)))
    return hits


def _track_frame(
    faces: list[Face], frame: SearchFrame, tracker: FaceTracker, templates: TrackTemplates, tracks: dict[tuple[int, int], _Track],
    counts: _Counts, search: Callable,
) -> None:
    """One sampled frame of a video. A track the tracker carried from one person on to another
    (their templates disagree: ``TrackTemplates``) is two people, each with their own list."""
    t = frame.time_s or 0.0
    track_ids, ended = tracker.update([f.detection.box for f in faces], t)
    templates.end(ended)
    for face, track_id in zip(faces, track_ids, strict=True):
        if face.embedding is None:
            counts.not_searched += 1
            _person(tracks, track_id, templates, t)
            continue
        counts.searched += 1
        basis, candidates = templates.match(track_id, face.embedding, face.quality.quality, search)
        track = _person(tracks, track_id, templates, t)
        for c in candidates:
            held = track.best.get(c.subject_ref)
            if held is None or c.score > held.score:
                track.best[c.subject_ref] = Listed(c.subject_ref, c.score, basis, t)


def _person(tracks: dict[tuple[int, int], _Track], track_id: int, templates: TrackTemplates, t: float) -> _Track:
    track = tracks.setdefault((track_id, templates.restarts(track_id)), _Track(t, t))
    track.last_seen_s = t
    track.faces += 1
    return track


def _ranked(listed, top: int) -> tuple[Listed, ...]:
    return tuple(sorted(listed, key=lambda c: -c.score)[:top])

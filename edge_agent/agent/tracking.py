"""Face tracks across frames, so one person walking past produces one alert, not one per frame.

``FaceTracker`` links detections frame to frame by box overlap. ``TrackTemplates`` keeps, for each
track in view, its few best-quality templates and fuses them (quality-weighted mean, renormalised):
a person seen over many frames is matched on all of them, not on one lucky or unlucky frame.
``AlertGate`` holds each track's best match per subject (best frame first: highest quality, then
score) for a short settling window (or until the track ends), emits it once, and then applies a
per-subject cooldown. Only *matches* enter the gate.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

import numpy as np

from edge_agent.watchlist.gallery import Candidate

#: Templates fused per track: the best by quality (measured: models/README.md, "Track fusion").
FUSED_PER_TRACK = 5
#: A new template this far from its track's fused one (cosine below it; impostor pairs score 0.10 on
#: average, genuine 0.69) means the tracker joined two people: the track's templates start again.
MIN_AGREEMENT = 0.3
#: What a match rests on (event v2 ``match_basis``; edge_agent/events/schema.py MATCH_BASES).
SINGLE_FRAME = "single_frame"
FUSED_TRACK = "fused_track"


def fuse(templates: list[np.ndarray], weights: list[float]) -> np.ndarray:
    """Weighted mean of unit templates, renormalised (weights: quality; all zero counts as equal)."""
    w = np.asarray(weights, np.float64)
    w = w if w.sum() > 0 else np.ones_like(w)
    mean = (np.stack(templates).astype(np.float64) * w[:, None]).sum(0)
    return (mean / max(np.linalg.norm(mean), 1e-12)).astype(np.float32)


@dataclass
class _Held:
    quality: float
    template: np.ndarray


class TrackTemplates:
    """The best-quality templates of each track still in view, for fusion. Privacy: a template here
    lives only while its track is in view, at most ``per_track`` per track; every one is zeroed
    when it is replaced, when its track ends, or when ``clear`` is called (policing.md 12: a
    non-match leaves nothing once its person has gone)."""

    def __init__(self, per_track: int = FUSED_PER_TRACK, min_agreement: float = MIN_AGREEMENT) -> None:
        self.per_track = per_track
        self.min_agreement = min_agreement
        self._held: dict[int, list[_Held]] = {}
        self._restarts: dict[int, int] = {}

    def add(self, track_id: int, template: np.ndarray, quality: float) -> np.ndarray | None:
        """Keep a copy of ``template`` if it is among the track's best; returns the track's fused
        template when it holds two or more (a new array the caller zeroes), else None."""
        held = self._held.setdefault(track_id, [])
        if held and float(fuse([h.template for h in held], [h.quality for h in held]) @ template) < self.min_agreement:
            self._drop(track_id)  # another person on the same track: never fuse two faces
            self._restarts[track_id] = self._restarts.get(track_id, 0) + 1
            held = self._held.setdefault(track_id, [])
        held.append(_Held(float(quality), np.array(template, np.float32, copy=True)))
        held.sort(key=lambda h: -h.quality)
        while len(held) > self.per_track:
            held.pop().template.fill(0.0)
        if len(held) < 2:
            return None
        return fuse([h.template for h in held], [h.quality for h in held])

    def match(
        self, track_id: int, template: np.ndarray, quality: float, search: Callable[[np.ndarray], list[Candidate]]
    ) -> tuple[str, list[Candidate]]:
        """Search the frame's own template and, once the track holds two or more, its fused one;
        return the basis (SINGLE_FRAME or FUSED_TRACK) with the better top score and its
        candidates. Both templates are zeroed here (the track keeps its own copy for fusion). The
        live agent and the retrospective video search both match through this one method."""
        fused = self.add(track_id, template, quality)
        single = search(template)
        template.fill(0.0)
        if fused is None:
            return SINGLE_FRAME, single
        together = search(fused)
        fused.fill(0.0)
        if together and (not single or together[0].score > single[0].score):
            return FUSED_TRACK, together
        return SINGLE_FRAME, single

    def restarts(self, track_id: int) -> int:
        """How often the track's templates started again because another person took the track
        over: the retrospective search counts each start as a new person."""
        return self._restarts.get(track_id, 0)

    def end(self, track_ids: list[int] | tuple[int, ...]) -> None:
        for track_id in track_ids:
            self._drop(track_id)
            self._restarts.pop(track_id, None)

    def clear(self) -> None:
        for track_id in list(self._held):
            self._drop(track_id)
        self._restarts.clear()

    def _drop(self, track_id: int) -> None:
        for h in self._held.pop(track_id, []):
            h.template.fill(0.0)

    @property
    def held(self) -> int:
        """Templates held now (for tests and telemetry: never the templates themselves)."""
        return sum(len(v) for v in self._held.values())



def box_iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@dataclass
class _Track:
    track_id: int
    box: tuple[float, float, float, float]
    last_seen: float
    velocity: tuple[float, float] = (0.0, 0.0)  # box centre, pixels per second

    def predicted(self, now_s: float) -> tuple[float, float, float, float]:
        """Where the box should be now if the face kept moving as it did (constant velocity)."""
        dt = now_s - self.last_seen
        dx, dy = self.velocity[0] * dt, self.velocity[1] * dt
        x1, y1, x2, y2 = self.box
        return (x1 + dx, y1 + dy, x2 + dx, y2 + dy)


def centre_shift(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Distance between box centres in units of their mean width; inf when the sizes differ by more than 1.5x."""
    wa, wb = a[2] - a[0], b[2] - b[0]
    if min(wa, wb) <= 0 or max(wa, wb) > 1.5 * min(wa, wb):
        return float("inf")
    dx = (a[0] + a[2] - b[0] - b[2]) / 2
    dy = (a[1] + a[3] - b[1] - b[3]) / 2
    return float((dx * dx + dy * dy) ** 0.5 / ((wa + wb) / 2))


class FaceTracker:
    """Greedy association, best overlap first, against each track's last box and where its
    movement so far predicts it. A face that moved too far for the boxes to overlap (a fast walker,
    or a recording searched at a few frames per second) still continues its track when its centre
    moved no faster than ``max_speed`` face widths per second (a brisk walk across the view at a
    couple of metres is about 10) at a similar size. A track not seen for ``max_age_s`` ends."""

    def __init__(self, min_iou: float = 0.3, max_age_s: float = 1.0, max_speed: float = 12.0) -> None:
        self.min_iou = min_iou
        self.max_age_s = max_age_s
        self.max_speed = max_speed
        self._tracks: dict[int, _Track] = {}
        self._next_id = 1

    def update(self, boxes: list[tuple[float, float, float, float]], now_s: float) -> tuple[list[int], list[int]]:
        """Track ids for ``boxes`` (same order), and the ids of tracks that ended."""
        ended = [t.track_id for t in self._tracks.values() if now_s - t.last_seen > self.max_age_s]
        for track_id in ended:
            del self._tracks[track_id]
        live = list(self._tracks.values())
        pairs = []
        for i, box in enumerate(boxes):
            for t in live:
                ahead = t.predicted(now_s)
                overlap = max(box_iou(box, t.box), box_iou(box, ahead))
                shift = min(centre_shift(box, t.box), centre_shift(box, ahead))
                if overlap >= self.min_iou or shift <= max(0.5, self.max_speed * (now_s - t.last_seen)):
                    pairs.append((overlap, -shift, i, t.track_id))
        pairs.sort(reverse=True)
        assigned: dict[int, int] = {}
        taken: set[int] = set()
        for _, _, i, track_id in pairs:
            if i in assigned or track_id in taken:
                continue
            assigned[i] = track_id
            taken.add(track_id)
        ids = []
        for i, box in enumerate(boxes):
            found = assigned.get(i)
            velocity = (0.0, 0.0)
            if found is None:
                track_id = self._next_id
                self._next_id += 1
            else:
                track_id = found
                before = self._tracks[track_id]
                dt = now_s - before.last_seen
                if dt > 0:
                    velocity = ((box[0] + box[2] - before.box[0] - before.box[2]) / 2 / dt, (box[1] + box[3] - before.box[1] - before.box[3]) / 2 / dt)
            self._tracks[track_id] = _Track(track_id, box, now_s, velocity)
            ids.append(track_id)
        return ids, ended

    @property
    def started(self) -> int:
        """Tracks started so far: distinct faces seen, the count a per-person rate divides by."""
        return self._next_id - 1

    def __len__(self) -> int:
        return len(self._tracks)


class Scored(Protocol):
    subject_ref: str
    score: float
    quality: float  # 0..1 (edge_agent/vision/quality.py)


def rank(match: Scored) -> tuple[float, float]:
    """Best frame first: quality in tenths (a clear face is what an adjudicator needs and the score
    it gives is the one to trust), then score."""
    return round(match.quality, 1), match.score


M = TypeVar("M", bound=Scored)


@dataclass
class _Pending(Generic[M]):
    best: M
    first_seen_s: float
    last_seen_s: float


@dataclass
class AlertGate(Generic[M]):
    """Chooses which matches become alerts: the best frame (``rank``) of each (track, subject), once."""

    settle_s: float = 1.0  # wait this long after a track's first match for a better frame
    cooldown_s: float = 60.0  # no second alert for the same subject within this time
    _pending: dict[tuple[int, str], _Pending[M]] = field(default_factory=dict)
    _last_alert_s: dict[str, float] = field(default_factory=dict)
    _done: set[tuple[int, str]] = field(default_factory=set)
    suppressed: int = 0

    def offer(self, track_id: int, match: M, now_s: float) -> None:
        """A match seen on a track; only the best-ranked one per (track, subject) is kept."""
        key = (track_id, match.subject_ref)
        if key in self._done:
            return
        pending = self._pending.get(key)
        if pending is None:
            self._pending[key] = _Pending(match, now_s, now_s)
            return
        pending.last_seen_s = now_s
        if rank(match) > rank(pending.best):
            pending.best = match

    def due(self, now_s: float, ended_tracks: list[int] | tuple[int, ...] = (), flush: bool = False) -> list[M]:
        """Matches to alert on now: settled, or their track ended, or everything when ``flush``."""
        ended = set(ended_tracks)
        out = []
        for key in [k for k, p in self._pending.items() if flush or k[0] in ended or now_s - p.first_seen_s >= self.settle_s]:
            pending = self._pending.pop(key)
            if key[0] not in ended:
                self._done.add(key)  # the track is still in view: never alert on it again for this subject
            subject = key[1]
            # A flush (end of a replay, shutdown) is not a moment in the scene: the match counts at
            # the time it was last seen, so the cooldown still holds for it.
            at = now_s if math.isfinite(now_s) else pending.last_seen_s
            last = self._last_alert_s.get(subject)
            if last is not None and at - last < self.cooldown_s:
                self.suppressed += 1
                continue
            self._last_alert_s[subject] = at
            out.append(pending.best)
        for track_id in ended:
            self._done = {k for k in self._done if k[0] != track_id}
        return out

    def discard_pending(self) -> int:
        """Forget every match still settling (the authority to match has ended); returns how many."""
        count = len(self._pending)
        self._pending.clear()
        return count

    @property
    def pending_count(self) -> int:
        return len(self._pending)



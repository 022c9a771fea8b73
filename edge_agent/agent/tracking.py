"""Face tracks across frames, so one person walking past produces one alert, not one per frame.

``FaceTracker`` links detections frame to frame by box overlap. ``AlertGate`` holds each track's
best-scoring match per subject for a short settling window (or until the track ends), emits it
once, and then applies a per-subject cooldown. Only *matches* enter the gate; a non-matching face
is never held here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar




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


class FaceTracker:
    """Greedy IoU association; a track not seen for ``max_age_s`` ends."""

    def __init__(self, min_iou: float = 0.3, max_age_s: float = 1.0) -> None:
        self.min_iou = min_iou
        self.max_age_s = max_age_s
        self._tracks: dict[int, _Track] = {}
        self._next_id = 1

    def update(self, boxes: list[tuple[float, float, float, float]], now_s: float) -> tuple[list[int], list[int]]:
        """Track ids for ``boxes`` (same order), and the ids of tracks that ended."""
        ended = [t.track_id for t in self._tracks.values() if now_s - t.last_seen > self.max_age_s]
        for track_id in ended:
            del self._tracks[track_id]
        live = list(self._tracks.values())
        pairs = sorted(
            ((box_iou(box, t.box), i, t.track_id) for i, box in enumerate(boxes) for t in live),
            reverse=True,
        )
        assigned: dict[int, int] = {}
        taken: set[int] = set()
        for overlap, i, track_id in pairs:
            if overlap < self.min_iou:
                break
            if i in assigned or track_id in taken:
                continue
            assigned[i] = track_id
            taken.add(track_id)
        ids = []
        for i, box in enumerate(boxes):
            found = assigned.get(i)
            if found is not None:
                track_id = found
            else:
                track_id = self._next_id
                self._next_id += 1
            self._tracks[track_id] = _Track(track_id, box, now_s)
            ids.append(track_id)
        return ids, ended

    def __len__(self) -> int:
        return len(self._tracks)


class Scored(Protocol):
    subject_ref: str
    score: float


M = TypeVar("M", bound=Scored)


@dataclass
class _Pending(Generic[M]):
    best: M
    first_seen_s: float


@dataclass
class AlertGate(Generic[M]):
    """Chooses which matches become alerts: the best frame of each (track, subject), once."""

    settle_s: float = 1.0  # wait this long after a track's first match for a better frame
    cooldown_s: float = 60.0  # no second alert for the same subject within this time
    _pending: dict[tuple[int, str], _Pending[M]] = field(default_factory=dict)
    _last_alert_s: dict[str, float] = field(default_factory=dict)
    _done: set[tuple[int, str]] = field(default_factory=set)
    suppressed: int = 0

    def offer(self, track_id: int, match: M, now_s: float) -> None:
        """A match seen on a track; only the best-scoring one per (track, subject) is kept."""
        key = (track_id, match.subject_ref)
        if key in self._done:
            return
        pending = self._pending.get(key)
        if pending is None:
            self._pending[key] = _Pending(match, now_s)
        elif match.score > pending.best.score:
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
            last = self._last_alert_s.get(subject)
            if last is not None and now_s - last < self.cooldown_s:
                self.suppressed += 1
                continue
            self._last_alert_s[subject] = now_s
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



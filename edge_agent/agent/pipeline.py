"""Frame -> detect -> track -> align -> quality -> embed -> match -> alert, for one frame at a time.

Live capture recognises (aligns, embeds, matches) a tracked face on its first frame, when it
comes closer or turns to the camera, and at least every ``pipeline.recognise_every_s``; between
those frames it is only tracked (``agent/schedule.py``). A recording searched (RFR) has every face
of every frame recognised.

Each face is matched twice: on its own template (``single_frame``) and, once its track has two or
more, on the track's fused template (``fused_track``: the quality-weighted mean of its best
templates); the alert cites the basis of the better score (event v2 ``match_basis``).

Privacy by construction: a face's template and crop live only in local variables of ``process``
(the template is zeroed once searched); the only copies kept are the few best templates of each
track *still in view*, for fusion, zeroed when their track ends or matching stops
(``TrackTemplates``). No code path here can log, spool or publish a template. Only a
``MatchDecision`` (score at or above the deployment's threshold) can reach the alert gate and then
the outbox, and only a matching face's crop is ever encoded.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import numpy as np

from edge_agent.agent.schedule import RecognitionSchedule
from edge_agent.agent.tracking import FUSED_TRACK, AlertGate, FaceTracker, TrackTemplates
from edge_agent.capture.frame import Frame
from edge_agent.errors import EdgeAgentError
from edge_agent.events.builder import MatchDecision
from edge_agent.events.crop import crop_face_jpeg
from edge_agent.events.spool import SpoolError
from edge_agent.vision.core import RecognitionCore
from edge_agent.watchlist.gallery import Candidate

log = logging.getLogger(__name__)

CANDIDATES_PER_FACE = 3
MAX_WAITING_ALERTS = 64  # alerts held in memory while the spool cannot store them (disk full)
ALERT_RETRY_S = 1.0  # how often a waiting alert is offered to the spool again


class Watchlist(Protocol):
    """What matching needs of a loaded watchlist (edge_agent.watchlist.loader.LoadedWatchlist)."""

    def active(self, now: datetime) -> bool: ...

    def search(self, probe: np.ndarray, now: datetime, k: int = 5) -> list[Candidate]: ...

    def category_of(self, subject_ref: str) -> str: ...


RaiseAlert = Callable[[MatchDecision, bytes, datetime], object]
#: Told when an alert could not be raised: the error, and how many alerts now wait in memory.
AlertFailure = Callable[[EdgeAgentError, int], None]


@dataclass
class PipelineCounters:
    """Counts for telemetry and the deployment report; never anything biometric."""

    frames: int = 0
    frames_outside_deployment: int = 0
    faces: int = 0  # detections, one per face per frame: a person in view for 3 s at 30 fps is 90
    people: int = 0  # distinct faces (tracks started; one who leaves the view for over a track's age and returns counts twice)
    people_searched: int = 0  # of which at least one frame was searched against the watchlist
    faces_rejected_quality: int = 0
    faces_searched: int = 0
    faces_between_recognitions: int = 0  # tracked on this frame, recognised on an earlier one (agent/schedule.py)
    matches: int = 0
    matches_fused: int = 0  # of which the track's fused template scored higher than the frame's own
    alerts: int = 0
    alerts_suppressed: int = 0
    matches_discarded_at_deployment_end: int = 0
    alerts_waiting: int = 0  # matched, not yet stored (the spool refused them; retried)
    alerts_not_stored: int = 0  # given up: more than MAX_WAITING_ALERTS waited, or the alert could not be built
    latencies_ms: deque = field(default_factory=lambda: deque(maxlen=256))
    frame_times: deque = field(default_factory=lambda: deque(maxlen=64))

    def latency_percentile_ms(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else 0.0

    def fps(self) -> float:
        """Frames per second over the last 64 frames."""
        if len(self.frame_times) < 2:
            return 0.0
        span = self.frame_times[-1] - self.frame_times[0]
        return (len(self.frame_times) - 1) / span if span > 0 else 0.0

    def counts(self) -> dict[str, int]:
        """Integer counts under the names the audit log and deployment report use ("frames" alone
        is refused by the audit log as a biometric field name)."""
        return {
            "frames_processed": self.frames,
            "frames_outside_deployment": self.frames_outside_deployment,
            "faces": self.faces,
            "people": self.people,
            "people_searched": self.people_searched,
            "faces_rejected_quality": self.faces_rejected_quality,
            "faces_searched": self.faces_searched,
            "faces_between_recognitions": self.faces_between_recognitions,
            "matches": self.matches,
            "matches_fused": self.matches_fused,
            "alerts": self.alerts,
            "alerts_suppressed": self.alerts_suppressed,
            "matches_discarded_at_deployment_end": self.matches_discarded_at_deployment_end,
        }


@dataclass(frozen=True)
class _PendingAlert:
    decision: MatchDecision
    crop_jpeg: bytes
    captured_at: datetime
    quality: float = 1.0  # the matching frame's face quality: the gate keeps the best frame

    @property
    def subject_ref(self) -> str:
        return self.decision.subject_ref

    @property
    def score(self) -> float:
        return self.decision.score


class MatchingPipeline:
    def __init__(
        self,
        core: RecognitionCore,
        watchlist: Watchlist,
        threshold: float,
        raise_alert: RaiseAlert,
        clock: Callable[[], datetime],
        tracker: FaceTracker | None = None,
        gate: AlertGate | None = None,
        max_faces_per_frame: int = 10,
        local_alert: Callable[[MatchDecision], None] | None = None,
        on_alert_failure: AlertFailure | None = None,
        schedule: RecognitionSchedule | None = None,
    ) -> None:
        self.core = core
        self.watchlist = watchlist
        self.threshold = threshold
        self._raise_alert = raise_alert
        self._clock = clock
        self.tracker = tracker or FaceTracker()
        self.templates = TrackTemplates()
        self.gate: AlertGate = gate or AlertGate()
        self.max_faces_per_frame = max_faces_per_frame
        self.schedule = schedule or RecognitionSchedule()
        self._local_alert = local_alert  # None in silent mode: the wearer is never prompted
        self._on_alert_failure = on_alert_failure
        # Alerts the gate released that are not stored yet (issue 10.9: one failure must not drop the rest).
        self._waiting: deque[_PendingAlert] = deque()
        self._retry_at = 0.0
        self.counters = PipelineCounters()
        self._searched_tracks: set[int] = set()  # live tracks already counted in people_searched

    def process(self, frame: Frame) -> int:
        """Handle one frame; returns how many alerts it raised."""
        started = time.perf_counter()
        now = self._clock()
        self.counters.frames += 1
        self.counters.frame_times.append(started)
        t = frame.source_time_s if frame.source_time_s is not None else frame.captured_at.timestamp()
        if not self.watchlist.active(now):
            # No authority to match: nothing is detected or embedded, and matches still settling are dropped.
            self.counters.frames_outside_deployment += 1
            self.counters.matches_discarded_at_deployment_end += self.gate.discard_pending() + self._discard_waiting()
            self.templates.clear()
            self.schedule.clear()
            return 0
        every_range = self.schedule.every_range_due(t)
        detections = sorted(self.core.detect(frame.image, every_range), key=lambda d: -d.width * d.height)[: self.max_faces_per_frame]
        self.counters.faces += len(detections)
        tracks_before = self.tracker.started
        track_ids, ended = self.tracker.update([d.box for d in detections], t)
        self.counters.people += self.tracker.started - tracks_before
        self._searched_tracks.difference_update(ended)
        self.templates.end(ended)
        self.schedule.end(ended)
        for detection, track_id in zip(detections, track_ids, strict=True):
            if not self.schedule.due(track_id, detection.box, detection.score, t):
                self.counters.faces_between_recognitions += 1
                continue
            face = self.core.recognise(frame.image, detection)
            if face.embedding is None:
                self.counters.faces_rejected_quality += 1
                continue
            self.counters.faces_searched += 1
            if track_id not in self._searched_tracks:
                self._searched_tracks.add(track_id)
                self.counters.people_searched += 1
            basis, candidates = self.templates.match(
                track_id, face.embedding, face.quality.quality, lambda probe: self.watchlist.search(probe, now, k=CANDIDATES_PER_FACE)
            )
            if not candidates or candidates[0].score < self.threshold:
                continue  # a non-match: nothing about this face is kept beyond its track's fusion copy
            decision = MatchDecision.from_search(
                candidates, self.threshold, self.watchlist.category_of(candidates[0].subject_ref), face.detection.box, basis=basis
            )
            if decision is None:  # cannot happen after the check above; keeps the type exact
                continue
            self.counters.matches += 1
            self.counters.matches_fused += basis == FUSED_TRACK
            crop = crop_face_jpeg(frame.image, face.detection.box)
            self.gate.offer(track_id, _PendingAlert(decision, crop, frame.captured_at, face.quality.quality), t)
        raised = self._emit(self.gate.due(t, ended))
        self.counters.latencies_ms.append((time.perf_counter() - started) * 1000)
        return raised

    def finish(self) -> int:
        """Raise every match still settling (end of a replay, or shutdown), if matching is still authorised."""
        self.templates.clear()
        if not self.watchlist.active(self._clock()):
            self.counters.matches_discarded_at_deployment_end += self.gate.discard_pending() + self._discard_waiting()
            return 0
        return self._emit(self.gate.due(float("inf"), flush=True), retry_now=True)

    def _discard_waiting(self) -> int:
        count = len(self._waiting)
        self._waiting.clear()
        self.counters.alerts_waiting = 0
        return count

    def _emit(self, due: list[_PendingAlert], retry_now: bool = False) -> int:
        """Raise the gate's alerts in order. The spool refusing one (disk full) keeps it and every
        later one waiting, retried every ALERT_RETRY_S; matching goes on meanwhile. An alert that
        cannot be built at all is given up alone. Both are reported to ``on_alert_failure``."""
        self._waiting.extend(due)
        while len(self._waiting) > MAX_WAITING_ALERTS:
            self._waiting.popleft()  # the oldest: a fresh alert is the actionable one
            self.counters.alerts_not_stored += 1
        raised = 0
        if self._waiting and (retry_now or time.monotonic() >= self._retry_at):
            while self._waiting:
                pending = self._waiting[0]
                try:
                    self._raise_alert(pending.decision, pending.crop_jpeg, pending.captured_at)
                except SpoolError as exc:
                    self._retry_at = time.monotonic() + ALERT_RETRY_S
                    self._report(exc)
                    break
                except EdgeAgentError as exc:
                    self._waiting.popleft()
                    self.counters.alerts_not_stored += 1
                    self._report(exc)
                    continue
                self._waiting.popleft()
                raised += 1
                if self._local_alert is not None:
                    self._local_alert(pending.decision)
        self.counters.alerts += raised
        self.counters.alerts_waiting = len(self._waiting)
        self.counters.alerts_suppressed = self.gate.suppressed
        return raised

    def _report(self, exc: EdgeAgentError) -> None:
        self.counters.alerts_waiting = len(self._waiting)
        log.error("alert not stored: %s (%d waiting)", exc.message, len(self._waiting))
        if self._on_alert_failure is not None:
            self._on_alert_failure(exc, len(self._waiting))

"""Tracks and the alert gate: one person walking past gives one alert, from the best frame."""

from __future__ import annotations

from dataclasses import dataclass

from edge_agent.agent.tracking import AlertGate, FaceTracker, box_iou


@dataclass(frozen=True)
class M:
    subject_ref: str
    score: float
    quality: float = 1.0


def test_iou():
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0
    assert abs(box_iou((0, 0, 10, 10), (5, 0, 15, 10)) - 50 / 150) < 1e-9


def test_a_face_moving_across_frames_keeps_its_track():
    tracker = FaceTracker(min_iou=0.3, max_age_s=0.5)
    ids = [tracker.update([(x, 100, x + 80, 180)], t * 0.1)[0][0] for t, x in enumerate(range(0, 200, 10))]
    assert len(set(ids)) == 1


def test_two_faces_get_two_tracks_and_a_lost_track_ends():
    tracker = FaceTracker(max_age_s=0.5)
    ids, _ = tracker.update([(0, 0, 50, 50), (200, 0, 250, 50)], 0.0)
    assert len(set(ids)) == 2
    ids2, ended = tracker.update([(2, 0, 52, 50)], 0.45)
    assert ids2 == [ids[0]] and ended == []
    ids3, ended = tracker.update([(4, 0, 54, 50)], 0.6)
    assert ids3 == [ids[0]] and ended == [ids[1]]


def test_gate_emits_the_best_frame_once_per_track_and_subject():
    gate: AlertGate[M] = AlertGate(settle_s=1.0, cooldown_s=60)
    for i, score in enumerate([0.61, 0.72, 0.65]):
        gate.offer(1, M("S1", score), i * 0.2)
    assert gate.due(0.5) == []
    due = gate.due(1.1)
    assert due == [M("S1", 0.72)]
    gate.offer(1, M("S1", 0.9), 1.2)  # same track still in view: no second alert
    assert gate.due(5.0) == []


def test_gate_cooldown_suppresses_the_same_subject_on_a_new_track():
    gate: AlertGate[M] = AlertGate(settle_s=0.5, cooldown_s=10)
    gate.offer(1, M("S1", 0.7), 0.0)
    assert len(gate.due(0.6)) == 1
    gate.offer(2, M("S1", 0.8), 3.0)
    assert gate.due(3.6) == [] and gate.suppressed == 1
    gate.offer(3, M("S1", 0.8), 20.0)
    assert gate.due(20.6) == [M("S1", 0.8)]


def test_track_end_releases_its_match_before_settling_and_flush_releases_all():
    gate: AlertGate[M] = AlertGate(settle_s=5, cooldown_s=0)
    gate.offer(7, M("A", 0.7), 0.0)
    gate.offer(8, M("B", 0.7), 0.0)
    assert gate.due(0.2, ended_tracks=[7]) == [M("A", 0.7)]
    assert gate.due(0.3, flush=True) == [M("B", 0.7)]
    assert gate.pending_count == 0


def test_the_cooldown_holds_for_matches_flushed_at_the_end():
    """A second track of the same person (the tracker lost them for a moment) still settling when
    a replay ends is within the cooldown of the first alert: flushing must not bypass it."""
    gate: AlertGate[M] = AlertGate(settle_s=1.0, cooldown_s=60)
    gate.offer(1, M("S1", 0.7), 0.0)
    assert gate.due(1.1) == [M("S1", 0.7)]
    gate.offer(2, M("S1", 0.8), 2.0)
    assert gate.due(float("inf"), flush=True) == [] and gate.suppressed == 1
    gate.offer(3, M("S1", 0.8), 90.0)
    assert gate.due(float("inf"), flush=True) == [M("S1", 0.8)]


def test_the_gate_keeps_the_best_quality_frame_then_the_best_score():
    gate: AlertGate[M] = AlertGate(settle_s=1.0, cooldown_s=0)
    gate.offer(1, M("S1", 0.90, quality=0.3), 0.0)  # high score on a poor frame
    gate.offer(1, M("S1", 0.70, quality=0.95), 0.2)
    gate.offer(1, M("S1", 0.72, quality=0.92), 0.4)  # same quality band, better score
    assert gate.due(1.1) == [M("S1", 0.72, quality=0.92)]


def test_a_small_fast_face_sampled_a_few_times_a_second_keeps_its_track():
    """A 40 px face crossing the frame in a second, searched at 6 fps: its boxes never overlap
    (67 px apart), yet it is one person, so one track."""
    tracker = FaceTracker()
    ids = {tracker.update([(x, 155, x + 40, 195)], t)[0][0] for t, x in ((0.0, 83), (0.167, 150), (0.333, 217), (0.5, 284), (0.667, 351))}
    assert len(ids) == 1


def test_two_people_side_by_side_stay_two_tracks_while_walking():
    tracker = FaceTracker()
    for step in range(8):
        t, dx = step / 15, 20 * step
        ids, _ = tracker.update([(100 + dx, 100, 160 + dx, 160), (190 + dx, 100, 250 + dx, 160)], t)
        if step == 0:
            first = ids
    assert ids == first

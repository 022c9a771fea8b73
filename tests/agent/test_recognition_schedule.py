"""The live pipeline recognises a tracked face on its first frame, when it comes closer or turns to
the camera, and at least every ``recognise_every_s``; a recording searched (RFR) gets every face of
every frame; the short-range detector runs periodically and wherever the full range finds nothing."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import cv2
import numpy as np
import pytest

from edge_agent.agent.config import load_config
from edge_agent.agent.pipeline import MatchingPipeline
from edge_agent.agent.runner import _schedule
from edge_agent.agent.schedule import RecognitionSchedule
from edge_agent.capture.frame import Frame
from edge_agent.demo.live import provision_site
from edge_agent.demo.scenes import background
from edge_agent.vision.core import RecognitionCore
from edge_agent.vision.image_io import read_image

BOX = (100.0, 100.0, 200.0, 200.0)


def test_first_sight_then_every_interval():
    s = RecognitionSchedule(0.2)
    due = [s.due(1, BOX, 0.9, i / 30) for i in range(31)]  # one second at 30 fps
    assert [i for i, d in enumerate(due) if d] == [0, 6, 12, 18, 24, 30]


def test_closer_or_turned_towards_the_camera_is_recognised_at_once():
    s = RecognitionSchedule(0.2)
    assert s.due(1, BOX, 0.8, 0.0)
    assert not s.due(1, (100.0, 100.0, 220.0, 220.0), 0.85, 0.03)  # 1.2x wider, score +0.05: not yet
    assert s.due(1, (100.0, 100.0, 226.0, 226.0), 0.8, 0.06)  # 1.26x wider than when last recognised
    assert not s.due(1, (100.0, 100.0, 226.0, 226.0), 0.85, 0.09)
    assert s.due(1, (100.0, 100.0, 226.0, 226.0), 0.91, 0.12)  # score up 0.11 since then


def test_tracks_are_independent_and_forgotten_when_they_end():
    s = RecognitionSchedule(0.2)
    assert s.due(1, BOX, 0.9, 0.0) and s.due(2, BOX, 0.9, 0.0)
    assert not s.due(1, BOX, 0.9, 0.1)
    s.end([1])
    assert s.due(1, BOX, 0.9, 0.1) and not s.due(2, BOX, 0.9, 0.1)


def test_zero_interval_and_a_clock_going_backwards_mean_every_frame():
    every = RecognitionSchedule(0.0)
    assert all(every.due(1, BOX, 0.9, i / 30) for i in range(10))
    assert all(every.every_range_due(i / 30) for i in range(10))
    s = RecognitionSchedule(0.2)
    assert s.due(1, BOX, 0.9, 5.0) and s.due(1, BOX, 0.9, 1.0)  # a replay restarted
    with pytest.raises(ValueError):
        RecognitionSchedule(-1.0)


def test_every_range_pass_keeps_its_own_rhythm():
    s = RecognitionSchedule(0.2)
    assert [i for i in range(13) if s.every_range_due(i / 30)] == [0, 6, 12]


def _pipeline(tmp_path, fixtures_dir, schedule, detector="both"):
    site = provision_site(tmp_path / "site", fixtures_dir / "faces", watchlist=[("WL-0002", "missing_vulnerable", "biden_1.jpg")], file_mode="every_frame")
    config = load_config(site.config_path)
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from edge_agent.agent.runner import _device_keys
    from edge_agent.crypto.keyfiles import load_public_key
    from edge_agent.watchlist.loader import load_watchlist

    core = RecognitionCore.load(detector=detector, threads=1)
    now = datetime.now(timezone.utc)
    watchlist = load_watchlist(config.watchlist.package, _device_keys(config), load_public_key(config.device.authority_public_key, Ed25519PublicKey), core.identity, now)
    alerts: list = []
    pipeline = MatchingPipeline(core, watchlist, site.record.alert_threshold, lambda *a: alerts.append(a), lambda: now, schedule=schedule)
    return core, pipeline, alerts, now


def _scene(fixtures_dir, name, size):
    """One portrait pasted at ``size`` px into a 640x480 scene."""
    frame = background(640, 480, seed=1)
    face = cv2.resize(read_image(fixtures_dir / "faces" / name), (size, size))
    frame[60 : 60 + size, 200 : 200 + size] = face
    return frame


def _spy(obj, name):
    calls = []
    original = getattr(obj, name)

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    setattr(obj, name, counted)
    return calls


def test_live_pipeline_recognises_a_steady_face_five_times_a_second_and_still_alerts(tmp_path, fixtures_dir):
    core, pipeline, alerts, now = _pipeline(tmp_path, fixtures_dir, RecognitionSchedule(0.2))
    image = _scene(fixtures_dir, "biden_2.jpg", 200)
    embeds = _spy(core.embedder, "embed")
    for i in range(30):
        pipeline.process(Frame(image, now + timedelta(seconds=i / 30), i, source_time_s=i / 30))
    pipeline.finish()
    c = pipeline.counters
    assert c.faces == 30 and c.faces_searched + c.faces_rejected_quality == 5 and c.faces_between_recognitions == 25
    assert c.people == 1 and c.people_searched == 1  # 30 detections of one person
    assert len(embeds) == c.faces_searched == 5
    assert [a[0].subject_ref for a in alerts] == ["WL-0002"]  # the match is still raised, once


def test_people_count_distinct_tracks_not_detections(tmp_path, fixtures_dir):
    """The deployment report's per-person rate divides by people searched: one person in view for
    half a second is 15 detections and one person; out of view for longer than a track lives and
    back again, a second person (the tracker cannot know it is the same one, and must not try)."""
    core, pipeline, alerts, now = _pipeline(tmp_path, fixtures_dir, RecognitionSchedule(0.2))
    face, empty = _scene(fixtures_dir, "obama_1.jpg", 200), background(640, 480, seed=1)
    frames = [face] * 15 + [empty] * 45 + [face] * 15  # 0.5 s, 1.5 s away, 0.5 s
    for i, image in enumerate(frames):
        pipeline.process(Frame(image, now + timedelta(seconds=i / 30), i, source_time_s=i / 30))
    c = pipeline.counters
    assert c.faces == 30 and c.people == 2 and c.people_searched == 2
    assert c.counts()["people"] == 2 and c.counts()["people_searched"] == 2


def test_every_frame_schedule_recognises_every_face(tmp_path, fixtures_dir):
    core, pipeline, alerts, now = _pipeline(tmp_path, fixtures_dir, RecognitionSchedule(0.0))
    image = _scene(fixtures_dir, "obama_1.jpg", 200)
    for i in range(12):
        pipeline.process(Frame(image, now + timedelta(seconds=i / 30), i, source_time_s=i / 30))
    assert pipeline.counters.faces_searched == 12 and pipeline.counters.faces_between_recognitions == 0


def test_a_face_coming_closer_is_recognised_on_that_frame(tmp_path, fixtures_dir):
    core, pipeline, alerts, now = _pipeline(tmp_path, fixtures_dir, RecognitionSchedule(0.2))
    far, near = _scene(fixtures_dir, "obama_1.jpg", 160), _scene(fixtures_dir, "obama_1.jpg", 210)
    for i, image in enumerate([far, far, far, near, near]):
        pipeline.process(Frame(image, now + timedelta(seconds=i / 30), i, source_time_s=i / 30))
        if i == 2:
            assert pipeline.counters.faces_searched == 1
    assert pipeline.counters.faces_searched == 2 and pipeline.counters.faces_between_recognitions == 3


def test_short_range_runs_periodically_and_where_the_full_range_finds_nothing(tmp_path, fixtures_dir):
    core, pipeline, alerts, now = _pipeline(tmp_path, fixtures_dir, RecognitionSchedule(0.2))
    assert [d.variant for d in core.detectors] == ["full", "short"]
    full, short = _spy(core.detectors[0], "detect"), _spy(core.detectors[1], "detect")
    image = _scene(fixtures_dir, "obama_1.jpg", 160)
    for i in range(7):
        pipeline.process(Frame(image, now + timedelta(seconds=i / 30), i, source_time_s=i / 30))
    assert len(full) == 7 and len(short) == 2  # frames 0 and 6: the periodic pass
    empty = np.full((480, 640, 3), 90, np.uint8)
    for i in range(7, 10):
        pipeline.process(Frame(empty, now + timedelta(seconds=i / 30), i, source_time_s=i / 30))
    assert len(full) == 10 and len(short) == 5  # the full range found nothing: the short range looked too


def test_a_close_face_the_full_range_misses_is_found_by_the_short_range_between_passes(devset):
    """Positive control for the fallback: a tight, pre-aligned face filling the image, which the
    full range misses (the one such dev-set photo) and the short range finds."""
    core = RecognitionCore.load(detector="both", threads=1)
    image = read_image(devset / "Bradley_Cooper" / "facenet_pytorch_test_images_aligned_1.png")
    assert core.detectors[0].detect(image) == [] and len(core.detectors[1].detect(image)) == 1
    assert len(core.detect(image, every_range=False)) == 1


def test_recordings_are_searched_frame_by_frame_and_live_capture_is_scheduled(tmp_path, fixtures_dir):
    site = provision_site(tmp_path / "site", fixtures_dir / "faces", watchlist=[("WL-0002", "missing_vulnerable", "biden_1.jpg")], file_mode="every_frame")
    config = load_config(site.config_path)
    assert _schedule(config).every_s == 0.0  # a folder of stills (RFR)
    live = replace(config, capture=replace(config.capture, source="/dev/video0"))
    assert _schedule(live).every_s == config.pipeline.recognise_every_s == 0.2

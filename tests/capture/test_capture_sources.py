"""Capture sources on real files: MJPG videos written with cv2.VideoWriter and real image folders."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_agent.capture import CaptureError, Frame, FrameSource, open_source
from edge_agent.capture.factory import with_credentials
from edge_agent.capture.opencv import OpenCVSource, redact_url
from edge_agent.capture.replay import ImageDirectorySource, VideoReplaySource


def write_video(path: Path, n: int, fps: float, size=(160, 120)) -> Path:
    """Frame i is a flat grey of level 10 + 4*i with a white square whose x position encodes i."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, size)
    assert writer.isOpened()
    for i in range(n):
        img = np.full((size[1], size[0], 3), 10 + 4 * i, np.uint8)
        img[10:30, 10:30] = (0, 0, 255)  # red in BGR: checks channel order survives
        writer.write(img)
    writer.release()
    return path


def level(frame: Frame) -> int:
    return round((float(frame.image[60:, 60:].mean()) - 10) / 4)


class FixedClock:
    def __init__(self) -> None:
        self.t = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.t += timedelta(milliseconds=1)
        return self.t


def test_frame_rejects_non_bgr_and_naive_time():
    now = datetime.now(UTC)
    with pytest.raises(CaptureError):
        Frame(np.zeros((4, 4), np.uint8), now, 0)
    with pytest.raises(CaptureError):
        Frame(np.zeros((4, 4, 3), np.float32), now, 0)
    with pytest.raises(CaptureError):
        Frame(np.zeros((4, 4, 3), np.uint8), datetime.now(), 0)
    assert Frame(np.zeros((4, 6, 3), np.uint8), now, 0).size == (6, 4)


def test_video_file_every_frame_in_order(tmp_path):
    video = write_video(tmp_path / "clip.avi", 20, 10.0)
    clock = FixedClock()
    with open_source(str(video), clock=clock) as src:
        assert isinstance(src, VideoReplaySource)
        assert isinstance(src, FrameSource)
        assert src.fps == pytest.approx(10.0)
        assert src.size == (160, 120)
        frames = list(src.frames())
    assert [f.index for f in frames] == list(range(20))
    assert [level(f) for f in frames] == list(range(20))
    assert [f.source_time_s for f in frames] == pytest.approx([i / 10 for i in range(20)])
    b, g, r = frames[0].image[20, 20]
    assert r > 200 and b < 60 and g < 60, "BGR order preserved"
    assert all(f.captured_at.tzinfo is UTC for f in frames)
    assert frames[-1].captured_at > frames[0].captured_at


def test_video_replay_sampled(tmp_path):
    video = write_video(tmp_path / "clip.avi", 20, 10.0)
    with VideoReplaySource(video, sample_fps=5) as src:
        frames = list(src.frames())
    assert [f.index for f in frames] == list(range(0, 20, 2))
    assert [level(f) for f in frames] == list(range(0, 20, 2))
    assert frames[3].source_time_s == pytest.approx(0.6)


def test_paced_file_runs_at_native_speed(tmp_path):
    video = write_video(tmp_path / "clip.avi", 10, 20.0)
    with OpenCVSource(str(video), "file", pace=True) as src:
        t0 = time.monotonic()
        n = sum(1 for _ in src.frames())
        elapsed = time.monotonic() - t0
    assert n == 10
    assert elapsed >= 9 / 20 - 0.02


def test_live_source_keeps_only_latest_frame_with_slow_consumer(tmp_path):
    total = 60
    video = write_video(tmp_path / "clip.avi", total, 100.0)
    received: list[Frame] = []
    max_pending = 0
    with open_source(str(video), file_mode="live") as src:
        assert isinstance(src, OpenCVSource) and src.live
        for frame in src.frames():
            max_pending = max(max_pending, src.pending)
            received.append(frame)
            time.sleep(0.05)  # pipeline 5x slower than the "camera"
            max_pending = max(max_pending, src.pending)
        dropped = src.dropped
    indices = [f.index for f in received]
    assert indices == sorted(set(indices)), "frames never go backwards or repeat"
    assert dropped > 0
    assert len(received) < total / 2
    assert len(received) + dropped == total, "every frame was either delivered or counted as dropped"
    assert max_pending <= 1
    assert indices[-1] == total - 1, "the newest frame is delivered last"
    assert [level(f) for f in received] == indices


def test_directory_replay_natural_order_and_skips_corrupt(tmp_path, caplog):
    for i in (10, 2, 1):
        img = np.full((40, 50, 3), 10 + 4 * i, np.uint8)
        cv2.imwrite(str(tmp_path / f"frame{i}.png"), img)
    cv2.imwrite(str(tmp_path / "grey5.jpg"), np.full((40, 50), 30, np.uint8))
    (tmp_path / "frame3.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (tmp_path / "notes.txt").write_text("not an image")
    with caplog.at_level(logging.WARNING):
        with open_source(str(tmp_path)) as src:
            assert isinstance(src, ImageDirectorySource)
            frames = list(src.frames())
    names = [src.path_of(f.index).name for f in frames]
    assert names == ["frame1.png", "frame2.png", "frame10.png", "grey5.jpg"]
    assert [p.name for p in src.skipped] == ["frame3.jpg"]
    assert "frame3.jpg" in caplog.text
    assert all(f.image.shape == (40, 50, 3) and f.source_time_s is None for f in frames)
    assert round(float(frames[1].image.mean())) == 18


def test_directory_without_images_is_an_error(tmp_path):
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(CaptureError, match="no image files"):
        open_source(str(tmp_path))


@pytest.mark.parametrize(
    "spec, message",
    [
        ("/dev/video97", "does not exist"),
        ("usb:x", "bad camera number"),
        ("no/such/file.avi", "not a camera, stream, directory or existing file"),
    ],
)
def test_bad_specs_name_the_problem(spec, message):
    with pytest.raises(CaptureError, match=message) as info:
        open_source(spec)
    assert info.value.hint


def test_unopenable_device_and_corrupt_video(tmp_path):
    with pytest.raises(CaptureError, match="cannot open device /dev/null") as info:
        open_source("/dev/null")
    assert "video" in info.value.hint
    bad = tmp_path / "bad.avi"
    bad.write_bytes(b"RIFF" + bytes(200))
    with pytest.raises(CaptureError, match="cannot decode video"):
        open_source(str(bad))


def test_stream_credentials_come_from_file_and_never_show_in_errors():
    url = with_credentials("rtsp://cam.local:554/stream1", "officer:p@ss:w/rd\n")
    assert url == "rtsp://officer:p%40ss%3Aw%2Frd@cam.local:554/stream1"
    assert redact_url(url) == "rtsp://***@cam.local:554/stream1"
    with pytest.raises(CaptureError):
        with_credentials("rtsp://cam/x", "no-colon")


def test_stream_reconnects_after_dropout_then_gives_up(tmp_path):
    """A stream whose end is reached reconnects; once the source is gone the consumer gets the error."""
    video = write_video(tmp_path / "cam.avi", 10, 100.0)
    src = OpenCVSource(str(video), "stream", reconnect_attempts=2, reconnect_delay_s=0.01)
    received = []
    with pytest.raises(CaptureError, match=r"stopped delivering frames \(2 reconnect attempts failed\)") as info:
        with src:
            for frame in src.frames():
                received.append(frame)
                if len(received) == 3:
                    video.unlink()  # the camera goes away for good
                time.sleep(0.02)
    assert received, "frames flowed before the failure"
    assert "systemd restarts" in info.value.hint


def test_open_source_from_validated_config(tmp_path):
    from edge_agent.agent.config import load_config

    video = write_video(tmp_path / "demo.avi", 6, 50.0)
    creds = tmp_path / "creds"
    creds.write_text("user:pw\n")
    creds.chmod(0o600)
    cfg_file = tmp_path / "agent.toml"
    cfg_file.write_text(
        '[device]\nid = "d1"\nsigning_key = "k"\nwatchlist_key = "k"\nauthority_public_key = "k"\n'
        '[hardware]\nprofile = "x86-dev"\n'
        '[capture]\nsource = "demo.avi"\nfile_mode = "live"\n'
    )
    cfg = load_config(cfg_file, check_files=False)
    assert cfg.capture.source == str(video), "a relative file source resolves against the config's folder"
    with open_source(cfg.capture) as src:
        assert isinstance(src, OpenCVSource) and src.live
        assert len(list(src.frames())) + src.dropped == 6
    sampled = cfg.capture.__class__(**{**cfg.capture.__dict__, "source": str(video), "file_mode": "every_frame", "sample_fps": 25.0})
    with open_source(sampled) as src:
        assert [f.index for f in src.frames()] == [0, 2, 4]

"""The Pi camera source against a fake picamera2 module: the true hardware boundary."""

from __future__ import annotations

import sys
import threading
import types

import numpy as np
import pytest

from edge_agent.capture import open_source
from edge_agent.capture.picamera import PiCameraSource, to_bgr
from edge_agent.errors import EdgeAgentError


class FakePicamera2:
    """Mimics picamera2: RGB888 arrays are laid out [B, G, R] per pixel (Picamera2 manual)."""

    instances: list[FakePicamera2] = []

    def __init__(self, camera_num=0):
        self.camera_num = camera_num
        self.calls: list[str] = []
        self.config = None
        self.count = 0
        self.lock = threading.Lock()
        FakePicamera2.instances.append(self)

    def create_video_configuration(self, main, controls=None, **kw):
        self.calls.append("create_video_configuration")
        return {"main": dict(main), "controls": dict(controls or {})}

    def configure(self, config):
        self.calls.append("configure")
        self.config = config

    def start(self):
        self.calls.append("start")

    def capture_array(self, name="main"):
        assert name == "main"
        with self.lock:
            self.count += 1
            n = self.count
        w, h = self.config["main"]["size"]
        arr = np.zeros((h, w, 3), np.uint8)
        arr[:, :, 0] = 200  # B
        arr[:, :, 1] = 100  # G
        arr[:, :, 2] = n % 256  # R carries the sensor frame number
        return arr

    def stop(self):
        self.calls.append("stop")

    def close(self):
        self.calls.append("close")


@pytest.fixture
def fake_picamera2(monkeypatch):
    FakePicamera2.instances.clear()
    module = types.ModuleType("picamera2")
    module.Picamera2 = FakePicamera2
    monkeypatch.setitem(sys.modules, "picamera2", module)
    return FakePicamera2


def test_picamera_frames_are_bgr_and_configured(fake_picamera2):
    with open_source("picamera:1", width=64, height=48, fps=25) as src:
        assert isinstance(src, PiCameraSource)
        frames = []
        for frame in src.frames():
            frames.append(frame)
            if len(frames) == 5:
                break
    cam = fake_picamera2.instances[0]
    assert cam.camera_num == 1
    assert cam.config == {"main": {"size": (64, 48), "format": "RGB888"}, "controls": {"FrameRate": 25.0}}
    assert cam.calls[:3] == ["create_video_configuration", "configure", "start"]
    assert cam.calls[-2:] == ["stop", "close"]
    first = frames[0].image
    assert first.shape == (48, 64, 3) and first.dtype == np.uint8
    assert tuple(first[0, 0][:2]) == (200, 100), "B and G channels land where OpenCV expects them"
    indices = [f.index for f in frames]
    assert indices == sorted(set(indices))
    assert all(f.source_time_s is None for f in frames)


def test_picamera_bgr888_and_xrgb_are_converted():
    rgb_order = np.array([[[1, 2, 3]]], np.uint8)  # picamera2 BGR888 = [R, G, B]
    assert to_bgr(rgb_order, "BGR888").tolist() == [[[3, 2, 1]]]
    padded = np.array([[[7, 8, 9, 255]]], np.uint8)  # XRGB8888 = [B, G, R, 255]
    assert to_bgr(padded, "XRGB8888").tolist() == [[[7, 8, 9]]]
    assert to_bgr(np.array([[[4, 5, 6]]], np.uint8), "RGB888").tolist() == [[[4, 5, 6]]]


def test_missing_picamera2_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "picamera2", None)  # import picamera2 -> ImportError
    with pytest.raises(EdgeAgentError) as info:
        open_source("picamera:0")
    assert info.value.message == "picamera2 is not installed: pip install edge_agent[pi] on a Raspberry Pi"
    assert "usb:0" in info.value.hint


def test_camera_start_failure_is_explained(monkeypatch):
    class Broken(FakePicamera2):
        def start(self):
            raise RuntimeError("Camera __init__ sequence did not complete.")

    module = types.ModuleType("picamera2")
    module.Picamera2 = Broken
    monkeypatch.setitem(sys.modules, "picamera2", module)
    with pytest.raises(EdgeAgentError, match="cannot start Pi camera 0: Camera __init__") as info:
        open_source("picamera")
    assert "rpicam-hello" in info.value.hint

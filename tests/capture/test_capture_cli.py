"""``edge-agent capture probe`` on a real video file and a bad source."""

from __future__ import annotations

import cv2
import numpy as np

from edge_agent.cli.main import main


def test_capture_probe_counts_frames_and_writes_nothing(tmp_path, capsys):
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"MJPG"), 25.0, (96, 64))
    for i in range(12):
        writer.write(np.full((64, 96, 3), i * 10, np.uint8))
    writer.release()
    before = sorted(tmp_path.iterdir())
    assert main(["capture", "probe", str(video), "--frames", "10"]) == 0
    out = capsys.readouterr().out
    assert "10 frames of 96x64" in out and "source reports 25.0 fps" in out
    assert sorted(tmp_path.iterdir()) == before, "probing never writes frames"


def test_capture_probe_bad_source(capsys):
    assert main(["capture", "probe", "usb:x"]) == 2
    assert "bad camera number" in capsys.readouterr().err

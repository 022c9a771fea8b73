"""Choose a frame source from one spec string, so config files and the CLI name sources the same way.

Specs:
  ``picamera`` / ``picamera:N``        CSI camera N through picamera2
  ``usb:N`` / ``/dev/videoN``          USB/V4L2 camera by index or device path
  ``rtsp://...`` / ``rtsps://`` / ``http(s)://``   network stream
  a directory                         every image in it (retrospective search)
  a video file                        every frame in order, or rehearsed as a live camera
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from edge_agent.capture.frame import CaptureError, Clock, FrameSource, utc_now
from edge_agent.capture.opencv import OpenCVSource
from edge_agent.capture.replay import ImageDirectorySource, VideoReplaySource

FileMode = Literal["every_frame", "live"]
STREAM_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://")


def with_credentials(url: str, credentials: str) -> str:
    """Insert ``user:password`` (read from a 0600 file, never from config) into a stream URL."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise CaptureError(f"not a URL: {url}", "use rtsp://host/path")
    user, colon, password = credentials.strip().partition(":")
    if not user or not colon:
        raise CaptureError("stream credentials file must hold one line 'user:password'", "rewrite the file")
    return f"{scheme}://{quote(user, safe='')}:{quote(password, safe='')}@{rest}"


def open_source(
    spec: str | Any,
    *,
    width: int | None = None,
    height: int | None = None,
    fps: float | None = None,
    file_mode: FileMode = "every_frame",
    sample_fps: float | None = None,
    pixel_format: str = "RGB888",
    credentials: str | None = None,
    clock: Clock = utc_now,
) -> FrameSource:
    """Open the source named by ``spec`` (a string, or a config object with a ``source`` field).

    A config object (``edge_agent.agent.config.CaptureConfig``) supplies width/height/fps,
    file_mode, sample_fps and stream credentials itself.
    """
    if not isinstance(spec, str):
        cfg = spec
        creds = None
        if getattr(cfg, "credentials_file", None) is not None:
            creds = Path(cfg.credentials_file).read_text(encoding="utf-8")
        return open_source(
            cfg.source,
            width=cfg.width,
            height=cfg.height,
            fps=cfg.fps,
            file_mode=cfg.file_mode,
            sample_fps=cfg.sample_fps,
            pixel_format=cfg.pixel_format,
            credentials=creds,
            clock=clock,
        )
    text = spec.strip()
    if text == "picamera" or text.startswith("picamera:"):
        from edge_agent.capture.picamera import PiCameraSource

        num = _int_after(text, "picamera:", default=0)
        return PiCameraSource(num, width=width or 1280, height=height or 720, fps=fps, pixel_format=pixel_format, clock=clock)
    if text.startswith("usb:"):
        return OpenCVSource(_int_after(text, "usb:", 0), "device", width=width, height=height, fps=fps, clock=clock)
    if text.startswith("/dev/"):
        if not Path(text).exists():
            raise CaptureError(f"camera device {text} does not exist", "list cameras with: v4l2-ctl --list-devices")
        return OpenCVSource(text, "device", width=width, height=height, fps=fps, clock=clock)
    if text.lower().startswith(STREAM_SCHEMES):
        url = with_credentials(text, credentials) if credentials else text
        return OpenCVSource(url, "stream", width=width, height=height, fps=fps, clock=clock)
    path = Path(text)
    if path.is_dir():
        return ImageDirectorySource(path, clock=clock)
    if path.is_file():
        if file_mode == "live":
            return OpenCVSource(str(path), "file", live=True, pace=True, clock=clock)
        if file_mode != "every_frame":
            raise CaptureError(f"unknown file_mode {file_mode!r}", "use 'every_frame' or 'live'")
        return VideoReplaySource(path, sample_fps=sample_fps, clock=clock)
    raise CaptureError(
        f"capture source {text!r} is not a camera, stream, directory or existing file",
        "use picamera:0, usb:0, /dev/video0, rtsp://host/path, a video file or a folder of images",
    )


def is_file_source(spec: str) -> bool:
    """Whether a source spec names a file or folder (a recording), not a camera or stream."""
    text = spec.strip()
    return not (text.startswith(("picamera", "usb:", "/dev/")) or text.lower().startswith(STREAM_SCHEMES))


def is_live(spec: str, file_mode: str = "every_frame") -> bool:
    """Whether a source spec is live capture (camera, stream, or a file rehearsed as a camera) rather
    than a recording searched after the event; the deployment's mode authorises one or the other."""
    if not is_file_source(spec):
        return True
    return Path(spec.strip()).is_file() and file_mode == "live"


def _int_after(text: str, prefix: str, default: int) -> int:
    rest = text[len(prefix):] if text.startswith(prefix) else ""
    if not rest:
        return default
    if not rest.isdigit():
        raise CaptureError(f"bad camera number in {text!r}", f"write {prefix}0, {prefix}1, ...")
    return int(rest)

"""Frame sources: Pi camera, USB/V4L2, RTSP, video files and image folders behind one interface."""

from edge_agent.capture.factory import open_source
from edge_agent.capture.frame import CaptureError, Frame, FrameSource

__all__ = ["CaptureError", "Frame", "FrameSource", "open_source"]

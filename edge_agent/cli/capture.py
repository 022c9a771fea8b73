"""``edge-agent capture probe SPEC``: check a camera or stream works, at what size and rate.

It only counts frames: nothing is written to disk or shown (frames may contain faces of passers-by).
"""

from __future__ import annotations

import argparse
import time

from edge_agent.capture import open_source
from edge_agent.cli.progress import Progress


def register(subparsers: argparse._SubParsersAction) -> None:
    capture = subparsers.add_parser("capture", help="camera and stream diagnostics")
    sub = capture.add_subparsers(dest="capture_command", metavar="ACTION", required=True)
    probe = sub.add_parser("probe", help="read frames from a source and report size, frame rate and drops")
    probe.add_argument("source", help="picamera:0, usb:0, /dev/video0, rtsp://..., a video file or an image folder")
    probe.add_argument("--frames", type=int, default=60, help="frames to read (default 60)")
    probe.add_argument("--width", type=int, default=None)
    probe.add_argument("--height", type=int, default=None)
    probe.add_argument("--fps", type=float, default=None)
    probe.set_defaults(func=cmd_probe)


def cmd_probe(args: argparse.Namespace) -> int:
    count = 0
    size = None
    t0 = time.monotonic()
    with open_source(args.source, width=args.width, height=args.height, fps=args.fps) as src, \
            Progress(args.frames, "frames") as bar:
        for frame in src.frames():
            size = frame.size
            count += 1
            bar.advance()
            if count >= args.frames:
                break
        elapsed = max(time.monotonic() - t0, 1e-9)
        dropped = src.dropped
        reported = src.fps
    if count == 0 or size is None:
        print(f"{args.source}: no frames")
        return 1
    print(f"{args.source}: {count} frames of {size[0]}x{size[1]} in {elapsed:.2f} s = {count / elapsed:.1f} fps "
          f"(source reports {reported or 'unknown'} fps), {dropped} stale frames dropped")
    return 0

"""Recognition-core commands: ``detect`` and ``compare``.

``compare`` is a 1:1 tool for two files a person supplies: it searches no watchlist and proves no
identity. Searching against a watchlist needs a deployment's authority: ``edge-agent search``
(cli/search.py).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from edge_agent.errors import EdgeAgentError, ImageError
from edge_agent.vision.core import DEFAULT_DETECTOR, DETECTOR_CHOICES, Face, RecognitionCore
from edge_agent.vision.enrolment import enrol_image
from edge_agent.vision.image_io import read_image
from edge_agent.vision.tiling import TileGrid

COMPARE_NOTE = (
    "This is a 1:1 comparison of the two files you supplied, not a watchlist search, and it is not evidence of identity "
    "(a watchlist search needs a deployment: edge-agent search)."
)


def register(subparsers: argparse._SubParsersAction) -> None:
    detect = subparsers.add_parser("detect", help="find faces in an image: boxes, landmarks, quality verdicts")
    detect.add_argument("image", type=Path)
    detect.add_argument("--draw", type=Path, metavar="OUT.png", help="write the image with boxes and landmarks drawn")
    add_model_options(detect)
    detect.set_defaults(func=cmd_detect)

    compare = subparsers.add_parser(
        "compare", help="1:1: cosine similarity between the subjects of two images you supply (not a watchlist search, not evidence of identity)"
    )
    compare.add_argument("image_a", type=Path)
    compare.add_argument("image_b", type=Path)
    add_model_options(compare)
    compare.set_defaults(func=cmd_compare)


def add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--detector", choices=DETECTOR_CHOICES, default=DEFAULT_DETECTOR, help=f"BlazeFace range(s) to run (default {DEFAULT_DETECTOR})")
    parser.add_argument("--models", type=Path, default=None, help="models folder (default: the bundled models)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tiles", default="1x1", metavar="COLSxROWS",
                        help="also detect on overlapping tiles, for distant faces in HD footage (2x2 for 720p, 3x2 for 1080p, or auto by frame size; default 1x1)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def load_core(args: argparse.Namespace) -> RecognitionCore:
    return RecognitionCore.load(args.models, detector=args.detector, threads=args.threads, tiles=TileGrid.parse(args.tiles))


def face_record(face: Face) -> dict:
    d = face.detection
    q = face.quality
    return {
        "box": [round(v, 1) for v in d.box],
        "score": round(d.score, 4),
        "keypoints": np.round(d.keypoints, 1).tolist(),
        "quality": {
            "ok": q.ok, "reasons": list(q.reasons), "warnings": list(q.warnings), "quality": round(q.quality, 3),
            "face_px": round(q.face_px, 1), "blur": round(q.blur, 1), "yaw": round(q.yaw, 3), "pitch": round(q.pitch, 3),
            "presence": None if q.presence is None else round(q.presence, 3),
        },
    }


def cmd_detect(args: argparse.Namespace) -> int:
    image = read_image(args.image)
    faces = load_core(args).faces(image)
    if args.draw:
        _draw(image, faces, args.draw)
    if args.json:
        print(json.dumps({"image": str(args.image), "faces": [face_record(f) for f in faces]}, indent=2))
        return 0
    print(f"{args.image}: {len(faces)} face(s)")
    for i, face in enumerate(faces, 1):
        r = face_record(face)
        verdict = "ok" if face.quality.ok else "rejected: " + ", ".join(face.quality.reasons)
        print(f"  face {i}: box={r['box']} score={r['score']:.2f} quality {verdict} (blur {r['quality']['blur']}, yaw {r['quality']['yaw']})")
    return 0


def _draw(image: np.ndarray, faces: list[Face], out: Path) -> None:
    canvas = image.copy()
    for face in faces:
        colour = (0, 200, 0) if face.quality.ok else (0, 0, 230)
        x1, y1, x2, y2 = (int(round(v)) for v in face.detection.box)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, 2)
        for x, y in face.detection.keypoints:
            cv2.circle(canvas, (int(x), int(y)), 3, (255, 200, 0), -1)
        cv2.putText(canvas, f"{face.detection.score:.2f}", (x1, max(12, y1 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1)
    if not cv2.imwrite(str(out), canvas):
        raise ImageError(f"cannot write {out}", "check the folder exists and the extension is .png or .jpg")


def cmd_compare(args: argparse.Namespace) -> int:
    core = load_core(args)
    templates = []
    for path in (args.image_a, args.image_b):
        enrolment = enrol_image(core, read_image(path))
        if not enrolment.ok or enrolment.template is None:
            raise EdgeAgentError(f"{path}: {enrolment.reason} ({enrolment.detail})", "use a photo with one clear, frontal face")
        templates.append(enrolment.template)
    score = float(np.dot(templates[0], templates[1]))
    if args.json:
        print(json.dumps({"a": str(args.image_a), "b": str(args.image_b), "cosine": round(score, 6), "comparison": "1:1", "note": COMPARE_NOTE}))
    else:
        print(f"cosine {score:.4f}\n{COMPARE_NOTE}")
    return 0

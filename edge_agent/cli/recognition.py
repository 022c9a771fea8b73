"""Recognition-core commands: ``detect``, ``compare`` and retrospective ``search``.

``search`` prints ranked candidate lists for an investigator to review, never a stated identity.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge_agent.cli.progress import Progress
from edge_agent.errors import EdgeAgentError, ImageError
from edge_agent.vision.core import DEFAULT_DETECTOR, DETECTOR_CHOICES, Face, RecognitionCore
from edge_agent.vision.enrolment import enrol_image
from edge_agent.vision.image_io import is_image_file, read_image
from edge_agent.vision.tiling import TileGrid
from edge_agent.watchlist.gallery import Gallery

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm")


def register(subparsers: argparse._SubParsersAction) -> None:
    detect = subparsers.add_parser("detect", help="find faces in an image: boxes, landmarks, quality verdicts")
    detect.add_argument("image", type=Path)
    detect.add_argument("--draw", type=Path, metavar="OUT.png", help="write the image with boxes and landmarks drawn")
    _add_model_options(detect)
    detect.set_defaults(func=cmd_detect)

    compare = subparsers.add_parser("compare", help="cosine similarity between the main faces of two images")
    compare.add_argument("image_a", type=Path)
    compare.add_argument("image_b", type=Path)
    _add_model_options(compare)
    compare.set_defaults(func=cmd_compare)

    search = subparsers.add_parser(
        "search", help="retrospective search: ranked candidates for each face in an image, a folder or a video"
    )
    search.add_argument("input", type=Path, help="an image, a folder of images, or a video file")
    search.add_argument("--gallery", type=Path, required=True, help="folder of reference images: SUBJECT/IMAGE or SUBJECT.jpg")
    search.add_argument("--top", type=int, default=5, help="candidates listed per face (default 5)")
    search.add_argument("--min-score", type=float, default=None, help="omit candidates scoring below this")
    search.add_argument("--sample-fps", type=float, default=5.0, help="frames per second searched in a video (default 5)")
    _add_model_options(search)
    search.set_defaults(func=cmd_search)


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--detector", choices=DETECTOR_CHOICES, default=DEFAULT_DETECTOR, help=f"BlazeFace range(s) to run (default {DEFAULT_DETECTOR})")
    parser.add_argument("--models", type=Path, default=None, help="models folder (default: the bundled models)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tiles", default="1x1", metavar="COLSxROWS",
                        help="also detect on overlapping tiles, for distant faces in HD footage (2x2 for 720p, 3x2 for 1080p, or auto by frame size; default 1x1)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def _core(args: argparse.Namespace) -> RecognitionCore:
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
    faces = _core(args).faces(image)
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
    core = _core(args)
    templates = []
    for path in (args.image_a, args.image_b):
        enrolment = enrol_image(core, read_image(path))
        if not enrolment.ok or enrolment.template is None:
            raise EdgeAgentError(f"{path}: {enrolment.reason} ({enrolment.detail})", "use a photo with one clear, frontal face")
        templates.append(enrolment.template)
    score = float(np.dot(templates[0], templates[1]))
    if args.json:
        print(json.dumps({"a": str(args.image_a), "b": str(args.image_b), "cosine": round(score, 6)}))
    else:
        print(f"cosine {score:.4f}")
    return 0


def load_reference_gallery(core: RecognitionCore, folder: Path) -> tuple[Gallery, list[str]]:
    """SUBJECT/IMAGE (several images per subject allowed) or flat SUBJECT.jpg files; returns warnings
    for images that could not be enrolled."""
    if not folder.is_dir():
        raise EdgeAgentError(f"gallery {folder} is not a folder", "give a folder of reference images")
    entries = [(p.parent.name if p.parent != folder else p.stem, p) for p in sorted(folder.rglob("*")) if p.is_file() and is_image_file(p)]
    if not entries:
        raise EdgeAgentError(f"gallery {folder} holds no images", "put reference images in SUBJECT/IMAGE.jpg")
    templates, refs, warnings = [], [], []
    with Progress(len(entries), "enrolling gallery") as bar:
        for subject, path in entries:
            bar.advance()
            try:
                enrolment = enrol_image(core, read_image(path))
            except ImageError as exc:
                warnings.append(f"{path}: {exc}")
                continue
            if enrolment.ok and enrolment.template is not None:
                templates.append(enrolment.template)
                refs.append(subject)
            else:
                warnings.append(f"{path}: not enrolled: {enrolment.reason} ({enrolment.detail})")
    if not templates:
        raise EdgeAgentError(f"no usable reference face in {folder}", "use clear, frontal, single-face photos")
    return Gallery(np.stack(templates), refs), warnings


@dataclass(frozen=True)
class SearchFrame:
    image: np.ndarray
    label: str  # file name or video time
    index: int
    time_s: float | None


def search_frames(path: Path, sample_fps: float) -> tuple[Iterator[SearchFrame], int | None]:
    """Frames of an image, a folder or a video, with their count when it is known (for the progress bar)."""
    from edge_agent.capture.replay import ImageDirectorySource, VideoReplaySource

    if path.is_dir():
        source = ImageDirectorySource(path)
        return (SearchFrame(f.image, source.path_of(f.index).name, f.index, None) for f in source.frames()), len(source.paths)
    if path.suffix.lower() in VIDEO_SUFFIXES:
        video = VideoReplaySource(path, sample_fps=sample_fps)
        total = getattr(video, "expected_frames", None)
        return (SearchFrame(f.image, _timestamp(f.source_time_s or 0.0), f.index, f.source_time_s) for f in video.frames()), total
    return iter([SearchFrame(read_image(path), path.name, 0, None)]), 1


def _timestamp(seconds: float) -> str:
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{int(h):02d}:{int(m):02d}:{s:06.3f}"


def cmd_search(args: argparse.Namespace) -> int:
    core = _core(args)
    gallery, warnings = load_reference_gallery(core, args.gallery)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    frames, total = search_frames(args.input, args.sample_fps)
    results = []
    with Progress(total, "searching") as bar:
        for frame in frames:
            bar.advance()
            for n, face in enumerate(core.faces(frame.image), 1):
                record = {"frame": frame.label, "frame_index": frame.index, "time_s": frame.time_s, "face": n, **face_record(face)}
                if face.embedding is None:
                    record["candidates"] = []
                else:
                    candidates = gallery.search(face.embedding, args.top)
                    record["candidates"] = [
                        {"rank": i, "subject_ref": c.subject_ref, "score": round(c.score, 4)}
                        for i, c in enumerate(candidates, 1)
                        if args.min_score is None or c.score >= args.min_score
                    ]
                results.append(record)
    if args.json:
        print(json.dumps({"input": str(args.input), "gallery_templates": len(gallery), "results": results}, indent=2))
        return 0
    print(f"Candidate lists for review ({len(gallery)} reference templates). These are possible matches, not identifications.")
    for r in results:
        head = f"{r['frame']} face {r['face']} box={r['box']}"
        if not r["quality"]["ok"]:
            print(f"{head}: not searched ({', '.join(r['quality']['reasons'])})")
            continue
        print(head)
        for c in r["candidates"]:
            print(f"  {c['rank']}. {c['subject_ref']:<24} {c['score']:.3f}")
    return 0

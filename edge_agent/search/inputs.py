"""What a search reads: one still, a folder of stills, or a video, and the SHA-256 that names it in
the audit log (so the record says exactly which file was searched, not only its name)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_agent.errors import ImageError

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm")
IMAGE, FOLDER, VIDEO = "image", "folder", "video"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class SearchInput:
    path: Path
    kind: str  # IMAGE, FOLDER or VIDEO
    sha256: str  # of the file; for a folder, of its manifest (``folder_manifest``)
    files: int  # image files in a folder; 1 otherwise


@dataclass(frozen=True)
class SearchFrame:
    image: np.ndarray
    file: str  # the still's file name, or the video's
    index: int
    time_s: float | None  # position in a video; None for stills


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def folder_manifest(paths: list[Path]) -> bytes:
    """One line per image searched, in search order: ``<sha256 of the file> <file name>\\n``."""
    return b"".join(f"{file_sha256(p)} {p.name}\n".encode() for p in paths)


def open_input(path: Path) -> SearchInput:
    """Classify and fingerprint ``path``; an ImageError naming the problem when it cannot be searched."""
    from edge_agent.capture.frame import CaptureError
    from edge_agent.capture.replay import ImageDirectorySource
    from edge_agent.vision.image_io import is_image_file

    path = Path(path)
    if path.is_dir():
        try:
            paths = ImageDirectorySource(path).paths
        except CaptureError as exc:  # no image files in it
            raise ImageError(f"cannot search folder {path}: {exc.message}", exc.hint) from None
        return SearchInput(path, FOLDER, hashlib.sha256(folder_manifest(paths)).hexdigest(), len(paths))
    if not path.is_file():
        raise ImageError(f"search input {path} not found", "give an image, a folder of images or a video file")
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return SearchInput(path, VIDEO, file_sha256(path), 1)
    if not is_image_file(path):
        raise ImageError(f"{path} is neither an image nor a video this search reads",
                         f"give a still (.jpg, .png, ...), a folder of them, or a video ({', '.join(VIDEO_SUFFIXES)})")
    return SearchInput(path, IMAGE, file_sha256(path), 1)


def read_frames(search_input: SearchInput, sample_fps: float) -> tuple[Iterator[SearchFrame], int | None]:
    """The frames to search, with their count when it is known (for the progress bar)."""
    from edge_agent.capture.replay import ImageDirectorySource, VideoReplaySource
    from edge_agent.vision.image_io import read_image

    path = search_input.path
    if search_input.kind == FOLDER:
        source = ImageDirectorySource(path)
        return (SearchFrame(f.image, source.path_of(f.index).name, f.index, None) for f in source.frames()), len(source.paths)
    if search_input.kind == VIDEO:
        video = VideoReplaySource(path, sample_fps=sample_fps)
        return (SearchFrame(f.image, path.name, f.index, f.source_time_s or 0.0) for f in video.frames()), None
    return iter([SearchFrame(read_image(path), path.name, 0, None)]), 1

"""Looking for traces of faces that should have left none (policing.md 12): the leak scans of the
agent's and the search's privacy tests, with the positive controls that show they can fail."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

JPEG_MAGIC = b"\xff\xd8\xff"
def copy_faces(dest: Path, sources: list[Path]) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for i, src in enumerate(sources):
        shutil.copy(src, dest / f"{i:04d}{src.suffix.lower()}")
    return dest


def trace_needles(templates: list[np.ndarray], crop_shapes: set[tuple[int, int]]) -> list[bytes]:
    needles = []
    for t in templates:
        needles.append(t[:4].astype("<f4").tobytes())  # raw float32
        needles.append(t[:4].astype("<f8").tobytes())  # raw float64
        needles.append(t[:6].astype("<f2").tobytes())  # raw float16
        # Printed arrays (any layout): the two largest components' leading digits.
        for v in t[np.argsort(-np.abs(t))[:2]]:
            needles.append(f"{abs(float(v)):.9f}"[:8].encode())
    for h, w in crop_shapes:
        needles += [f"{w}x{h}".encode(), f"({h}, {w}, 3)".encode()]
    needles += [b"112x112", b"(112, 112, 3)", JPEG_MAGIC]
    return needles


def find_traces(blobs: dict[str, bytes], needles: list[bytes]) -> list[str]:
    return [f"{name}: {needle[:24]!r}" for name, blob in blobs.items() for needle in needles if needle in blob]


def files_under(root: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in root.rglob("*") if p.is_file()} if root.exists() else {}

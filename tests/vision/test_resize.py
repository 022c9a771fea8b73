"""The detector's input and the demo's scenes are the same bytes on every CPU (vision/resize.py).

The hashes were recorded on x86-64 (OpenCV 5.0, AVX-512) and check-arm64.sh runs this file on
arm64 (NEON): with OpenCV's INTER_LINEAR / INTER_AREA the arm64 bytes differed from these
(one grey level in places), which moved embeddings to cosine 0.989 of x86's. A new OpenCV
release may change the exact resampler; then re-record the hashes on x86 and let CI prove arm64
still gives the same.
"""

from __future__ import annotations

import hashlib

import cv2
import numpy as np

from edge_agent.demo.scenes import portrait_tile
from edge_agent.vision.detector import letterbox
from edge_agent.vision.image_io import read_image
from edge_agent.vision.resize import resize_exact


def _sha(pixels: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(pixels).tobytes()).hexdigest()


def test_detector_inputs_and_demo_tiles_are_the_recorded_bytes(fixtures_dir):
    photo = read_image(fixtures_dir / "faces" / "obama_2.jpg")
    assert _sha(letterbox(photo, 192)[0]) == "56e3a02b1db0befad77e0161dfd9e3fb48cd47b52dcc4c9b3a104788550248ba"
    assert _sha(letterbox(photo, 128)[0]) == "513b6bb11b9f49cbeed1b3791f83a6807bc43e431a420dafdb9fa5f20978f2ba"
    assert _sha(portrait_tile("obama_2.jpg", 97)) == "4ebabcd1e6b4a9494a58884c8b813f6453320bad54cb76e12cbb30623c2b2d77"  # shrunk
    assert _sha(portrait_tile("biden_1.jpg", 560)) == "6c4bb0f141da00aca0e0aee60a399ab6dfac51d1c0f4cb6e199df15d496c1695"  # enlarged


def test_resize_exact_halves_then_takes_one_exact_bilinear_step(fixtures_dir):
    photo = read_image(fixtures_dir / "faces" / "obama_2.jpg")  # 417x800
    out = resize_exact(photo, 100, 192)
    assert out.shape == (192, 100, 3)
    expected = cv2.resize(cv2.pyrDown(cv2.pyrDown(photo)), (100, 192), interpolation=cv2.INTER_LINEAR_EXACT)
    assert np.array_equal(out, expected)
    # The positive control: the SIMD resampler this replaced gives other bytes (here already on x86).
    assert not np.array_equal(letterbox(photo, 192)[0][:, 46:146], cv2.cvtColor(
        cv2.resize(cv2.pyrDown(cv2.pyrDown(photo)), (100, 192), interpolation=cv2.INTER_LINEAR), cv2.COLOR_BGR2RGB))

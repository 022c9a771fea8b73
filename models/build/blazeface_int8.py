"""Quantize the float32-rewritten BlazeFace to int8 with ai-edge-quantizer (static, calibrated).

Run (quantizer venv): models/build/.venv-q/bin/python models/build/blazeface_int8.py full
Input: work/full_fp32.tflite (tflite_fp32.py). Output: models/blazeface_full_range_int8.tflite.

Why:
- int8 weights (per channel) and int8 activations (per tensor) on every body op: ~1.5x faster
  than float and a quarter of the size, all in one XNNPACK partition.
- the score and box head convolutions and their reshapes stay float: the score logits reach
  about -1e4, so int8 logits collapse every anchor to sigmoid 0.5 and the merge explodes.
- calibration on real photos (faces-dev), each letterboxed at full size and also shrunk
  into a 2x2 mosaic, so both close and distant face scales set the activation ranges.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import cv2
import numpy as np
from ai_edge_quantizer import quantizer

BUILD_DIR = Path(__file__).resolve().parent
WORK_DIR = BUILD_DIR / "work"
MODELS_DIR = BUILD_DIR.parent
DEV_FACES_DIR = MODELS_DIR.parent.parent / "shared" / "datasets" / "faces-dev"
INPUT_SIZE = {"full": 192, "short": 128}
HEAD_PATTERN = r".*(classifier|regressor|classificator).*"

INT8_CONFIG = {
    "activation_tensor_config": {"num_bits": 8, "symmetric": False, "granularity": "TENSORWISE", "dtype": "INT"},
    "weight_tensor_config": {"num_bits": 8, "symmetric": True, "granularity": "CHANNELWISE", "dtype": "INT"},
    "compute_precision": "INTEGER",
    "explicit_dequantize": False,
    "skip_checks": False,
    "min_weight_elements": 0,
}
RECIPE = [
    {"regex": ".*", "operation": "*", "algorithm_key": "min_max_uniform_quantize", "op_config": INT8_CONFIG},
    {"regex": HEAD_PATTERN, "operation": "*", "algorithm_key": "no_quantize"},
]


def letterbox_rgb(image_bgr: np.ndarray, size: int) -> np.ndarray:
    """Same preprocessing as the runtime: longer side to size, centred black padding, RGB in [-1, 1]."""
    h, w = image_bgr.shape[:2]
    scale = size / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    resized = cv2.resize(image_bgr, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    canvas = np.zeros((size, size, 3), np.uint8)
    top, left = (size - nh) // 2, (size - nw) // 2
    canvas[top : top + nh, left : left + nw] = resized
    return (cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB).astype(np.float32) / 127.5 - 1.0)[None]


def calibration_images(size: int, limit: int) -> list[np.ndarray]:
    with open(DEV_FACES_DIR / "manifest.csv", newline="") as handle:
        paths = [DEV_FACES_DIR / row["path"] for row in csv.DictReader(handle)]
    images = [img for img in (cv2.imread(str(p)) for p in paths[:limit]) if img is not None]
    samples = [letterbox_rgb(img, size) for img in images]
    for start in range(0, len(images) - 3, 4):  # 2x2 mosaics: four smaller faces per frame
        tiles = [cv2.resize(img, (250, 250)) for img in images[start : start + 4]]
        mosaic = np.vstack([np.hstack(tiles[:2]), np.hstack(tiles[2:])])
        samples.append(letterbox_rgb(mosaic, size))
    return samples


def main(argv: list[str]) -> int:
    variant = argv[0] if argv else "full"
    size = INPUT_SIZE[variant]
    source = WORK_DIR / f"{variant}_fp32.tflite"
    target = Path(argv[1]) if len(argv) > 1 else MODELS_DIR / f"blazeface_{variant}_range_int8.tflite"
    qt = quantizer.Quantizer(str(source))
    qt.load_quantization_recipe(RECIPE)
    samples = calibration_images(size, limit=160)
    input_name = "input"
    calibration = qt.calibrate({"serving_default": [{input_name: s} for s in samples]}, num_threads=2)
    result = qt.quantize(calibration)
    target.write_bytes(bytes(result.quantized_model))
    print(f"wrote {target} ({target.stat().st_size} bytes) from {len(samples)} calibration frames")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

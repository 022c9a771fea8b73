"""The quantized models keep their promises: one XNNPACK partition, and SFace int8 close to fp32.

Why: the int8 embedder is only fast if XNNPACK runs it whole (an int8 PRELU or standalone RELU
splits it into dozens of partitions, ~10x slower), and only usable if its embeddings stay
within cosine 0.99 of the fp32 SFace on real, device-aligned faces.
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

MODELS = Path(__file__).resolve().parents[2] / "models"


def _interpreter(name: str):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(MODELS / name), num_threads=2)
    interpreter.allocate_tensors()
    return interpreter


@pytest.mark.parametrize("name", ["sface_int8.tflite", "blazeface_full_range_int8.tflite"])
def test_runs_as_one_xnnpack_partition(name):
    ops = Counter(op["op_name"] for op in _interpreter(name)._get_ops_details())
    assert ops["DELEGATE"] == 1, f"{name}: {ops['DELEGATE']} XNNPACK partitions (ops {dict(ops)})"
    assert "PRELU" not in ops and "RELU" not in ops, f"{name} has ops XNNPACK cannot run in int8: {dict(ops)}"


def _int8_sface_embed(interpreter, crop_rgb: np.ndarray) -> np.ndarray:
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    interpreter.set_tensor(inp["index"], (crop_rgb.astype(np.int16) - 128).astype(np.int8)[None])
    interpreter.invoke()
    scale, zero_point = out["quantization"]
    vector = (interpreter.get_tensor(out["index"])[0].astype(np.float32) - zero_point) * scale
    return vector / np.linalg.norm(vector)


@pytest.mark.devset
def test_sface_int8_matches_fp32_reference_on_dev_faces(devset):
    """Device path (BlazeFace float + 4-point ArcFace alignment) on 60 dev photos."""
    from edge_agent.vision.alignment import align_face
    from edge_agent.vision.detector import BlazeFaceDetector
    from edge_agent.vision.peer import load_reference_sface
    from edge_agent.vision.runtime import LiteRTModel

    detector = BlazeFaceDetector(LiteRTModel(MODELS / "blazeface_full_range_float.tflite"), "full")
    reference = load_reference_sface()
    interpreter = _interpreter("sface_int8.tflite")
    with open(devset / "manifest.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))[::3][:60]
    cosines = []
    for row in rows:
        image = cv2.imread(str(devset / row["path"]))
        found = detector.detect(image)
        assert found, f"no face found in {row['path']}"
        crop = align_face(image, max(found, key=lambda d: d.score).keypoints)
        cosines.append(float(_int8_sface_embed(interpreter, crop.pixels) @ reference.embed(crop)))
    cosines_array = np.array(cosines)
    assert cosines_array.mean() >= 0.99, f"mean cosine {cosines_array.mean():.4f} to fp32 SFace"
    assert cosines_array.min() >= 0.95, f"worst face cosine {cosines_array.min():.4f} to fp32 SFace"

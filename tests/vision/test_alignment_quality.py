"""Alignment to the ArcFace template and the quality gates with their reason codes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge_agent.vision.alignment import ARCFACE_TEMPLATE, align_face, similarity_transform
from edge_agent.vision.detector import Detection
from edge_agent.vision.image_io import read_image
from edge_agent.vision.quality import BLURRY, LOW_SCORE, OFF_FRONTAL, TOO_SMALL, QualityPolicy, assess, pose_ratios


def test_similarity_transform_recovers_a_known_transform():
    angle, scale, shift = np.deg2rad(17), 1.7, np.array([12.0, -5.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    src = ARCFACE_TEMPLATE[:4]
    dst = src @ rot.T + shift
    matrix = similarity_transform(src, dst)
    np.testing.assert_allclose(matrix[:, :2], rot, atol=1e-9)
    np.testing.assert_allclose(matrix[:, 2], shift, atol=1e-9)


def test_aligned_crop_puts_the_eyes_on_the_template(core, fixtures_dir):
    image = read_image(fixtures_dir / "faces" / "obama_2.jpg")
    detection = max(core.detect(image), key=lambda d: d.score)
    crop = align_face(image, detection.keypoints)
    assert crop.shape == (112, 112, 3) and crop.dtype == np.uint8
    # Warp the keypoints with the same transform: the eyes land near the template's eyes.
    from edge_agent.vision.alignment import _TARGET, alignment_points

    matrix = similarity_transform(alignment_points(detection.keypoints), _TARGET)
    eyes = np.c_[detection.keypoints[:2], np.ones(2)] @ matrix.T
    np.testing.assert_allclose(eyes, ARCFACE_TEMPLATE[:2], atol=4.0)


def _detection(width=100.0, score=0.9, yaw_shift=0.0):
    kps = np.array([[30, 40], [70, 40], [50 + yaw_shift, 60], [50, 80], [10, 50], [90, 50]], np.float64)
    return Detection((0.0, 0.0, width, width), score, kps)


def test_pose_ratios_are_zero_for_a_frontal_layout_and_grow_with_yaw():
    yaw, pitch = pose_ratios(_detection().keypoints)
    assert yaw == pytest.approx(0) and pitch == pytest.approx(0)
    yaw, _ = pose_ratios(_detection(yaw_shift=25).keypoints)
    assert yaw == pytest.approx(25 / 40)


def test_quality_reason_codes(fixtures_dir, core):
    image = read_image(fixtures_dir / "faces" / "biden_2.jpg")
    detection = max(core.detect(image), key=lambda d: d.score)
    crop = align_face(image, detection.keypoints)
    policy = QualityPolicy()
    assert assess(detection, crop, policy).ok
    blurred = cv2.GaussianBlur(crop, (0, 0), 4)
    assert assess(detection, blurred, policy).reasons == (BLURRY,)
    verdict = assess(_detection(width=20, score=0.3, yaw_shift=30), crop, policy)
    assert set(verdict.reasons) == {TOO_SMALL, LOW_SCORE, OFF_FRONTAL} and not verdict.ok


def test_core_does_not_embed_rejected_faces(fixtures_dir):
    from edge_agent.vision.core import RecognitionCore

    strict = RecognitionCore.load(detector="full", quality=QualityPolicy(min_face_px=10_000))
    faces = strict.faces(read_image(fixtures_dir / "faces" / "astronaut_collins.jpg"))
    assert faces and all(f.embedding is None and TOO_SMALL in f.quality.reasons for f in faces)
    forced = strict.faces(read_image(fixtures_dir / "faces" / "astronaut_collins.jpg"), embed_rejected=True)
    assert forced[0].embedding is not None

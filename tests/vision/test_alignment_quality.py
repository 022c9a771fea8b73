"""Alignment to the ArcFace template and the quality gates with their reason codes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge_agent.vision.alignment import ARCFACE_TEMPLATE, FourPointAligner, five_point_transform, similarity_transform
from edge_agent.vision.detector import Detection
from edge_agent.vision.image_io import read_image
from edge_agent.vision.pixels import RgbImage
from edge_agent.vision.quality import BLURRY, NOT_A_FACE, OFF_FRONTAL, SOFT, TOO_SMALL, TURNED, QualityPolicy, assess, pose_ratios


def test_similarity_transform_recovers_a_known_transform():
    angle, scale, shift = np.deg2rad(17), 1.7, np.array([12.0, -5.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    src = ARCFACE_TEMPLATE[:4]
    dst = src @ rot.T + shift
    matrix = similarity_transform(src, dst)
    np.testing.assert_allclose(matrix[:, :2], rot, atol=1e-9)
    np.testing.assert_allclose(matrix[:, 2], shift, atol=1e-9)


def test_the_mesh_aligner_puts_five_points_on_the_template(core, fixtures_dir):
    image = read_image(fixtures_dir / "faces" / "obama_2.jpg")
    detection = core.detect(image)[0]
    alignment = core.aligner.align(image, detection)
    assert isinstance(alignment.crop, RgbImage) and alignment.crop.shape == (112, 112, 3)
    assert alignment.points.shape == (5, 2) and alignment.presence > 0.9
    placed = np.c_[alignment.points, np.ones(5)] @ five_point_transform(alignment.points).T
    errors = np.linalg.norm(placed - ARCFACE_TEMPLATE, axis=1)
    assert errors[:2].max() < 3.0 and errors.max() < 8.0, errors  # a slightly turned head moves the nose most
    # Mouth corners, not a mouth centre: the two points are a mouth's width apart.
    assert np.linalg.norm(alignment.points[4] - alignment.points[3]) > 0.5 * np.linalg.norm(alignment.points[1] - alignment.points[0])
    # Deterministic: the same face aligns to the same pixels every time.
    np.testing.assert_array_equal(core.aligner.align(image, detection).crop.pixels, alignment.crop.pixels)


def test_the_retired_four_point_aligner_still_aligns_for_comparison(core, fixtures_dir):
    image = read_image(fixtures_dir / "faces" / "obama_2.jpg")
    detection = core.detect(image)[0]
    alignment = FourPointAligner().align(image, detection)
    eyes = np.c_[detection.keypoints[:2], np.ones(2)] @ similarity_transform(
        alignment.points, np.vstack([ARCFACE_TEMPLATE[:3], ARCFACE_TEMPLATE[3:].mean(0)])).T
    np.testing.assert_allclose(eyes, ARCFACE_TEMPLATE[:2], atol=4.0)
    assert alignment.presence is None


def _detection(width=100.0, score=0.9, yaw_shift=0.0):
    kps = np.array([[30, 40], [70, 40], [50 + yaw_shift, 60], [50, 80], [10, 50], [90, 50]], np.float64)
    return Detection((0.0, 0.0, width, width), score, kps)


def test_pose_ratios_are_zero_for_a_frontal_layout_and_grow_with_yaw():
    yaw, pitch = pose_ratios(_detection().keypoints[:4])
    assert yaw == pytest.approx(0) and pitch == pytest.approx(0)
    yaw, _ = pose_ratios(_detection(yaw_shift=25).keypoints[:4])
    assert yaw == pytest.approx(25 / 40)
    five = np.array([[30, 40], [70, 40], [50, 60], [40, 80], [60, 80]], np.float64)  # mouth corners
    assert pose_ratios(five) == pytest.approx((0.0, 0.0))
    with pytest.raises(ValueError):
        pose_ratios(_detection().keypoints)  # six BlazeFace points would average the ears in


def test_quality_gates_refuse_only_useless_faces_and_warn_on_mild_ones(fixtures_dir, core):
    image = read_image(fixtures_dir / "faces" / "biden_2.jpg")
    detection = core.detect(image)[0]
    alignment = core.aligner.align(image, detection)
    policy = QualityPolicy()
    clean = assess(detection, alignment.crop, alignment.points, alignment.presence, policy)
    assert clean.ok and clean.warnings == () and clean.quality > 0.9
    soft = RgbImage(cv2.GaussianBlur(alignment.crop.pixels, (0, 0), 2.0))  # blur measure ~9
    verdict = assess(detection, soft, alignment.points, alignment.presence, policy)
    assert verdict.ok and SOFT in verdict.warnings and verdict.quality < clean.quality
    smeared = RgbImage(cv2.GaussianBlur(alignment.crop.pixels, (0, 0), 8))
    assert assess(detection, smeared, alignment.points, alignment.presence, policy).reasons == (BLURRY,)
    turned = _detection(yaw_shift=0.6 * 40).keypoints[:4]
    verdict = assess(detection, alignment.crop, turned, alignment.presence, policy)
    assert verdict.ok and TURNED in verdict.warnings
    verdict = assess(_detection(width=10), alignment.crop, _detection(yaw_shift=48).keypoints[:4], 0.05, policy)
    assert set(verdict.reasons) == {TOO_SMALL, OFF_FRONTAL, NOT_A_FACE} and not verdict.ok and verdict.quality == 0.0


def test_core_does_not_embed_rejected_faces(fixtures_dir):
    from edge_agent.vision.core import RecognitionCore

    strict = RecognitionCore.load(quality=QualityPolicy(min_face_px=10_000))
    faces = strict.faces(read_image(fixtures_dir / "faces" / "astronaut_collins.jpg"))
    assert faces and all(f.embedding is None and TOO_SMALL in f.quality.reasons for f in faces)
    forced = strict.faces(read_image(fixtures_dir / "faces" / "astronaut_collins.jpg"), embed_rejected=True)
    assert forced[0].embedding is not None

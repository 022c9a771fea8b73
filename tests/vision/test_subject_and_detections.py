"""One face rule for every path, one detection per head, and a colour order the embedder can trust."""

from __future__ import annotations

import csv

import cv2
import numpy as np
import pytest

from edge_agent.errors import ModelError
from edge_agent.vision.core import Face
from edge_agent.vision.detector import Detection, merge_detections
from edge_agent.vision.image_io import read_image
from edge_agent.vision.pixels import RgbImage
from edge_agent.vision.quality import NOT_A_FACE, QualityVerdict
from edge_agent.vision.subject import LOW_QUALITY, MULTIPLE_FACES, NO_FACE, choose_subject


def _face(x1, y1, x2, y2, usable=True):
    reasons = () if usable else (NOT_A_FACE,)
    verdict = QualityVerdict(usable, reasons, x2 - x1, 0.9, 100.0, 0.0, 0.0, 1.0, 1.0 if usable else 0.0)
    return Face(Detection((x1, y1, x2, y2), 0.9, np.zeros((6, 2))), verdict, np.ones(128, np.float32) if usable else None)


def test_the_subject_is_the_clearly_largest_usable_face():
    big, small, similar = _face(0, 0, 100, 100), _face(200, 0, 260, 60), _face(300, 0, 390, 90)
    assert choose_subject([]).reason == NO_FACE
    assert choose_subject([small, big]).face is big  # 10,000 vs 3,600 px2: dominant
    ambiguous = choose_subject([big, similar])  # 10,000 vs 8,100: which one?
    assert ambiguous.face is None and ambiguous.reason == MULTIPLE_FACES
    assert "[0, 0, 100, 100]" in ambiguous.detail and "[300, 0, 390, 90]" in ambiguous.detail
    # A useless detection (a backdrop the face mesh finds no face in) never makes a photo ambiguous,
    # however large it is.
    backdrop = _face(400, 0, 520, 120, usable=False)
    assert choose_subject([big, backdrop]).face is big
    refused = choose_subject([backdrop])
    assert refused.face is None and refused.reason == LOW_QUALITY and NOT_A_FACE in refused.detail


def test_enrolment_search_and_evaluation_share_the_rule(core, fixtures_dir, tmp_path):
    """The same two-face photo is refused, naming both boxes, by enrolment and by evaluation."""
    from edge_agent.evaluation.runner import core_enrol_fn, core_probe_fn
    from edge_agent.vision.enrolment import enrol_image

    a = read_image(fixtures_dir / "faces" / "obama_1.jpg")
    b = cv2.resize(read_image(fixtures_dir / "faces" / "biden_1.jpg"), (a.shape[1], a.shape[0]))
    pair = np.hstack([a, b])
    path = tmp_path / "pair.png"
    cv2.imwrite(str(path), pair)
    enrolment = enrol_image(core, pair)
    assert enrolment.reason == MULTIPLE_FACES and enrolment.detail.count("[") == 2
    assert core_enrol_fn(core)(path).reasons == (MULTIPLE_FACES,)
    assert core_probe_fn(core)(path).reasons == (MULTIPLE_FACES,)
    # The same photo with the second face a quarter of the size: the larger one is the subject.
    small_b = np.full_like(b, 90)
    small_b[: b.shape[0] // 2, : b.shape[1] // 2] = cv2.resize(b, (b.shape[1] // 2, b.shape[0] // 2))
    assert enrol_image(core, np.hstack([a, small_b])).ok


def test_a_backdrop_detection_does_not_make_a_portrait_ambiguous(core, devset):
    """The dev photo whose White House backdrop the short-range model reads as a face (box larger
    than the real one, score 0.70): the face mesh finds no face there, so the portrait enrols."""
    from edge_agent.vision.enrolment import enrol_image

    image = read_image(devset / "Barack_Obama" / "face_recognition_knn_test_obama1.jpg")
    faces = core.faces(image)
    assert len(faces) == 2 and sum(f.quality.ok for f in faces) == 1
    assert [f for f in faces if not f.quality.ok][0].quality.reasons == (NOT_A_FACE,)
    assert enrol_image(core, image).ok


def test_nested_boxes_and_both_ranges_give_one_detection_per_head():
    kps = np.zeros((6, 2), np.float32)
    head = Detection((100.0, 100.0, 200.0, 200.0), 0.9, kps)
    other_range = Detection((104.0, 98.0, 206.0, 204.0), 0.8, kps + 3)  # the same head, other model
    nested = Detection((120.0, 130.0, 170.0, 185.0), 0.7, kps + 1)  # inside it: IoU 0.27, not merged before
    elsewhere = Detection((400.0, 100.0, 480.0, 180.0), 0.85, kps)
    merged = merge_detections([nested, head, elsewhere, other_range])
    assert len(merged) == 2
    assert merged[0].box[0] == pytest.approx((100 * 0.9 + 104 * 0.8) / 1.7, abs=1e-3)  # ranges averaged
    assert merged[1].box == elsewhere.box


def test_the_embedder_refuses_an_array_whose_colour_order_is_not_stated(core, fixtures_dir):
    image = read_image(fixtures_dir / "faces" / "obama_1.jpg")
    face = core.faces(image, keep_aligned=True)[0]
    assert isinstance(face.aligned, RgbImage)
    with pytest.raises(ModelError, match="RgbImage"):
        core.embedder.embed(face.aligned.pixels)
    bgr = np.ascontiguousarray(face.aligned.pixels[:, :, ::-1])
    # Said to be BGR, it is converted and embeds as the same face; passed as RGB it would not.
    assert float(core.embedder.embed(RgbImage.from_bgr(bgr)) @ face.embedding) > 0.9999
    assert float(core.embedder.embed(RgbImage.from_rgb(bgr)) @ face.embedding) < 0.99


@pytest.mark.devset
def test_no_single_person_dev_portrait_is_refused(core, devset):
    """Issue 13's target: every single-person portrait of the dev set enrols. The only photo
    refused shows two people of comparable size (Frank_Abagnale_Jr_0001: a second man at his
    shoulder, 89 px against 100 px)."""
    from edge_agent.vision.enrolment import enrol_image

    refused = {}
    for row in csv.DictReader(open(devset / "manifest.csv")):
        enrolment = enrol_image(core, read_image(devset / row["path"]))
        if not enrolment.ok:
            refused[row["path"]] = (enrolment.reason, enrolment.detail)
    assert set(refused) <= {"Frank_Abagnale_Jr/Frank_Abagnale_Jr_0001.jpg"}, refused

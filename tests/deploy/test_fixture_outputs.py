"""deploy/fixture_outputs.py, the x86-vs-arm64 comparison check-arm64.sh runs: it passes a machine
against itself and fails on real differences (a wrong colour order, another model's answers)."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest

from edge_agent.vision.image_io import read_image

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "deploy"))
import fixture_outputs  # noqa: E402  (deploy/ is a folder of scripts, not a package)

FACES = REPO / "tests" / "fixtures" / "faces"


@pytest.fixture(scope="module")
def recorded():
    images = {name: read_image(FACES / name) for name in ("obama_1.jpg", "obama_3.jpg")}
    results, calls = fixture_outputs.run(FACES, None, images)
    swapped, _ = fixture_outputs.run(FACES, None, {name: image[:, :, ::-1].copy() for name, image in images.items()})
    return results, calls, swapped


def test_a_machine_agrees_with_itself_and_the_refused_backdrop_is_not_compared(recorded):
    results, calls, _ = recorded
    figures: dict = {}
    assert fixture_outputs.compare(results, copy.deepcopy(results), figures) == []
    # obama_3.jpg's second box is the backdrop: found, refused by the quality gate, so only its box is compared.
    faces = results["variants"]["int8"]["images"]["obama_3.jpg"]
    assert [f["ok"] for f in faces] == [True, False]
    assert figures["int8"]["faces"] == figures["float32"]["faces"] == 3 and figures["int8"]["min_cosine"] > 0.99999
    kernel_figures: dict = {}
    assert fixture_outputs.compare_kernels(calls, fixture_outputs.replay(calls, None), kernel_figures) == []
    assert set(kernel_figures) == {"blazeface_full_range_int8.tflite", "blazeface_full_range_float.tflite", "blazeface_short_range.tflite",
                                   "face_landmark.tflite", "sface_int8.tflite", "sface_int8w.tflite"}


def test_a_wrong_colour_order_end_to_end_fails(recorded):
    results, _, swapped = recorded
    problems = fixture_outputs.compare(results, swapped)
    assert any("embedding cosine" in p or "not found alike" in p or "faces vs" in p for p in problems), problems


def test_a_refusal_on_one_machine_only_and_a_moved_box_fail(recorded):
    results, _, _ = recorded
    other = copy.deepcopy(results)
    other["variants"]["int8"]["images"]["obama_3.jpg"][1]["ok"] = True
    box = other["variants"]["float32"]["images"]["obama_1.jpg"][0]["box"]
    box[0] += 0.01 * (box[2] - box[0])  # 1 % of the width: IoU 0.99
    box[2] += 0.01 * (box[2] - box[0])
    problems = fixture_outputs.compare(results, other)
    assert any("int8 obama_3.jpg" in p and "accepted on one machine" in p for p in problems), problems
    assert any("float32 obama_1.jpg" in p and "not found alike" in p for p in problems), problems


def test_a_kernel_fed_the_wrong_colour_order_or_answering_for_another_model_fails(recorded):
    _, calls, _ = recorded
    bgr = [(name, [x[..., ::-1].copy() for x in inputs] if name.startswith("sface") else inputs, outputs) for name, inputs, outputs in calls]
    problems = fixture_outputs.compare_kernels(calls, fixture_outputs.replay(bgr, None))
    assert {p.split(":")[0] for p in problems} == {"kernel sface_int8.tflite", "kernel sface_int8w.tflite"}, problems
    # The int8 model's answers checked against the float-activation model's: different roundings of one network.
    int8 = [outputs for name, _, outputs in calls if name == "sface_int8.tflite"]
    float_calls = [c for c in calls if c[0] == "sface_int8w.tflite"]
    problems = fixture_outputs.compare_kernels(float_calls, int8)
    assert problems and all("sface_int8w.tflite" in p for p in problems), problems

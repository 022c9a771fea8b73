"""Per-CPU model choice: the profile rule, the config override, and the watchlist binding that
must hold across both variants of a model family (docs/formats/watchlist.md "Model binding")."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_agent.errors import EdgeAgentError
from edge_agent.vision.core import ModelFiles, RecognitionCore
from edge_agent.vision.cpu_profile import parse_cpuinfo
from edge_agent.vision.image_io import read_image
from edge_agent.vision.model_choice import FAMILIES, choose_variant, precision_label

REPO = Path(__file__).resolve().parents[2]
FACES = REPO / "tests" / "fixtures" / "faces"
PI5 = parse_cpuinfo((REPO / "hw/cpuinfo/pi5.txt").read_text(), "aarch64")
PI4 = parse_cpuinfo((REPO / "hw/cpuinfo/pi4.txt").read_text(), "aarch64")
X86_VNNI = parse_cpuinfo("processor : 0\nflags : fpu sse2 avx2 avx512f avx512_vnni\nmodel name : Xeon\n", "x86_64")
X86_AVX2 = parse_cpuinfo("processor : 0\nflags : fpu sse2 avx avx2 fma\nmodel name : Core\n", "x86_64")


@pytest.mark.parametrize(
    ("profile", "detector", "embedder"),
    [
        (PI5, "int8", "int8"),  # A76 asimddp: int8 dot product
        (PI4, "float32", "float32"),  # A72: none
        (X86_VNNI, "float32", "int8"),  # VNNI, but int8 BlazeFace measured slower than float there
        (X86_AVX2, "float32", "float32"),
    ],
    ids=["pi5", "pi4", "x86-vnni", "x86-avx2"],
)
def test_profile_rule_picks_int8_only_where_it_pays(profile, detector, embedder):
    assert choose_variant(FAMILIES["detector_full"], "auto", profile)[0] == detector
    assert choose_variant(FAMILIES["embedder"], "auto", profile)[0] == embedder
    # short range ships in float only, whatever is asked
    assert choose_variant(FAMILIES["detector_short"], "int8", profile) == ("float32", "blazeface_short_range")


def test_override_wins_over_the_profile_and_unknown_values_are_refused():
    assert choose_variant(FAMILIES["embedder"], "float32", PI5) == ("float32", "sface_int8w")
    assert choose_variant(FAMILIES["embedder"], "int8", PI4) == ("int8", "sface_int8")
    with pytest.raises(EdgeAgentError, match="unknown model precision 'fp16'"):
        choose_variant(FAMILIES["embedder"], "fp16", PI4)


def test_precision_label_fits_the_event_pattern():
    import re

    for label in (precision_label("int8", "int8"), precision_label("float32", "int8"), precision_label("int8+float32", "int8")):
        assert re.fullmatch(r"[a-z0-9_.+-]{1,32}", label), label
    assert precision_label("float32", "int8") == "det.float32+emb.int8"


def test_both_variants_share_one_binding_and_state_their_precision():
    int8, float32 = (ModelFiles.resolve(None, "both", p) for p in ("int8", "float32"))
    assert int8.embedder.path.name == "sface_int8.tflite" and float32.embedder.path.name == "sface_int8w.tflite"
    assert dict(int8.detectors)["full"].path.name == "blazeface_full_range_int8.tflite"
    assert dict(float32.detectors)["full"].path.name == "blazeface_full_range_float.tflite"
    assert int8.identity.as_dict() == float32.identity.as_dict(), "a watchlist binds the family, not the variant"
    assert (int8.identity.precision, float32.identity.precision) == ("det.int8+float32+emb.int8", "float32")
    assert int8.identity.as_event_dict()["precision"] == "det.int8+float32+emb.int8"


def _embeddings(core: RecognitionCore) -> dict[str, np.ndarray]:
    out = {}
    for path in sorted(FACES.glob("*.jpg")):
        faces = core.faces(read_image(path), embed_rejected=True)
        out[path.stem] = max(faces, key=lambda f: f.detection.width).embedding
    return out


def test_a_watchlist_made_with_one_variant_matches_with_the_other():
    """Templates enrolled with the int8 variant, probes embedded with the float32 one (and back):
    the same person still outscores every other person, and cross-variant scores sit within a few
    hundredths of same-variant scores, so one calibrated threshold serves both."""
    a = _embeddings(RecognitionCore.load(detector="full", precision="int8"))
    b = _embeddings(RecognitionCore.load(detector="full", precision="float32"))
    person = {name: name.rsplit("_", 1)[0] for name in a}
    same_photo = {name: float(a[name] @ b[name]) for name in a}
    # models/README.md: the int8 embedder's worst photo sits at cosine 0.911 to fp32 (a dark, low-contrast one)
    assert min(same_photo.values()) >= 0.9 and np.mean(list(same_photo.values())) >= 0.97, same_photo
    for enrolled, probes in ((a, b), (b, a)):
        for probe_name, probe in probes.items():
            mates = [float(probe @ enrolled[n]) for n in enrolled if n != probe_name and person[n] == person[probe_name]]
            others = [float(probe @ enrolled[n]) for n in enrolled if person[n] != person[probe_name]]
            if mates:
                assert min(mates) > max(others) + 0.1, probe_name
            same_variant = [float(probes[probe_name] @ probes[n]) for n in probes if n != probe_name and person[n] == person[probe_name]]
            assert np.allclose(mates, same_variant, atol=0.05), probe_name

"""Issue 14.3: the device times its own int8 and float variants and ``auto`` runs the faster one
while the timings still describe the device (vision/model_timings.py); docs/formats/model-timings.md."""

from __future__ import annotations

import dataclasses
import json
import re
import stat
from pathlib import Path

import pytest

from edge_agent.errors import ModelError
from edge_agent.vision import model_timings
from edge_agent.vision.core import ModelFiles
from edge_agent.vision.cpu_profile import read_cpu_profile
from edge_agent.vision.model_choice import FAMILIES, preferred_precision
from edge_agent.vision.model_measure import measure
from edge_agent.vision.model_timings import FamilyTiming, MeasuredOn, ModelTimings, decide

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "formats" / "model-timings.md"
MULTI = [f for f in FAMILIES.values() if len(f.variants) > 1]


@pytest.fixture(scope="module")
def measured() -> ModelTimings:
    return measure(list(FAMILIES.values()), threads=1, rounds=5, warmup=1)


def forcing(timings: ModelTimings, precision: str) -> ModelTimings:
    """The same record, with every family's choice set to ``precision`` (as if it had been faster)."""
    return dataclasses.replace(timings, families=tuple(dataclasses.replace(f, chosen=precision) for f in timings.families))


def test_measure_times_every_variant_of_each_family_that_has_two(measured):
    assert [f.family for f in measured.families] == [f.name for f in MULTI], "short range ships in float only: nothing to choose"
    profile = read_cpu_profile()
    for timing, family in zip(measured.families, MULTI, strict=True):
        assert {v.precision for v in timing.variants} == set(family.variants)
        assert all(v.median_ms > 0 and v.invokes == 5 for v in timing.variants)
        assert timing.chosen == decide(family, {v.precision: v.median_ms for v in timing.variants}, timing.profile_choice)
        assert timing.profile_choice == preferred_precision(family, profile)
    assert measured.device == MeasuredOn.here(profile, 1)


def test_a_slow_device_stops_at_its_time_budget_after_the_minimum_rounds():
    """The unit measures inside its start timeout: past the budget, MIN_ROUNDS rounds, not the 30 asked."""
    family = [FAMILIES["embedder"]]
    spent = measure(family, threads=1, rounds=30, warmup=1, budget_s=0.0)
    assert {v.invokes for v in spent.families[0].variants} == {model_timings.MIN_ROUNDS}
    assert {v.invokes for v in measure(family, threads=1, rounds=3, warmup=1, budget_s=0.0).families[0].variants} == {3}
    roomy = measure(family, threads=1, rounds=8, warmup=1, budget_s=600.0)
    assert {v.invokes for v in roomy.families[0].variants} == {8}


@pytest.mark.parametrize("precision", ["int8", "float32"])
def test_auto_runs_what_the_devices_timings_chose(measured, precision):
    files = ModelFiles.resolve(None, "both", "auto", timings=forcing(measured, precision), threads=1)
    assert files.choice == "measured" and measured.measured_at in files.choice_note
    assert dict(files.detectors)["full"].path.name == f"blazeface_full_range_{'int8' if precision == 'int8' else 'float'}.tflite"
    assert files.embedder.path.name == ("sface_int8.tflite" if precision == "int8" else "sface_int8w.tflite")
    assert files.identity.precision == ("det.int8+float32+emb.int8" if precision == "int8" else "float32")
    # the watchlist binding does not move with the variant
    assert files.identity.as_dict() == ModelFiles.resolve(None, "both", "int8").identity.as_dict()


def test_a_precision_set_in_the_config_wins_over_the_timings(measured):
    files = ModelFiles.resolve(None, "full", "int8", timings=forcing(measured, "float32"), threads=1)
    assert files.choice == "config" and files.identity.precision == "int8"


@pytest.mark.parametrize(
    "change, reason",
    [
        (lambda t: dataclasses.replace(t, device=dataclasses.replace(t.device, cpu_model="Raspberry Pi 5 Model B (Cortex-A76)")), "cpu_model"),
        (lambda t: dataclasses.replace(t, device=dataclasses.replace(t.device, cpu_features_sha256="0" * 64)), "cpu_features_sha256"),
        (lambda t: dataclasses.replace(t, device=dataclasses.replace(t.device, runtime="ai-edge-litert 2.2.0")), "runtime"),
        (lambda t: dataclasses.replace(t, device=dataclasses.replace(t.device, threads=4)), "threads"),
        (lambda t: dataclasses.replace(t, families=(dataclasses.replace(
            t.families[0], variants=(dataclasses.replace(t.families[0].variants[0], sha256="f" * 64), *t.families[0].variants[1:])),
            *t.families[1:])), "has changed since"),
    ],
    ids=["other-cpu", "other-flags", "other-runtime", "other-threads", "other-model-file"],
)
def test_stale_timings_are_not_followed_and_the_note_says_why(measured, change, reason):
    stale = change(forcing(measured, "float32"))
    files = ModelFiles.resolve(None, "full", "auto", timings=stale, threads=1)
    by_profile = ModelFiles.resolve(None, "full", "auto", threads=1)
    assert files.choice == "profile" and reason in files.choice_note and "edge-agent models measure" in files.choice_note
    assert files.identity.precision == by_profile.identity.precision and by_profile.choice == "profile"


def test_the_faster_variant_must_win_by_the_margin_to_displace_the_profile():
    family = FAMILIES["detector_full"]
    assert decide(family, {"int8": 2.0, "float32": 2.05}, "float32") == "float32", "2.4 % faster: within noise, the profile stands"
    assert decide(family, {"int8": 2.0, "float32": 2.4}, "float32") == "int8"
    assert decide(family, {"int8": 3.0, "float32": 2.0}, "int8") == "float32"
    assert decide(family, {"int8": 2.0, "float32": 3.0}, "int8") == "int8"


def test_the_record_round_trips_through_its_file_0600(measured, tmp_path):
    path = model_timings.path_in(tmp_path)
    model_timings.save(path, measured)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert model_timings.load(path) == measured
    assert model_timings.load(tmp_path / "absent.json") is None


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda b: b"{not json", "not JSON"),
        (lambda b: b.replace(b'"edge-agent-model-timings"', b'"something-else"'), "format is not"),
        (lambda b: b.replace(b'"version": 1', b'"version": 2'), "version 2 is not 1"),
        (lambda b: b.replace(b'"threads": 1', b'"threads": true'), "MeasuredOn.threads is not int"),
        (lambda b: b.replace(b'"median_ms"', b'"mean_ms"'), "missing or of the wrong type"),
        (lambda b: re.sub(rb'"chosen": "int8"', b'"chosen": "fp16"', b, count=1), "which it did not time"),
    ],
    ids=["not-json", "format", "version", "bool-for-int", "missing-field", "chose-untimed"],
)
def test_a_damaged_record_is_an_error_naming_the_file_and_the_fix(measured, tmp_path, edit, message):
    path = model_timings.path_in(tmp_path)
    text = forcing(measured, "int8").to_json()
    path.write_bytes(edit(text))
    with pytest.raises(ModelError) as caught:
        model_timings.load(path)
    assert str(path) in caught.value.message and message in caught.value.message, caught.value.message
    assert "edge-agent models measure" in caught.value.hint


def test_a_directory_where_the_record_should_be_is_named(tmp_path):
    model_timings.path_in(tmp_path).mkdir()
    with pytest.raises(ModelError, match="is a directory"):
        model_timings.load(model_timings.path_in(tmp_path))


def _doc_example() -> bytes:
    block = DOC.read_text().split("```json\n", 1)[1].split("```", 1)[0]
    return block.encode()


def test_the_documented_example_is_what_we_write_and_read():
    """An integrator reading the doc sees our bytes: the example parses and re-serialises byte for byte."""
    example = _doc_example()
    parsed = ModelTimings.from_json(example, DOC)
    assert parsed.to_json() == example
    documented = set(re.findall(r"^\| `([a-z0-9_.]+)` \|", DOC.read_text(), re.M))
    fields = {f"device.{n}" for n in MeasuredOn.__dataclass_fields__} | {f"families.{n}" for n in FamilyTiming.__dataclass_fields__ if n != "variants"}
    fields |= {f"families.variants.{n}" for n in model_timings.VariantTiming.__dataclass_fields__} | {"format", "version", "measured_at"}
    assert documented == fields
    body = json.loads(example)
    assert body["format"] == model_timings.FORMAT and body["version"] == model_timings.VERSION

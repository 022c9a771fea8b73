"""The LiteRT wrapper and model loading refuse what they cannot run, with a clear message."""

from __future__ import annotations

import ctypes.util
import shutil
from pathlib import Path

import numpy as np
import pytest

from edge_agent.errors import ModelError
from edge_agent.memory import file_mappings, resident_bytes_of
from edge_agent.vision.core import RecognitionCore
from edge_agent.vision.model_files import ModelManifest, default_models_dir
from edge_agent.vision.runtime import LiteRTModel, TensorSpec, dequantize, quantize


@pytest.mark.skipif(ctypes.util.find_library("edgetpu") is not None, reason="an Edge TPU runtime is installed here")
def test_edgetpu_delegate_without_its_library_is_a_clear_error():
    path = ModelManifest(default_models_dir()).resolve("sface_int8").path
    with pytest.raises(ModelError, match="Edge TPU delegate library"):
        LiteRTModel(path, delegate="edgetpu")


def test_unknown_delegate_and_missing_file():
    path = ModelManifest(default_models_dir()).resolve("sface_int8").path
    with pytest.raises(ModelError, match="unknown delegate"):
        LiteRTModel(path, delegate="gpu")
    with pytest.raises(ModelError, match="not found"):
        LiteRTModel(path.with_name("absent.tflite"))


def test_an_altered_model_file_is_refused_before_it_runs(tmp_path):
    source = default_models_dir()
    for item in source.iterdir():
        if item.is_file():
            shutil.copy(item, tmp_path / item.name)
    target = tmp_path / ModelManifest(source).entries["sface_int8"]["file"]
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="does not match the manifest"):
        RecognitionCore.load(tmp_path)


def test_quantize_round_trip_and_passthrough():
    spec = TensorSpec("x", 0, (1, 4), np.dtype(np.int8), 0.5, -3)
    q = quantize(np.array([0.0, 1.0, -70.0, 70.0], np.float32), spec)
    assert q.dtype == np.int8 and q.tolist() == [-3, -1, -128, 127]
    np.testing.assert_allclose(dequantize(q, spec), [0.0, 1.0, -62.5, 65.0])
    already = np.array([5], np.int8)
    assert quantize(already, spec) is already


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="needs /proc/self/smaps (Linux)")
def test_a_prepared_models_file_is_not_kept_resident_beside_its_packed_weights():
    # XNNPACK packs the weights into memory of its own while the interpreter is prepared; the
    # mapped file's pages (all resident after packing read them: 10 MB for SFace) are then a
    # second copy, dropped from this process (issue 14, peak RSS). It still runs, and the same.
    path = ModelManifest(default_models_dir()).resolve("sface_int8").path
    model = LiteRTModel(path, threads=1)
    assert file_mappings(path), "the interpreter no longer maps the file: this test sees nothing"
    assert resident_bytes_of(path) < path.stat().st_size // 10
    face = np.random.default_rng(0).integers(0, 255, (1, 112, 112, 3)).astype(np.float32)
    first = model.run(face)[0]
    np.testing.assert_array_equal(LiteRTModel(path, threads=1).run(face)[0], first)
    assert resident_bytes_of(path) < path.stat().st_size // 10  # running reads almost none of it back

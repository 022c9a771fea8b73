"""A thin LiteRT interpreter wrapper: one place that knows which runtime is installed and how to
quantize inputs and dequantize outputs, so detector and embedder code stays model-agnostic."""

from __future__ import annotations

import ctypes.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.errors import ModelError
from edge_agent.memory import release_file_pages
from edge_agent.vision.native_stderr import without_runtime_banner

EDGETPU_LIBRARY = "libedgetpu.so.1"


def _interpreter_module() -> Any:
    """``ai-edge-litert`` is the maintained runtime; ``tflite-runtime`` is accepted on older images."""
    try:
        from ai_edge_litert import interpreter as module
    except ImportError:
        try:
            from tflite_runtime import interpreter as module  # type: ignore[no-redef, unused-ignore]
        except ImportError:
            raise ModelError(
                "no TFLite runtime is installed",
                "pip install ai-edge-litert (or tflite-runtime on older Raspberry Pi OS images)",
            ) from None
    return module


@dataclass(frozen=True)
class TensorSpec:
    name: str
    index: int
    shape: tuple[int, ...]
    dtype: np.dtype
    scale: float
    zero_point: int

    @property
    def quantized(self) -> bool:
        return self.dtype in (np.dtype(np.int8), np.dtype(np.uint8)) and self.scale > 0


class LiteRTModel:
    """Loads a .tflite file with a thread count and an optional Edge TPU delegate."""

    def __init__(self, path: Path, threads: int = 2, delegate: str = "none") -> None:
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"model file {path} not found", "reinstall the models or point models_dir at them")
        module = _interpreter_module()
        delegates = [self._edgetpu_delegate(module)] if delegate == "edgetpu" else None
        if delegate not in ("none", "edgetpu"):
            raise ModelError(f"unknown delegate {delegate!r}", "use 'none' or 'edgetpu'")
        try:
            with without_runtime_banner():
                self._interp = module.Interpreter(
                    model_path=str(path), num_threads=threads, experimental_delegates=delegates
                )
                self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"cannot load model {path.name}: {exc}", "the file may be corrupt; rebuild or reinstall it") from None
        # Prepared: XNNPACK has packed the weights into its own memory, so the mapped file's pages
        # (all resident after packing read them) are a second copy; drop them (edge_agent/memory.py).
        release_file_pages(path)
        self.path = path
        self.inputs = [self._spec(d) for d in self._interp.get_input_details()]
        self.outputs = [self._spec(d) for d in self._interp.get_output_details()]
        self._blank = [np.zeros(s.shape, s.dtype) for s in self.inputs + self.outputs]

    @staticmethod
    def _edgetpu_delegate(module: Any) -> Any:
        if ctypes.util.find_library("edgetpu") is None:
            raise ModelError(
                f"the Edge TPU delegate library ({EDGETPU_LIBRARY}) is not installed",
                "install libedgetpu1-std from the Coral apt repository, or choose a profile with delegate = 'none'",
            )
        try:
            return module.load_delegate(EDGETPU_LIBRARY)
        except (ValueError, OSError) as exc:
            raise ModelError(
                f"the Edge TPU delegate failed to load: {exc}",
                "check the Coral accelerator is plugged in and the udev rule is installed",
            ) from None

    @staticmethod
    def _spec(d: dict[str, Any]) -> TensorSpec:
        scale, zero = d.get("quantization", (0.0, 0))
        return TensorSpec(d["name"], d["index"], tuple(int(s) for s in d["shape"]), np.dtype(d["dtype"]), float(scale), int(zero))

    def run(self, *inputs: np.ndarray) -> list[np.ndarray]:
        """Feed real-valued inputs (or integer inputs already quantized for the tensor); return
        dequantized float32 outputs.

        The interpreter's input and output tensors are zeroed before this returns, so a face
        (the embedder's 112x112 input), a frame (the detector's) or a template (the embedder's
        output) never lingers inside the runtime until the next call (policing.md 12; issue
        10.5). The results are copies. Cost: a few microseconds."""
        for spec, value in zip(self.inputs, inputs, strict=True):
            # Written straight into the interpreter's input buffer (a view, released before
            # invoke): set_tensor would copy the frame once more.
            view = self._interp.tensor(spec.index)
            view()[...] = quantize(value, spec)
            del view
        try:
            self._interp.invoke()
            return [dequantize(self._interp.get_tensor(spec.index), spec) for spec in self.outputs]
        finally:
            self.clear()

    def clear(self) -> None:
        """Zero every input and output tensor (intermediate activations are the runtime's own
        arena, overwritten by the next invoke; they are not reachable through this API)."""
        for spec, blank in zip(self.inputs + self.outputs, self._blank, strict=True):
            self._interp.set_tensor(spec.index, blank)


def quantize(value: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """Real values -> the tensor's type; a value already of the tensor's integer type passes as is."""
    if spec.quantized and value.dtype != spec.dtype:
        info = np.iinfo(spec.dtype)
        q = np.round(value.astype(np.float32) / spec.scale) + spec.zero_point
        return np.clip(q, info.min, info.max).astype(spec.dtype)
    return value.astype(spec.dtype, copy=False)


def dequantize(value: np.ndarray, spec: TensorSpec) -> np.ndarray:
    if spec.quantized:
        return (value.astype(np.float32) - spec.zero_point) * spec.scale
    return value.astype(np.float32, copy=False)

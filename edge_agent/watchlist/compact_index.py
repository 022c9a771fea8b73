"""An int8 copy of a large gallery, scored by LiteRT's dynamically quantized FULLY_CONNECTED kernel.

Why: scoring a probe against 10^6 float32 templates reads 512 MB, so it is bound by memory
bandwidth (23 ms here) whatever the arithmetic. Stored as int8 with one scale per template the
same pass reads 128 MB, and XNNPACK's int8 GEMV (VNNI / ARM dot product) keeps up with that.
numpy has no int8 matrix product, so the int8 matrix becomes the constant weight of a one-op
TFLite model built in memory (schema from ai-edge-litert, no converter needed).

The scores are approximate; ``error_bound`` says by how much at most, which is what lets
``Gallery`` re-rank exactly (watchlist/gallery.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np

# Rows quantized per call, so the float32 source is read in slices (a memory-mapped gallery file
# is never wholly resident) and the temporary stays small.
QUANTIZE_ROWS = 65536


class Int8Index:
    """``scores(probe)`` ~= ``templates @ probe`` within ``error_bound(probe)``."""

    def __init__(self, templates: np.ndarray, threads: int = 2) -> None:
        n, d = templates.shape
        codes = np.empty((n, d), np.int8)
        scales = np.empty(n, np.float32)
        for start in range(0, n, QUANTIZE_ROWS):
            block = np.array(templates[start : start + QUANTIZE_ROWS], np.float32)  # a copy: rounded in place below
            peak = np.abs(block).max(axis=1)
            s = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
            scales[start : start + len(block)] = s
            np.rint(block / s[:, None], out=block)
            codes[start : start + len(block)] = block
        self.size, self.dim = n, d
        # |w - w_hat| <= scale / 2 per component, and ||w_hat||_1 bounds the input-rounding term.
        self._half_step = float(scales.max()) / 2 if n else 0.0
        self._l1_max = float(max((np.abs(codes[i : i + QUANTIZE_ROWS]).sum(axis=1, dtype=np.int64) * scales[i : i + QUANTIZE_ROWS]).max()
                                 for i in range(0, n, QUANTIZE_ROWS))) if n else 0.0
        model = _fully_connected_model(codes, scales)
        del codes
        self._interpreter = _interpreter(model, threads)
        self._model = model  # the interpreter reads its constants from this buffer
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]

    def error_bound(self, probe: np.ndarray) -> float:
        """Upper bound of |approximate - exact| for every template, for this probe.

        Weight rounding: sum_j |x_j| * scale_i / 2. Input rounding (the kernel quantizes the probe
        asymmetrically to int8 per call, step (max - min) / 255, zero point rounded too, so at
        most one step per component): step * ||w_hat_i||_1. Plus float32 accumulation slack."""
        x = np.asarray(probe, np.float32)
        step = (max(float(x.max()), 0.0) - min(float(x.min()), 0.0)) / 255.0
        return self._half_step * float(np.abs(x).sum()) + step * self._l1_max + 1e-5

    def scores(self, probe: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Approximate scores of every template, written into ``out`` (float32, one per template)."""
        self._interpreter.set_tensor(self._input, np.asarray(probe, np.float32).reshape(1, self.dim))
        self._interpreter.invoke()
        view = self._interpreter.tensor(self._output)
        out[:] = view()[0]  # copy out of the tensor view at once: the view must not outlive the call
        del view
        return out


def _interpreter(model: bytes, threads: int) -> Any:
    from edge_agent.vision.native_stderr import without_runtime_banner
    from edge_agent.vision.runtime import _interpreter_module

    module = _interpreter_module()
    with without_runtime_banner():
        interpreter = module.Interpreter(model_content=model, num_threads=threads)
        interpreter.allocate_tensors()
    return interpreter


def _fully_connected_model(codes: np.ndarray, scales: np.ndarray) -> bytes:
    """One FULLY_CONNECTED op: float32 input [1, d], int8 weights [n, d] with per-row (per output
    channel) scales, float32 output [1, n]: TFLite's hybrid kernel, which XNNPACK runs as its
    dynamically quantized int8 GEMV."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as tfl

    n, d = codes.shape

    def tensor(shape: list[int], kind: int, buffer: int, name: str, quantization: Any = None) -> Any:
        t = tfl.TensorT()
        t.shape, t.type, t.buffer, t.name = np.array(shape, np.int32), kind, buffer, name
        if quantization is not None:
            t.quantization = quantization
        return t

    weights_q = tfl.QuantizationParametersT()
    weights_q.scale, weights_q.zeroPoint, weights_q.quantizedDimension = scales, np.zeros(n, np.int64), 0
    graph = tfl.SubGraphT()
    graph.tensors = [
        tensor([1, d], tfl.TensorType.FLOAT32, 0, "probe"),
        tensor([n, d], tfl.TensorType.INT8, 1, "templates", weights_q),
        tensor([1, n], tfl.TensorType.FLOAT32, 0, "scores"),
    ]
    op = tfl.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, np.array([0, 1, -1], np.int32), np.array([2], np.int32)
    options = tfl.FullyConnectedOptionsT()
    options.asymmetricQuantizeInputs = True
    op.builtinOptionsType, op.builtinOptions = tfl.BuiltinOptions.FullyConnectedOptions, options
    graph.operators, graph.inputs, graph.outputs = [op], np.array([0], np.int32), np.array([2], np.int32)
    code = tfl.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = tfl.BuiltinOperator.FULLY_CONNECTED
    code.version = 1
    empty, weights = tfl.BufferT(), tfl.BufferT()
    weights.data = codes.reshape(-1).view(np.uint8)
    model = tfl.ModelT()
    model.version, model.subgraphs, model.operatorCodes, model.buffers = 3, [graph], [code], [empty, weights]
    builder = flatbuffers.Builder(codes.nbytes + 4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())

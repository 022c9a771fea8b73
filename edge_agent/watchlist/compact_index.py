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

import mmap
from typing import Any

import numpy as np

# Rows quantized per call, so the float32 source is read in slices (a memory-mapped gallery file
# is never wholly resident) and the temporary stays small.
QUANTIZE_ROWS = 16384


class Int8Index:
    """``scores(probe)`` ~= ``templates @ probe`` within ``error_bound(probe)``."""

    def __init__(self, templates: np.ndarray, threads: int = 2) -> None:
        n, d = templates.shape
        self.size, self.dim = n, d
        model, scales, l1 = _fully_connected_model(templates)
        # |w - w_hat| <= scale / 2 per component, and ||w_hat||_1 bounds the input-rounding term.
        self._half_step = float(scales.max()) / 2 if n else 0.0
        self._l1_max = float(l1.max()) if n else 0.0
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


def release_mapped_pages(templates: np.ndarray) -> None:
    """Drop the pages of a memory-mapped gallery from this process (they stay in the page cache):
    quantizing reads every row once, and without this the whole file would stay resident."""
    mapping = getattr(templates, "_mmap", None)
    if isinstance(templates, np.memmap) and isinstance(mapping, mmap.mmap):
        mapping.madvise(mmap.MADV_DONTNEED)


def _fully_connected_model(templates: np.ndarray) -> tuple[bytes, np.ndarray, np.ndarray]:
    """One FULLY_CONNECTED op: float32 input [1, d], int8 weights [n, d] with per-row (per output
    channel) scales, float32 output [1, n]: TFLite's hybrid kernel, which XNNPACK runs as its
    dynamically quantized int8 GEMV. Returns the model, the scales and each row's ||w_hat||_1.

    The int8 rows are quantized straight into the flatbuffer's own buffer, slice by slice, so
    building needs the model's bytes twice (the builder's, then the immutable copy LiteRT takes)
    and nothing else of that size: no int8 matrix beside it, no serialised copy of it."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as tfl

    n, d = templates.shape
    # Room for the weights, the per-row scales (float32) and zero points (int64) and the rest:
    # a builder that has to grow copies itself into one twice the size.
    builder = flatbuffers.Builder(n * d + 12 * n + 65536)
    builder.StartVector(1, n * d, 16)
    builder.head -= n * d
    codes = np.frombuffer(builder.Bytes, np.int8, n * d, builder.head).reshape(n, d)
    scales = np.empty(n, np.float32)
    l1 = np.empty(n, np.float32)
    for start in range(0, n, QUANTIZE_ROWS):
        block = np.array(templates[start : start + QUANTIZE_ROWS], np.float32)  # a copy: rounded in place below
        release_mapped_pages(templates)
        peak = np.abs(block).max(axis=1)
        s = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
        block /= s[:, None]
        np.rint(block, out=block)
        end = start + len(block)
        codes[start:end] = block
        scales[start:end] = s
        l1[start:end] = np.abs(block).sum(axis=1) * s  # integers below 2**24: exact in float32
    del codes
    builder.vectorNumElems = n * d
    weights_data = builder.EndVector()

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
    model = tfl.ModelT()
    model.version, model.subgraphs, model.operatorCodes, model.buffers = 3, [graph], [code], [tfl.BufferT(), _WrittenBuffer(weights_data)]
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    content = bytes(memoryview(builder.Bytes)[builder.Head() :])
    del builder
    return content, scales, l1


class _WrittenBuffer:
    """A model buffer whose data vector is already in the builder (``Pack`` as BufferT's, data only)."""

    def __init__(self, data: int) -> None:
        self._data = data

    def Pack(self, builder: Any) -> int:  # noqa: N802 (the flatbuffers object API's name)
        from ai_edge_litert import schema_py_generated as tfl

        tfl.BufferStart(builder)
        tfl.BufferAddData(builder, self._data)
        return int(tfl.BufferEnd(builder))

"""An int8 copy of a large gallery, scored by LiteRT's dynamically quantized FULLY_CONNECTED kernel.

Why: scoring a probe against 10^6 float32 templates reads 512 MB, so it is bound by memory
bandwidth (23 ms here) whatever the arithmetic. Stored as int8 with one scale per template the
same pass reads 128 MB, and XNNPACK's int8 GEMV (VNNI / ARM dot product) keeps up with that.
numpy has no int8 matrix product, so the int8 matrix becomes the constant weight of a one-op
TFLite model built in memory (schema from ai-edge-litert, no converter needed).

From ``INT4_FROM`` templates the pass reads half that again: int4 weights (two per byte, TFLite
``TensorType.INT4``, which XNNPACK runs as its qc4w GEMV; 64 MB per probe for 10^6 templates).
Its rounding error is too large to re-rank from directly (thousands of candidates per probe), so
an int8 copy in numpy re-scores those candidates first and only what survives both proven bounds
is read in float32.

The scores are approximate; ``candidates`` returns every row whose exact score may reach a floor,
by the proven bounds below, which is what lets ``Gallery`` re-rank exactly (watchlist/gallery.py).
"""

from __future__ import annotations

import mmap
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

# Rows quantized per call, so the float32 source is read in slices (a memory-mapped gallery file
# is never wholly resident) and the temporary stays small.
QUANTIZE_ROWS = 16384
# From here int4 scoring pays: measured CPU ms per probe, int8 / int4 (benchmarks/gallery.py,
# one thread): 200,000 templates 1.63 / 1.67, 500,000 4.70 / 3.76, 1,000,000 14.10 / 13.10.
INT4_FROM = 500_000
# Rounding slack of one float32 dot product of two unit vectors of 128 components: at most
# (d + 2) * 2**-24 ~= 7.7e-6 apart from the real number (the exact re-rank and the floor are
# float32 dot products too, so each bound adds one of these per float32 product it compares).
FLOAT_SLACK = 1e-5


def compact_index(templates: np.ndarray, threads: int = 2) -> Int8Index | Int4Index:
    """The compact index for this gallery size: int8 scoring, or from ``INT4_FROM`` int4 scoring
    with an int8 second stage (benchmarks/gallery.py measures both)."""
    return Int4Index(templates, threads) if len(templates) >= INT4_FROM else Int8Index(templates, threads)


class _ScoringModel:
    """The one-op model and its interpreter, shared by both index kinds."""

    def __init__(self, model: bytes, dim: int, threads: int) -> None:
        self.dim = dim
        self._interpreter = _interpreter(model, threads)
        self._model = model  # the interpreter reads its constants from this buffer
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]

    def scores(self, probe: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Approximate scores of every template, written into ``out`` (float32, one per template)."""
        with self.scored(probe) as approx:
            out[:] = approx
        return out

    @contextmanager
    def scored(self, probe: np.ndarray) -> Iterator[np.ndarray]:
        """The approximate scores as a read-only view of the output tensor, valid inside the
        block only (the interpreter refuses to run while a view is held): no 4 MB copy per probe."""
        self._interpreter.set_tensor(self._input, np.asarray(probe, np.float32).reshape(1, self.dim))
        self._interpreter.invoke()
        view = self._interpreter.tensor(self._output)
        approx = view()[0]
        approx.flags.writeable = False
        try:
            yield approx
        finally:
            del approx, view


class Int8Index(_ScoringModel):
    """``scores(probe)`` ~= ``templates @ probe`` within ``error_bound(probe)``."""

    size: int

    def __init__(self, templates: np.ndarray, threads: int = 2) -> None:
        n, d = templates.shape
        self.size = n
        model, q = _fully_connected_model(templates)
        # |w - w_hat| <= scale / 2 per component, and ||w_hat||_1 bounds the input-rounding term.
        self._half_step = float(q.scales.max()) / 2 if n else 0.0
        self._l1_max = float(q.l1.max()) if n else 0.0
        super().__init__(model, d, threads)

    def error_bound(self, probe: np.ndarray) -> float:
        """Upper bound of |approximate - exact| for every template, for this probe.

        Weight rounding: sum_j |x_j| * scale_i / 2. Input rounding (the kernel quantizes the probe
        asymmetrically to int8 per call, step (max - min) / 255, zero point rounded too, so at
        most one step per component): step * ||w_hat_i||_1. Plus float32 accumulation slack."""
        x = np.asarray(probe, np.float32)
        step = (max(float(x.max()), 0.0) - min(float(x.min()), 0.0)) / 255.0
        return self._half_step * float(np.abs(x).sum()) + step * self._l1_max + FLOAT_SLACK

    def candidates(self, probe: np.ndarray, approx: np.ndarray, floor: float) -> np.ndarray:
        """Rows whose exact score may be >= ``floor``, given ``approx = scores(probe)``."""
        return np.flatnonzero(approx >= floor - self.error_bound(probe))


class Int4Index(_ScoringModel):
    """Like ``Int8Index`` with half the bytes per pass: int4 scores, then an int8 second stage.

    Bounds (x the probe, w a template, w4 / w8 its int4 / int8 rounding, x_hat the kernel's int8
    rounding of x, step its quantization step):
      exact - int4 score = <w - w4, x> + <w4, x - x_hat>
                        <= ||w - w4||_2 ||x||_2 (Cauchy-Schwarz, per row) + step ||w4||_1;
      exact - int8 score (computed in float32 from the codes, no input rounding)
                        <= ||w - w8||_2 ||x||_2.
    Per-row L2 norms, not the int8 path's max scale: int4's steps are 18x coarser, and the
    worst row's bound would make a third of the gallery a candidate. The row's term for a unit
    probe is the model's bias, so the kernel's output is already score + that term: ``scored``
    yields these upper scores, and picking candidates is one comparison over them."""

    def __init__(self, templates: np.ndarray, threads: int = 2) -> None:
        n, d = templates.shape
        self.size = n
        self._codes8 = np.empty((n, d), np.int8)
        self._scales8 = np.empty(n, np.float32)
        self._residual8 = np.empty(n, np.float32)
        self._row_norm = 1.0  # the largest ||w||_2, for the float32 slack (rows are unit vectors)

        def int8_copy(start: int, rows: np.ndarray) -> None:
            end = start + len(rows)
            self._row_norm = max(self._row_norm, float(np.sqrt(np.einsum("ij,ij->i", rows, rows).max())) * (1 + 1e-6))
            codes, self._scales8[start:end], _, self._residual8[start:end] = _quantize(rows.copy(), 127, residual=True)
            self._codes8[start:end] = codes

        def unit_terms(q: _Quantized) -> np.ndarray:
            return q.residual_l2 * np.float32(_UNIT)

        model, q = _fully_connected_model(templates, bits=4, also=int8_copy, bias=unit_terms)
        self._residual4 = q.residual_l2
        self._bias = unit_terms(q)
        self._l1_max = float(q.l1.max()) if n else 0.0
        super().__init__(model, d, threads)
        self._upper, self._passed = np.empty(n, np.float32), np.empty(n, bool)

    def _input_terms(self, x: np.ndarray) -> tuple[float, float]:
        """(||x||_2 rounded up, the part of every row's bound that does not depend on the row).
        The kernel quantizes the probe as for int8 (step (max - min) / 255, at most one step per
        component with the zero point's rounding), hence step * max ||w4||_1; its own float work
        (scaling an exact int32 sum, adding the bias) is a few ulps, within the float slack."""
        step = (max(float(x.max()), 0.0) - min(float(x.min()), 0.0)) / 255.0
        norm = _norm(x)
        return norm, step * self._l1_max + FLOAT_SLACK * norm * self._row_norm

    def scores(self, probe: np.ndarray, out: np.ndarray) -> np.ndarray:
        """The int4 scores themselves (the kernel's output less its bias), into ``out``."""
        with self.scored(probe) as upper:
            np.subtract(upper, self._bias, out=out)
        return out

    def error_bounds(self, probe: np.ndarray) -> np.ndarray:
        """Per template, an upper bound of |int4 score - exact score| for this probe."""
        x = np.asarray(probe, np.float32)
        norm, constant = self._input_terms(x)
        return np.asarray(self._residual4 * np.float32(norm) + np.float32(constant))

    def candidates(self, probe: np.ndarray, upper: np.ndarray, floor: float) -> np.ndarray:
        """Rows whose exact score may be >= ``floor``, given ``upper`` from ``scored(probe)``: by the
        int4 bound, then, of those, by the int8 scores of the numpy copy and their bound."""
        x = np.asarray(probe, np.float32)
        norm, constant = self._input_terms(x)
        if norm > _UNIT:  # not a unit probe: the bias is short of this probe's residual terms
            np.multiply(self._residual4, np.float32(norm - _UNIT), out=self._upper)
            upper = np.add(self._upper, upper, out=self._upper)
        threshold = np.nextafter(np.float32(floor - constant), np.float32(-np.inf))  # rounded down, as are the sums' roundings
        rows = np.flatnonzero(np.greater_equal(upper, threshold, out=self._passed))
        int8 = np.einsum("ij,j->i", self._codes8.take(rows, axis=0), x) * self._scales8[rows]  # float32 products, on this thread
        slack = 2 * FLOAT_SLACK * norm * self._row_norm  # this float32 product, and the exact one's
        return np.asarray(rows[int8 + self._residual8[rows] * np.float32(norm) + np.float32(slack) >= floor])


_UNIT = 1 + 1e-5  # probes of norm up to this are covered by the int4 model's bias alone


def _norm(x: np.ndarray) -> float:
    """||x||_2 rounded up, computed in float64."""
    return float(np.linalg.norm(x.astype(np.float64))) * (1 + 1e-6)


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


@dataclass(frozen=True)
class _Quantized:
    """What the bounds need of the quantized rows: per row its scale, ||w_hat||_1 and (int4 only)
    ||w - w_hat||_2 (rounded up, so a bound built from it stays a bound)."""

    scales: np.ndarray
    l1: np.ndarray
    residual_l2: np.ndarray


def _quantize(block: np.ndarray, qmax: int, residual: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Symmetric per-row rounding to integers in [-qmax, qmax]: (codes as float, scales, ||w_hat||_1,
    ||w - w_hat||_2 rounded up if ``residual``). ``block`` is a float32 copy, overwritten with the codes."""
    peak = np.abs(block).max(axis=1)
    s = np.where(peak > 0, peak / qmax, 1.0).astype(np.float32)
    source = block.copy() if residual else None
    block /= s[:, None]
    np.rint(block, out=block)
    norms = None
    if source is not None:
        source -= block * s[:, None]  # each product and difference is within half an ulp of |w| <= 1
        # Relative error of the float32 sum of squares below 128 * 2**-24; 1e-4 covers it and the
        # rounding of the subtraction above (at most 2**-24 per component) many times over.
        norms = np.sqrt(np.einsum("ij,ij->i", source, source)) * np.float32(1 + 1e-4) + np.float32(1e-6)
    l1 = np.abs(block).sum(axis=1) * s  # integers below 2**24: exact in float32
    return block, s, l1, norms


def _fully_connected_model(
    templates: np.ndarray,
    bits: int = 8,
    also: Callable[[int, np.ndarray], None] | None = None,
    bias: Callable[[_Quantized], np.ndarray] | None = None,
) -> tuple[bytes, _Quantized]:
    """One FULLY_CONNECTED op: float32 input [1, d], int8 (or int4, two per byte, low nibble
    first) weights [n, d] with per-row (per output channel) scales, float32 output [1, n]:
    TFLite's hybrid kernel, which XNNPACK runs as its dynamically quantized int8 (qc8w) or int4
    (qc4w) GEMV. ``also(start, rows)`` sees each float32 slice before it is rounded; ``bias``,
    given the quantized rows, returns a float32 [n] added to the scores in the kernel's epilogue.

    The rows are quantized straight into the flatbuffer's own buffer, slice by slice, so
    building needs the model's bytes twice (the builder's, then the immutable copy LiteRT takes)
    and nothing else of that size: no code matrix beside it, no serialised copy of it."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as tfl

    n, d = templates.shape
    if bits == 4 and d % 2:
        raise ValueError(f"int4 rows pack two values per byte: {d} is odd")
    size = n * d * bits // 8
    # Room for the weights, the per-row scales (float32) and zero points (int64) and the rest:
    # a builder that has to grow copies itself into one twice the size.
    builder = flatbuffers.Builder(size + 16 * n + 65536)
    builder.StartVector(1, size, 16)
    builder.head -= size
    packed = np.frombuffer(builder.Bytes, np.uint8, size, builder.head).reshape(n, size // n if n else 0)
    quantized = _Quantized(np.empty(n, np.float32), np.empty(n, np.float32), np.empty(n if bits == 4 else 0, np.float32))
    for start in range(0, n, QUANTIZE_ROWS):
        block = np.array(templates[start : start + QUANTIZE_ROWS], np.float32)  # a copy: rounded in place below
        release_mapped_pages(templates)
        if also is not None:
            also(start, block)
        end = start + len(block)
        codes, quantized.scales[start:end], quantized.l1[start:end], residual = _quantize(block, 127 if bits == 8 else 7, residual=bits == 4)
        if residual is not None:
            quantized.residual_l2[start:end] = residual
        if bits == 8:
            packed.view(np.int8)[start:end] = codes  # cast in the assignment: no int8 copy of the slice
        else:
            ints = codes.astype(np.int8).view(np.uint8)
            packed[start:end] = (ints[:, 0::2] & 0x0F) | (ints[:, 1::2] << 4)
    del packed
    builder.vectorNumElems = size
    weights_data = builder.EndVector()
    scales = quantized.scales

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
        tensor([n, d], tfl.TensorType.INT8 if bits == 8 else tfl.TensorType.INT4, 1, "templates", weights_q),
        tensor([1, n], tfl.TensorType.FLOAT32, 0, "scores"),
    ]
    buffers = [tfl.BufferT(), _WrittenBuffer(weights_data)]
    bias_tensor = -1
    if bias is not None:
        added = tfl.BufferT()
        added.data = np.ascontiguousarray(bias(quantized), np.float32).view(np.uint8)
        buffers.append(added)
        graph.tensors.append(tensor([n], tfl.TensorType.FLOAT32, 2, "bias"))
        bias_tensor = 3
    op = tfl.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, np.array([0, 1, bias_tensor], np.int32), np.array([2], np.int32)
    options = tfl.FullyConnectedOptionsT()
    options.asymmetricQuantizeInputs = True
    op.builtinOptionsType, op.builtinOptions = tfl.BuiltinOptions.FullyConnectedOptions, options
    graph.operators, graph.inputs, graph.outputs = [op], np.array([0], np.int32), np.array([2], np.int32)
    code = tfl.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = tfl.BuiltinOperator.FULLY_CONNECTED
    code.version = 1
    model = tfl.ModelT()
    model.version, model.subgraphs, model.operatorCodes, model.buffers = 3, [graph], [code], buffers
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    content = bytes(memoryview(builder.Bytes)[builder.Head() :])
    del builder
    return content, quantized


class _WrittenBuffer:
    """A model buffer whose data vector is already in the builder (``Pack`` as BufferT's, data only)."""

    def __init__(self, data: int) -> None:
        self._data = data

    def Pack(self, builder: Any) -> int:  # noqa: N802 (the flatbuffers object API's name)
        from ai_edge_litert import schema_py_generated as tfl

        tfl.BufferStart(builder)
        tfl.BufferAddData(builder, self._data)
        return int(tfl.BufferEnd(builder))

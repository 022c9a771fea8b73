"""Rewrite MediaPipe's float16-weight BlazeFace .tflite into a plain float32 graph.

Why each step (ai-edge-quantizer needs a clean float graph to quantize well):
- float16 weights + DEQUANTIZE ops are replaced by float32 constants: the quantizer
  calibrates and quantizes real weight tensors, not DEQUANTIZE outputs.
- the old MediaPipe files keep op codes in deprecated_builtin_code; copying them into
  builtin_code stops newer tools misreading ops (seen as `zero_point != 0` in CONV_2D).
- a standalone RELU after CONV_2D / DEPTHWISE_CONV_2D / ADD is fused into that op: an int8
  standalone RELU falls off XNNPACK and splits the graph into dozens of partitions.
- unused tensors and buffers are dropped so the quantizer sees no orphan constants.
- a serving_default signature is added: the quantizer calibrates through signatures.
Run (quantizer venv): models/build/.venv-q/bin/python models/build/tflite_fp32.py SRC DST
"""

from __future__ import annotations

import sys
from pathlib import Path

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

OP = schema.BuiltinOperator
FUSABLE = {OP.CONV_2D, OP.DEPTHWISE_CONV_2D, OP.ADD}


def _op_code(model: schema.ModelT, op: schema.OperatorT) -> int:
    code = model.operatorCodes[op.opcodeIndex]
    return max(int(code.builtinCode), int(code.deprecatedBuiltinCode))


def _fix_op_codes(model: schema.ModelT) -> None:
    for code in model.operatorCodes:
        real = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
        code.builtinCode = real
        code.deprecatedBuiltinCode = min(real, OP.PLACEHOLDER_FOR_GREATER_OP_CODES)


def _buffer_array(model: schema.ModelT, tensor: schema.TensorT, dtype) -> np.ndarray:
    data = model.buffers[tensor.buffer].data
    return np.frombuffer(bytes(bytearray(data)), dtype=dtype)


def _expand_float16(model: schema.ModelT, graph: schema.SubGraphT) -> int:
    """Replace each DEQUANTIZE of a constant float16 tensor by a float32 constant."""
    kept, removed = [], 0
    for op in graph.operators:
        if _op_code(model, op) == OP.DEQUANTIZE:
            src = graph.tensors[op.inputs[0]]
            if src.type == schema.TensorType.FLOAT16 and src.buffer and model.buffers[src.buffer].data is not None:
                values = _buffer_array(model, src, np.float16).astype(np.float32)
                buffer = schema.BufferT()
                buffer.data = np.frombuffer(values.tobytes(), np.uint8)
                model.buffers.append(buffer)
                dst = graph.tensors[op.outputs[0]]
                dst.buffer = len(model.buffers) - 1
                dst.type = schema.TensorType.FLOAT32
                removed += 1
                continue
        kept.append(op)
    graph.operators = kept
    return removed


def _fuse_relu(model: schema.ModelT, graph: schema.SubGraphT) -> int:
    """Fold RELU into its producer when the producer's output feeds nothing else."""
    consumers: dict[int, int] = {}
    for op in graph.operators:
        for index in op.inputs:
            consumers[index] = consumers.get(index, 0) + 1
    producer = {op.outputs[0]: op for op in graph.operators}
    outputs = set(graph.outputs)
    kept, fused = [], 0
    for op in graph.operators:
        if _op_code(model, op) == OP.RELU:
            source = op.inputs[0]
            prev = producer.get(source)
            if (prev is not None and _op_code(model, prev) in FUSABLE and consumers.get(source) == 1
                    and source not in outputs
                    and prev.builtinOptions.fusedActivationFunction == schema.ActivationFunctionType.NONE):
                prev.builtinOptions.fusedActivationFunction = schema.ActivationFunctionType.RELU
                prev.outputs = [op.outputs[0]]
                producer[op.outputs[0]] = prev
                fused += 1
                continue
        kept.append(op)
    graph.operators = kept
    return fused


def _drop_unused(model: schema.ModelT) -> None:
    """Keep only tensors an op or the graph uses, and only buffers a kept tensor uses."""
    graph = model.subgraphs[0]
    used = sorted({i for op in graph.operators for i in list(op.inputs) + list(op.outputs) if i >= 0}
                  | set(graph.inputs) | set(graph.outputs))
    remap = {old: new for new, old in enumerate(used)}
    graph.tensors = [graph.tensors[i] for i in used]
    for op in graph.operators:
        op.inputs = [remap[i] if i >= 0 else i for i in op.inputs]
        op.outputs = [remap[i] for i in op.outputs]
    graph.inputs = [remap[i] for i in graph.inputs]
    graph.outputs = [remap[i] for i in graph.outputs]
    buffers = [model.buffers[0]]  # buffer 0 stays the empty sentinel
    buffer_remap = {0: 0}
    for tensor in graph.tensors:
        if tensor.buffer and tensor.buffer not in buffer_remap:
            buffer_remap[tensor.buffer] = len(buffers)
            buffers.append(model.buffers[tensor.buffer])
        tensor.buffer = buffer_remap.get(tensor.buffer, 0)
    model.buffers = buffers
    used_codes = sorted({op.opcodeIndex for op in graph.operators})
    code_remap = {old: new for new, old in enumerate(used_codes)}
    model.operatorCodes = [model.operatorCodes[i] for i in used_codes]
    for op in graph.operators:
        op.opcodeIndex = code_remap[op.opcodeIndex]


def _add_signature(model: schema.ModelT) -> None:
    """A serving_default signature (tensor names as keys): the quantizer calibrates through it."""
    graph = model.subgraphs[0]

    def tensor_map(index: int) -> schema.TensorMapT:
        entry = schema.TensorMapT()
        entry.name = graph.tensors[index].name
        entry.tensorIndex = index
        return entry

    signature = schema.SignatureDefT()
    signature.signatureKey = b"serving_default"
    signature.subgraphIndex = 0
    signature.inputs = [tensor_map(i) for i in graph.inputs]
    signature.outputs = [tensor_map(i) for i in graph.outputs]
    model.signatureDefs = [signature]


def rewrite(src: bytes) -> bytes:
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(src, 0))
    if len(model.subgraphs) != 1:
        raise SystemExit("expected a single-subgraph BlazeFace model")
    _fix_op_codes(model)
    graph = model.subgraphs[0]
    expanded = _expand_float16(model, graph)
    fused = _fuse_relu(model, graph)
    _drop_unused(model)
    _add_signature(model)
    builder = flatbuffers.Builder(len(src) * 3)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    print(f"expanded {expanded} float16 constants, fused {fused} RELUs, {len(graph.operators)} ops left")
    return bytes(builder.Output())


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        raise SystemExit("usage: tflite_fp32.py SRC.tflite DST.tflite")
    Path(argv[1]).write_bytes(rewrite(Path(argv[0]).read_bytes()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

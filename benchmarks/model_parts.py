"""Where a model's invoke time goes (issue 14.4): the graph timed by parts. The Python runtime
has no per-op profiler, so the model is cut after op k (ops 0..k kept, op k's output made the
graph's output) and each cut's invoke CPU time measured; op k costs the difference. The ops are
then summed by kind, with depthwise convolutions split by filter size: a 1x1 depthwise conv is a
per-channel multiply (the embedder's PReLU rewrite and input normalisation), not a convolution.

    python benchmarks/model_parts.py [models/sface_int8.tflite] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def invoke_cpu_ms(model: bytes, threads: int, repeats: int) -> float:
    from edge_agent.vision.runtime import _interpreter_module

    interpreter = _interpreter_module().Interpreter(model_content=model, num_threads=threads)
    interpreter.allocate_tensors()
    for _ in range(5):
        interpreter.invoke()
    times = []
    for _ in range(repeats):
        c0 = time.process_time()
        interpreter.invoke()
        times.append(time.process_time() - c0)
    return statistics.median(times) * 1000


def cut_after(buffer: bytes, k: int) -> bytes:
    import flatbuffers
    from ai_edge_litert import schema_py_generated as tfl

    model = tfl.ModelT.InitFromPackedBuf(buffer, 0)
    graph = model.subgraphs[0]
    graph.operators = graph.operators[: k + 1]
    graph.outputs = np.array(graph.operators[k].outputs[:1], np.int32)
    model.signatureDefs = None
    builder = flatbuffers.Builder(len(buffer) + 65536)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def op_kinds(buffer: bytes) -> list[str]:
    from ai_edge_litert import schema_py_generated as tfl

    model = tfl.ModelT.InitFromPackedBuf(buffer, 0)
    graph = model.subgraphs[0]
    names = {v: k for k, v in vars(tfl.BuiltinOperator).items() if not k.startswith("_")}
    kinds = []
    for op in graph.operators:
        code = model.operatorCodes[op.opcodeIndex]
        kind: Any = names[max(code.builtinCode, code.deprecatedBuiltinCode)]
        if kind == "DEPTHWISE_CONV_2D":
            h, w = (int(x) for x in graph.tensors[op.inputs[1]].shape[1:3])
            kind = f"DEPTHWISE_CONV_2D {h}x{w}"
        kinds.append(kind)
    return kinds


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", nargs="?", type=Path, default=REPO / "models" / "sface_int8.tflite")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=60)
    args = p.parse_args(argv)
    from edge_agent.vision.native_stderr import without_runtime_banner

    buffer = args.model.read_bytes()
    kinds = op_kinds(buffer)
    with without_runtime_banner():
        # Best of two medians per cut: a cut timed while another job held the core is an outlier.
        cumulative = [min(invoke_cpu_ms(cut_after(buffer, k), args.threads, args.repeats) for _ in range(2)) for k in range(len(kinds))]
        whole = min(invoke_cpu_ms(buffer, args.threads, args.repeats) for _ in range(2))
    by_kind: dict[str, list[float]] = defaultdict(list)
    previous = 0.0
    for kind, total in zip(kinds, cumulative, strict=True):
        by_kind[kind].append(total - previous)
        previous = total
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{args.model.name}: {len(kinds)} ops, whole invoke {whole:.2f} ms CPU, {args.threads} thread(s); load average {load}\n")
    print("| op kind | ops | ms CPU (sum of cuts' differences) | share |")
    print("|---|---:|---:|---:|")
    for kind, costs in sorted(by_kind.items(), key=lambda kv: -sum(kv[1])):
        print(f"| {kind} | {len(costs)} | {sum(costs):.2f} | {sum(costs) / cumulative[-1]:.0%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

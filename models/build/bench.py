"""Latency of every model in models/ and of the OpenCV peer embedder, same run, same machine.

Why: single passes vary ~20 % on a shared machine, so each figure is the best of several
passes' medians of 50 invokes, and the peer is timed in the same run for a fair ratio.
Run (project venv): python models/build/bench.py [--threads 2] [--passes 5]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from common import MODELS_DIR, WORK_DIR
from edge_agent.vision.cpu_profile import read_cpu_profile
from edge_agent.vision.peer import PeerPipeline


def _best_median_ms(fn, repeats: int, passes: int) -> float:
    fn()
    medians = []
    for _ in range(passes):
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        medians.append(float(np.median(times)))
    return min(medians) * 1000


def tflite_ms(path, threads: int, repeats: int, passes: int) -> float:
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path), num_threads=threads)
    interp.allocate_tensors()
    rng = np.random.default_rng(0)
    for detail in interp.get_input_details():
        if detail["dtype"] == np.int8:
            value = rng.integers(-128, 128, detail["shape"]).astype(np.int8)
        else:
            value = rng.uniform(-1, 1, detail["shape"]).astype(detail["dtype"])
        interp.set_tensor(detail["index"], value)
    return _best_median_ms(interp.invoke, repeats, passes)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    print(f"Machine: {read_cpu_profile().summary()}")
    peer = PeerPipeline()
    crop = np.random.default_rng(0).integers(0, 256, (112, 112, 3)).astype(np.uint8)
    peer_ms = _best_median_ms(lambda: peer.embed(crop), args.repeats, args.passes)
    print(f"OpenCV FaceRecognizerSF (fp32 SFace, peer): {peer_ms:.2f} ms")
    notes_dir = WORK_DIR / "notes"
    notes_dir.mkdir(parents=True, exist_ok=True)
    for path in sorted(MODELS_DIR.glob("*.tflite")):
        ms = tflite_ms(path, args.threads, args.repeats, args.passes)
        print(f"{path.name}: {ms:.2f} ms")
        notes_path = notes_dir / f"{path.stem}.json"
        notes = json.loads(notes_path.read_text()) if notes_path.exists() else {}
        notes[f"bench_ms_x86_{args.threads}threads"] = round(ms, 2)
        if path.stem.startswith("sface"):
            notes["bench_peer_opencv_sface_ms_same_run"] = round(peer_ms, 2)
        notes_path.write_text(json.dumps(notes, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Recognition-core benchmark: ours (int8 LiteRT BlazeFace + SFace) against OpenCV YuNet + SFace,
measured in one run on the same frames. Prints one Markdown table.

    python benchmarks/recognition.py [--repeats 50]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import cv2

import numpy as np

from edge_agent.demo.scenes import background, frame_with_faces, portrait_tile
from edge_agent.vision.alignment import align_face
from edge_agent.vision.core import RecognitionCore
from edge_agent.vision.cpu_profile import read_cpu_profile
from edge_agent.vision.detector import BlazeFaceDetector
from edge_agent.vision.model_files import ModelManifest, default_models_dir
from edge_agent.vision.peer import PeerPipeline, load_reference_sface
from edge_agent.vision.runtime import LiteRTModel
from edge_agent.vision.tiling import TileGrid
from edge_agent.watchlist.gallery import Gallery


@dataclass(frozen=True)
class Timing:
    """Median wall time and median CPU time (this process, every thread) per call, in ms. On a
    shared machine wall time includes waiting for a core; CPU time is the work itself."""

    wall: float
    cpu: float

    def __str__(self) -> str:
        return f"{self.wall:.2f} / {self.cpu:.2f}"

    def __truediv__(self, other: "Timing") -> str:
        return f"{self.cpu / other.cpu:.2f}"

    def scaled(self, factor: float) -> "Timing":
        return Timing(self.wall * factor, self.cpu * factor)


def median_ms(fn: Callable[[], object], repeats: int, passes: int = 3) -> Timing:
    """Median over ``passes`` of the per-call medians: single passes vary ~20 % on a shared machine."""
    fn()
    walls, cpus = [], []
    for _ in range(passes):
        wall, cpu = [], []
        for _ in range(repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            wall.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        walls.append(statistics.median(wall))
        cpus.append(statistics.median(cpu))
    return Timing(statistics.median(walls) * 1000, statistics.median(cpus) * 1000)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    cv2.setNumThreads(args.threads)  # the peer gets the same thread count as our interpreters
    r = args.repeats
    rows: list[tuple[str, str, str, str]] = []

    one, five = frame_with_faces(1), frame_with_faces(5)
    manifest = ModelManifest(default_models_dir())
    ours = RecognitionCore.load(detector="full", threads=args.threads)
    peer = PeerPipeline()
    reference = load_reference_sface()

    # Detectors, per frame (640x480, 1 face).
    for name, variant in (("blazeface_full_range_int8", "full"), ("blazeface_full_range_float", "full"), ("blazeface_short_range", "short")):
        if name in manifest.entries:
            det = BlazeFaceDetector(LiteRTModel(manifest.resolve(name).path, args.threads), variant)
            rows.append((f"detector {name}", str(median_ms(lambda det=det: det.detect(one), r)), "", ""))
    ours_det = median_ms(lambda: ours.detect(one), r)
    peer_det = median_ms(lambda: peer.detect(one), r)
    rows.append(("detector (ours: full range; peer: YuNet int8)", str(ours_det), str(peer_det), ours_det / peer_det))

    # Distant faces in HD frames: whole frame only vs overlapping tiles (edge_agent/vision/tiling.py).
    hd = background(1280, 720, 5).copy()
    far = round(46 / 0.52)  # a 46 px face (obama_2's face is 52 % of its portrait tile)
    hd[100 : 100 + far, 200 : 200 + far] = portrait_tile("obama_2.jpg", far)
    for grid in ("1x1", "2x2"):
        tiled = RecognitionCore.load(detector="full", threads=args.threads, tiles=TileGrid.parse(grid))
        label = f"detector full range, 1280x720, tiles {grid} (46 px face found: {'yes' if tiled.detect(hd) else 'no'})"
        rows.append((label, str(median_ms(lambda tiled=tiled: tiled.detect(hd), r)), "", ""))

    # Embedders, per face.
    detection = max(ours.detect(one), key=lambda d: d.score)
    aligned = align_face(one, detection.keypoints)
    peer_face = peer.detect(one)[0]
    peer_crop = peer.align_crop(one, peer_face)
    ours_emb = median_ms(lambda: ours.embedder.embed(aligned), r)
    fp32_emb = median_ms(lambda: reference.embed(aligned), r)
    peer_emb = median_ms(lambda: peer.embed(peer_crop), r)
    rows.append(("embedder int8 (ours) vs FaceRecognizerSF (peer)", str(ours_emb), str(peer_emb), ours_emb / peer_emb))
    rows.append(("embedder fp32 SFace (OpenCV DNN, reference)", str(fp32_emb), "", ""))

    # End to end: detect + align + quality + embed for every face.
    def peer_end_to_end(frame: np.ndarray) -> None:
        for face in peer.detect(frame):
            peer.embed(peer.align_crop(frame, face))

    for label, frame in (("1 face", one), ("5 faces", five)):
        found = len(ours.faces(frame))
        ours_e2e = median_ms(lambda frame=frame: ours.faces(frame), max(10, r // 2))
        peer_e2e = median_ms(lambda frame=frame: peer_end_to_end(frame), max(10, r // 2))
        rows.append((f"end-to-end 640x480, {label} (ours found {found}, peer {len(peer.detect(frame))})", str(ours_e2e), str(peer_e2e), ours_e2e / peer_e2e))

    # Gallery search: one probe against N templates (2 templates per subject), top 5.
    rng = np.random.default_rng(0)
    for n in (1_000, 10_000, 100_000, 1_000_000):
        templates = rng.standard_normal((n, 128), dtype=np.float32)
        templates /= np.linalg.norm(templates, axis=1, keepdims=True)
        gallery = Gallery(templates, [f"s{i // 2}" for i in range(n)])
        probe = templates[n // 3]
        rows.append((f"top-5 search, {n:,} templates", str(median_ms(lambda gallery=gallery, probe=probe: gallery.search(probe, 5), max(5, r // 5))), "", ""))

    steps = new_steps_beside_old(one, five, args.threads, r)

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows.append(("peak RSS of this process (MB, includes 1M-template gallery)", f"{peak_mb:.0f}", "", ""))

    # int8 only pays off with an int8 dot-product instruction: say which machine this was.
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"Machine: {read_cpu_profile().summary()}; load average {load} (other jobs share the cores: wall time includes waiting for one)\n")
    print(f"| measurement (ms, wall / CPU, unless stated; median of 3 passes x {r}; {args.threads} threads, OpenCV too) | ours | peer (OpenCV YuNet + SFace) | ours/peer (CPU) |")
    print("|---|---:|---:|---:|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print("\nIssue 13's steps, in the same run (ms; new = five face-mesh points, old = four BlazeFace keypoints;"
          " old and new timed call by call in turn, new/old is the median of the per-call ratios):\n")
    print("| step | old | new | new/old |")
    print("|---|---:|---:|---:|")
    for row in steps:
        print("| " + " | ".join(row) + " |")
    return 0


def paired_ms(old: Callable[[], object], new: Callable[[], object], repeats: int) -> tuple[float, float, float]:
    """Medians of old and new, timed alternately call by call, and the median of their per-pair
    ratio: on a shared machine load drifts over seconds, and alternating keeps it the same for both."""
    old(), new()
    times_old, times_new, ratios = [], [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        old()
        t1 = time.perf_counter()
        new()
        t2 = time.perf_counter()
        times_old.append(t1 - t0)
        times_new.append(t2 - t1)
        ratios.append((t2 - t1) / (t1 - t0))
    return statistics.median(times_old) * 1000, statistics.median(times_new) * 1000, statistics.median(ratios)


def new_steps_beside_old(one: np.ndarray, five: np.ndarray, threads: int, r: int) -> list[tuple[str, str, str, str]]:
    """The five-point aligner against the retired four-point one (alignment alone, and detect +
    align + quality + embed per face for each detector setting), and the subject rule."""
    from edge_agent.vision.subject import choose_subject

    rows = []
    for detector in ("full", "both"):
        old = RecognitionCore.load(detector=detector, threads=threads, aligner="four_point")
        new = RecognitionCore.load(detector=detector, threads=threads)
        if detector == "full":
            d = new.detect(one)[0]
            a_old, a_new, ratio = paired_ms(lambda old=old, d=d: old.aligner.align(one, d), lambda new=new, d=d: new.aligner.align(one, d), 3 * r)
            mesh = median_ms(lambda new=new, d=d: new.aligner.mesh.points(one, d), r)
            rows.append(("align one face (new: face mesh + 5-point fit + warp)", f"{a_old:.2f}", f"{a_new:.2f}", f"{ratio:.1f}"))
            rows.append(("of which the face-mesh model (192x192, float; wall / CPU)", "", str(mesh), ""))
            faces = new.faces(five)
            rule = median_ms(lambda faces=faces: choose_subject(faces), r).wall * 1000
            rows.append((f"subject rule over {len(faces)} faces", "", f"{rule:.1f} us", ""))
        for label, frame in (("1 face", one), ("5 faces", five)):
            n = max(1, len(new.faces(frame)))
            t_old, t_new, ratio = paired_ms(lambda old=old, frame=frame: old.faces(frame), lambda new=new, frame=frame: new.faces(frame), 3 * r)
            rows.append((f"detect + align + quality + embed per face, detector {detector}, {label}", f"{t_old / n:.2f}", f"{t_new / n:.2f}", f"{ratio:.2f}"))
    return rows


if __name__ == "__main__":
    sys.exit(main())

"""Evaluation benchmark (issue 6 target: 10,000 images evaluated in under 5 minutes on this machine).

Two parts, measured separately because they scale differently:

* embedding throughput: every dev-set image through the real RecognitionCore (probe path, plus
  the enrolment path for one image per identity), cache disabled, with 1 and N worker processes;
* analysis at full scale: 1:1, 1:N at watchlists of 1,000 and 2,000, per-group sweeps, and the
  HTML report, on ~10,000 synthetic unit vectors (the statistics do not care where vectors came from).

It then projects the time for 10,000 real images. Prints one Markdown table.

    python benchmarks/evaluation.py [--devset ../shared/datasets/faces-dev] [--workers 2] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from edge_agent.vision.identity import DEFAULT_DETECTOR, DETECTOR_CHOICES  # noqa: E402
from edge_agent.evaluation.analysis import EvaluationSettings, analyse
from edge_agent.evaluation.dataset import LabelledDataset, LabelledImage, scan_dataset
from edge_agent.evaluation.parallel import CorePool, worker_enrol, worker_probe
from edge_agent.evaluation.report_html import render
from edge_agent.evaluation.runner import (
    EmbeddedDataset,
    core_enrol_fn,
    core_model_description,
    core_probe_fn,
    embed_dataset,
)
from edge_agent.vision.core import RecognitionCore

REPO = Path(__file__).resolve().parents[1]


def embedding_seconds_per_image(dataset: LabelledDataset, workers: int, detector: str) -> float:
    core = RecognitionCore.load(detector=detector, threads=2)
    model = core_model_description(core)
    started = time.perf_counter()
    if workers == 1:
        embed_dataset(dataset, core_probe_fn(core), core_enrol_fn(core), model)
    else:
        with CorePool(None, detector, workers) as pool:
            embed_dataset(dataset, worker_probe, worker_enrol, model, mapper=pool.map)
    return (time.perf_counter() - started) / len(dataset.images)


def synthetic_embedded(n_identities: int = 3000, seed: int = 0) -> tuple[EmbeddedDataset, dict[str, str]]:
    rng = np.random.default_rng(seed)
    counts = [1] * 1000 + [3] * 1500 + [8] * (n_identities - 2500)
    ids = np.repeat(np.arange(len(counts)), counts)
    centres = rng.normal(size=(len(counts), 128))
    emb = centres[ids] + 0.7 * rng.normal(size=(ids.size, 128))
    emb = (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32)
    images = tuple(LabelledImage(Path(f"id{i}/{j}.jpg"), f"id{i}") for j, i in enumerate(ids.tolist()))
    enrolment: dict[str, tuple[int, ...]] = {}
    for j, i in enumerate(ids.tolist()):
        if counts[i] > 1:
            enrolment.setdefault(f"id{i}", (j,))
    groups = {f"id{i}": "ABC"[i % 3] for i in range(len(counts))}
    embedded = EmbeddedDataset(images, emb, np.ones(ids.size, bool), tuple(() for _ in ids), emb, enrolment, (), {"synthetic": True})
    return embedded, groups


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devset", type=Path, default=Path(os.environ.get("EDGE_AGENT_DEVSET") or REPO.parent / "shared" / "datasets" / "faces-dev"))
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--detector", default=DEFAULT_DETECTOR, choices=DETECTOR_CHOICES)
    parser.add_argument("--repeat", type=int, default=3, help="times the dev set is listed, so more images are timed")
    args = parser.parse_args()

    base = scan_dataset(args.devset)
    dataset = LabelledDataset(base.root, tuple(LabelledImage(im.path, f"{im.identity}~{r}") for r in range(args.repeat) for im in base.images))
    rows = []
    per_image = {}
    for workers in sorted({1, args.workers}):
        per_image[workers] = embedding_seconds_per_image(dataset, workers, args.detector)
        rows.append((f"embed (probe + reference paths), {workers} worker(s)", f"{per_image[workers] * 1000:.1f} ms/image ({len(dataset.images)} images)"))

    embedded, groups = synthetic_embedded()
    started = time.perf_counter()
    evaluation = analyse(embedded, groups, EvaluationSettings(watchlist_sizes=(1000, 2000)), {"root": "synthetic"}, datetime.now(UTC))
    analysis_s = time.perf_counter() - started
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "report.html").write_text(render(evaluation))
    render_s = time.perf_counter() - started
    rows.append((f"analysis, {len(embedded.images):,} images", f"{analysis_s:.1f} s"))
    rows.append(("HTML report with plots", f"{render_s:.1f} s"))
    best = min(per_image.values())
    # per-image time already includes the enrolment path for the dev set's share of reference images (~1 in 4)
    projected = 10_000 * best + analysis_s + render_s
    rows.append(("projected: 10,000 images", f"{projected / 60:.1f} min (target < 5 min)"))

    print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print("| step | time |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Embedding on several cores: one RecognitionCore per worker process.

Decoding, detection decoding and alignment are Python/OpenCV work that one interpreter runs on one
core, so worker processes (not threads) are what use a second core. Workers are *spawned*, not
forked: the parent already runs TFLite interpreters whose threads must not be forked.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Self

from edge_agent.evaluation.embedding_cache import EnrolmentOutcome
from edge_agent.evaluation.runner import EmbedFn, core_enrol_fn, core_probe_fn

# Per-worker-process state, set once by the pool initializer (never used in the parent).
_WORKER: dict[str, EmbedFn] = {}


def _init_worker(models_dir: Path | None, detector: str, precision: str) -> None:
    from edge_agent.vision.core import RecognitionCore

    core = RecognitionCore.load(models_dir, detector=detector, threads=1, precision=precision)
    _WORKER["probe"] = core_probe_fn(core)
    _WORKER["enrol"] = core_enrol_fn(core)


def worker_probe(path: Path) -> EnrolmentOutcome:
    """Picklable probe function: runs in a worker with that worker's core."""
    return _WORKER["probe"](path)


def worker_enrol(path: Path) -> EnrolmentOutcome:
    return _WORKER["enrol"](path)


class CorePool:
    """``with CorePool(models, "both", 2) as pool: embed_dataset(..., worker_probe, worker_enrol, mapper=pool.map)``."""

    def __init__(self, models_dir: Path | None, detector: str, workers: int, precision: str = "auto") -> None:
        context = multiprocessing.get_context("spawn")
        self._pool = context.Pool(workers, initializer=_init_worker, initargs=(models_dir, detector, precision))

    def map(self, fn: EmbedFn, paths: Sequence[Path]) -> Iterable[EnrolmentOutcome]:
        return self._pool.imap(fn, paths, chunksize=4)

    def close(self) -> None:
        self._pool.close()
        self._pool.join()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is not None:
            self._pool.terminate()
            self._pool.join()
        else:
            self.close()

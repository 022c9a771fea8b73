"""Synthetic labelled sets for evaluation tests: real files on disk (so hashing and caching are
exercised) whose 'embeddings' are unit vectors we choose, injected in place of the recognition core."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge_agent.evaluation.dataset import LabelledDataset, scan_dataset
from edge_agent.evaluation.embedding_cache import EnrolmentOutcome


def unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


@dataclass
class SyntheticSet:
    dataset: LabelledDataset
    vectors: dict[Path, np.ndarray]
    fail: dict[Path, tuple[str, ...]]
    groups: dict[str, str]
    calls: list[Path] = field(default_factory=list)

    def embed(self, path: Path) -> EnrolmentOutcome:
        self.calls.append(path)
        if path in self.fail:
            return EnrolmentOutcome(None, self.fail[path])
        return EnrolmentOutcome(self.vectors[path], ())


def make_set(root: Path, images_per_identity: list[int], noise: float = 0.6, seed: int = 1,
             groups: tuple[str, ...] = ("A", "B"), fail_every: int = 0, shared_b: float = 0.0) -> SyntheticSet:
    """Identities ``id000..`` with the given image counts; images are noisy copies of an identity
    centre. ``shared_b`` mixes a common direction into group B's centres, making B's people look
    alike (a constructed bias: more false matches within B)."""
    rng = np.random.default_rng(seed)
    common = unit(rng.normal(size=128))
    vectors: dict[Path, np.ndarray] = {}
    fail: dict[Path, tuple[str, ...]] = {}
    group_of: dict[str, str] = {}
    counter = 0
    for k, count in enumerate(images_per_identity):
        identity = f"id{k:03d}"
        group = groups[k % len(groups)]
        group_of[identity] = group
        centre = unit(rng.normal(size=128))
        if group == "B" and shared_b:
            centre = unit((1 - shared_b) * centre + shared_b * common)
        folder = root / identity
        folder.mkdir(parents=True, exist_ok=True)
        for j in range(count):
            path = folder / f"{identity}_{j:04d}.jpg"
            path.write_bytes(f"synthetic {identity} {j}".encode())
            vectors[path] = unit(centre + noise * rng.normal(size=128) / np.sqrt(128))
            counter += 1
            if fail_every and counter % fail_every == 0:
                fail[path] = ("no_face",)
    dataset = scan_dataset(root)
    return SyntheticSet(dataset, vectors, fail, group_of)

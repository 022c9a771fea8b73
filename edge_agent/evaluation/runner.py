"""Turns a labelled image set into embeddings (or recorded enrolment failures), once per image.

The embedding step is an injected callable so the statistics can be tested with vectors we make,
and so evaluation runs the very same RecognitionCore the device does (``core_probe_fn``) and the
same enrolment rule the watchlist build does (``core_enrol_fn``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edge_agent.errors import ImageError
from edge_agent.library_pins import LibraryVersion, installed, scored_versions
from edge_agent.evaluation.dataset import LabelledDataset, LabelledImage
from edge_agent.evaluation.embedding_cache import (
    EMBEDDING_DIM,
    EmbeddingCache,
    EnrolmentOutcome,
)

from edge_agent.vision.model_files import sha256_file

if TYPE_CHECKING:
    from edge_agent.vision.core import RecognitionCore

EmbedFn = Callable[[Path], EnrolmentOutcome]

UNREADABLE = "unreadable"
NO_FACE = "no_face"
MULTIPLE_FACES = "multiple_faces"
QUALITY_REJECTED = "quality_rejected"


@dataclass(frozen=True)
class EmbeddedDataset:
    """Every image's probe embedding (device path) and, for the images chosen to enrol, a template.

    Probes go through the live path (the subject's face, no mirror); templates through the
    watchlist build's path (``enrol_image``: exactly one face, mirror-averaged), so scores are
    the ones a deployed device would see.
    """

    images: tuple[LabelledImage, ...]
    probe: np.ndarray  # (n, 128) float32 unit vectors; zero rows where probe_ok is False
    probe_ok: np.ndarray  # (n,) bool
    probe_reasons: tuple[tuple[str, ...], ...]  # why each failed probe has no embedding
    template: np.ndarray  # (n, 128); zero rows where no template
    enrolment: dict[str, tuple[int, ...]]  # identity -> image indices enrolled (its first usable ones)
    enrol_refusals: tuple[tuple[int, tuple[str, ...]], ...]  # images tried for enrolment and refused
    model: dict[str, Any]  # model identity plus selection and quality policies
    cache_hits: int = 0

    @property
    def identities(self) -> np.ndarray:
        return np.array([im.identity for im in self.images], dtype=object)

    @property
    def attempted(self) -> int:
        return len(self.images)

    @property
    def failures(self) -> tuple[tuple[LabelledImage, tuple[str, ...]], ...]:
        return tuple((im, self.probe_reasons[i]) for i, im in enumerate(self.images) if not self.probe_ok[i])


def model_key(model: dict[str, Any]) -> str:
    """Short stable hash of everything that decides an embedding, for the cache key."""
    return hashlib.sha256(json.dumps(model, sort_keys=True).encode()).hexdigest()


def cache_key(model: dict[str, Any], role: str, libraries: list[LibraryVersion]) -> str:
    """The cache key of one embedding path: the model description, the role, and the installed
    versions of the libraries whose arithmetic is in every embedding (an OpenCV upgrade moved each
    dev-set score by ~0.005), so a cache filled under other versions is never served."""
    return model_key({**model, "role": role, "libraries": installed(libraries)})


#: Vision modules whose code decides a template; their hash joins the cache key, so editing the
#: aligner or the enrolment rule can never serve embeddings made by the old code.
TEMPLATE_CODE = ("core.py", "detector.py", "anchors.py", "alignment.py", "landmarks.py", "pixels.py", "quality.py", "subject.py",
                 "embedder.py", "enrolment.py", "image_io.py", "image_header.py")


def vision_code_sha256() -> str:
    from edge_agent import vision

    digest = hashlib.sha256()
    folder = Path(vision.__file__).parent
    for name in TEMPLATE_CODE:
        path = folder / name
        digest.update(name.encode() + b"\0" + (path.read_bytes() if path.exists() else b"") + b"\0")
    return digest.hexdigest()


def core_model_description(core: RecognitionCore) -> dict[str, Any]:
    """Everything that decides a template: model hashes, the variant of each that ran (int8 and
    float32 share an identity but not their exact scores), quality policy, face rule, code."""
    from edge_agent.vision.subject import SELECTION_POLICY

    quality = getattr(core, "quality", None)
    return {
        **core.identity.as_dict(),
        "precision": core.identity.precision,
        "quality_policy": repr(quality) if quality is not None else None,
        "selection_policy": SELECTION_POLICY,
        "code_sha256": vision_code_sha256(),
    }


def core_probe_fn(core: RecognitionCore) -> EmbedFn:
    """Embed one image the way the device embeds a live face (detect, align, quality-gate, embed),
    taking the face the label refers to by the one subject rule (vision/subject.py)."""
    from edge_agent.vision.image_io import read_image
    from edge_agent.vision.subject import LOW_QUALITY, choose_subject

    def embed(path: Path) -> EnrolmentOutcome:
        try:
            image = read_image(path)
        except ImageError:
            return EnrolmentOutcome(None, (UNREADABLE,))
        choice = choose_subject(core.faces(image))
        if choice.face is None:
            if choice.reason == LOW_QUALITY:
                return EnrolmentOutcome(None, tuple(r for r in choice.detail.split(", ") if r) or (QUALITY_REJECTED,))
            return EnrolmentOutcome(None, (str(choice.reason),))
        return EnrolmentOutcome(np.asarray(choice.face.embedding, dtype=np.float32), ())

    return embed


#: Applies an embed function to many paths, in order (builtin ``map``, or a process pool's ``imap``).
Mapper = Callable[[EmbedFn, Sequence[Path]], Iterable[EnrolmentOutcome]]


class _CachedPath:
    """One embedding path (probe or enrol) through the cache: only misses reach the embedder."""

    def __init__(self, embed: EmbedFn, key: str, cache: EmbeddingCache | None, mapper: Mapper) -> None:
        self.embed = embed
        self.key = key
        self.cache = cache
        self.mapper = mapper
        self.hits = 0

    def run(self, paths: Sequence[Path], digests: Sequence[str | None], on_each: Callable[[], None] | None = None) -> list[EnrolmentOutcome]:
        out: list[EnrolmentOutcome | None] = [None] * len(paths)
        todo: list[int] = []
        for k, digest in enumerate(digests):
            if digest is None:
                out[k] = EnrolmentOutcome(None, (UNREADABLE,))
            elif self.cache is not None and (cached := self.cache.get(self.key, digest)) is not None:
                out[k] = cached
                self.hits += 1
            else:
                todo.append(k)
                continue
            if on_each is not None:
                on_each()
        for k, outcome in zip(todo, self.mapper(self.embed, [paths[k] for k in todo]), strict=True):
            outcome = _checked(outcome, paths[k])
            out[k] = outcome
            if self.cache is not None:
                self.cache.put(self.key, digests[k], outcome)  # type: ignore[arg-type]
            if on_each is not None:
                on_each()
        return out  # type: ignore[return-value]


def _checked(outcome: EnrolmentOutcome, path: Path) -> EnrolmentOutcome:
    if outcome.embedding is None:
        return outcome
    vec = np.asarray(outcome.embedding, dtype=np.float32).ravel()
    norm = float(np.linalg.norm(vec))
    if vec.size != EMBEDDING_DIM or not np.all(np.isfinite(vec)) or norm == 0.0:
        raise ValueError(f"embedder returned an unusable vector (shape {vec.shape}) for {path}")
    return EnrolmentOutcome(vec / norm, ())


def embed_dataset(
    dataset: LabelledDataset,
    probe_fn: EmbedFn,
    enrol_fn: EmbedFn,
    model: dict[str, Any],
    enrol_per_subject: int = 1,
    cache: EmbeddingCache | None = None,
    on_progress: Callable[[int], None] | None = None,
    mapper: Mapper = map,
) -> EmbeddedDataset:
    """Embed every image as a probe, then enrol the first usable images of each identity that has
    more than ``enrol_per_subject`` images; nothing is embedded twice on the same path."""
    n = len(dataset.images)
    libraries = scored_versions()  # read once: both paths' keys carry the same versions
    probe_path = _CachedPath(probe_fn, cache_key(model, "probe", libraries), cache, mapper)
    enrol_path = _CachedPath(enrol_fn, cache_key(model, "enrol", libraries), cache, mapper)
    digests: list[str | None] = []
    for image in dataset.images:
        try:
            digests.append(sha256_file(image.path))
        except OSError:
            digests.append(None)
    tick = (lambda: on_progress(1)) if on_progress is not None else None
    paths = [im.path for im in dataset.images]
    outcomes = probe_path.run(paths, digests, tick)
    probe = np.zeros((n, EMBEDDING_DIM), np.float32)
    probe_ok = np.array([o.embedding is not None for o in outcomes], bool)
    for i, o in enumerate(outcomes):
        if o.embedding is not None:
            probe[i] = o.embedding

    # Enrolment in rounds: each identity tries its next untried image(s) until it has enough,
    # so templates come from each identity's first usable images while every round is one batch.
    by_identity: dict[str, list[int]] = {}
    for i, image in enumerate(dataset.images):
        by_identity.setdefault(image.identity, []).append(i)
    candidates = {identity: list(idx) for identity, idx in by_identity.items() if len(idx) > enrol_per_subject}
    chosen: dict[str, list[int]] = {identity: [] for identity in candidates}
    template = np.zeros((n, EMBEDDING_DIM), np.float32)
    refusals: list[tuple[int, tuple[str, ...]]] = []
    while True:
        batch: list[tuple[str, int]] = []
        for identity, untried in candidates.items():
            need = enrol_per_subject - len(chosen[identity])
            batch.extend((identity, untried.pop(0)) for _ in range(min(need, len(untried))))
        if not batch:
            break
        results = enrol_path.run([paths[i] for _, i in batch], [digests[i] for _, i in batch])
        for (identity, i), outcome in zip(batch, results, strict=True):
            if outcome.embedding is not None:
                template[i] = outcome.embedding
                chosen[identity].append(i)
            else:
                refusals.append((i, outcome.reasons))
    enrolment = {identity: tuple(sorted(idx)) for identity, idx in chosen.items() if len(idx) == enrol_per_subject}
    if cache is not None:
        cache.flush()
    return EmbeddedDataset(dataset.images, probe, probe_ok, tuple(o.reasons for o in outcomes), template, enrolment,
                           tuple(sorted(refusals)), dict(model), probe_path.hits + enrol_path.hits)


def core_enrol_fn(core: RecognitionCore) -> EmbedFn:
    """Make a watchlist template from one reference image with the watchlist build's own rule."""
    from edge_agent.vision.enrolment import enrol_image
    from edge_agent.vision.image_io import read_image

    def enrol(path: Path) -> EnrolmentOutcome:
        try:
            image = read_image(path)
        except ImageError:
            return EnrolmentOutcome(None, (UNREADABLE,))
        result = enrol_image(core, image)
        if result.template is None:
            detail = tuple(r for r in (result.detail or "").split(", ") if r) if result.reason == "low_quality" else ()
            return EnrolmentOutcome(None, (str(result.reason),) + detail)
        return EnrolmentOutcome(np.asarray(result.template, np.float32), ())

    return enrol

"""Gallery search: best template per subject, top-k subjects, exact float32 scores.

Returns ranked candidates with scores; the caller applies the deployment's threshold, so the same
search serves live alerts and retrospective candidate lists.

A device's watchlist (thousands of templates) is one float32 matrix product. A central gallery
(``COMPACT_FROM`` templates and more) is first scored through an int8 copy (compact_index.py: a
quarter of the bytes to read, int8 dot-product kernels; an eighth, int4, from ``INT4_FROM``),
then every template whose approximate score could, within its proven error bound, reach the k-th
best subject is re-scored exactly in float32.
So the result is exactly the float32 one, and the float32 templates are only read at those rows:
pass a read-only ``np.load(path, mmap_mode="r")`` array and they stay on disk.
"""

from __future__ import annotations

from collections.abc import Sequence
import mmap
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from edge_agent.watchlist.compact_index import Int4Index, Int8Index

COMPACT_FROM = 100_000  # below this the float32 product is already well under a millisecond
BLOCK = 64  # templates per group when picking first candidates from the approximate scores


@dataclass(frozen=True)
class Candidate:
    subject_ref: str
    score: float  # cosine similarity of the subject's best-matching template


class Gallery:
    def __init__(self, templates: np.ndarray, subject_refs: Sequence[str], threads: int = 2, *, placed: bool = False) -> None:
        """``placed``: row i of ``templates`` already holds the template ``placement(subject_refs)``
        sends there (a C-contiguous float32 array), and is kept as it is, not copied."""
        if len(templates) >= COMPACT_FROM:
            self._init_compact(templates, subject_refs, threads)
            return
        templates = np.asarray(templates, dtype=np.float32)
        if templates.ndim != 2 or len(templates) != len(subject_refs):
            raise ValueError(f"templates {templates.shape} do not match {len(subject_refs)} subject references")
        subjects, codes, order = _grouped(subject_refs)
        if placed:
            if not templates.flags.c_contiguous:
                raise ValueError("placed templates must be one C-contiguous float32 array")
            self.templates = templates
        else:
            self.templates = np.ascontiguousarray(templates[order])
        self._subjects = subjects
        self._starts = np.flatnonzero(np.r_[True, np.diff(codes[order]) != 0]) if len(codes) else np.zeros(0, int)
        self._index: Int8Index | Int4Index | None = None

    @staticmethod
    def placement(subject_refs: Sequence[str]) -> np.ndarray:
        """For each template, in input order, the row of the gallery's matrix it goes to, so a
        loader can write each template straight to its place and pass ``placed=True`` instead of
        having the whole array copied (watchlist/loader.py; issue 14, peak RSS). A central-sized
        gallery keeps the input's order."""
        if len(subject_refs) >= COMPACT_FROM:
            return np.arange(len(subject_refs))
        order = _grouped(subject_refs)[2]
        rows = np.empty_like(order)
        rows[order] = np.arange(len(order))
        return rows

    def _init_compact(self, templates: np.ndarray, subject_refs: Sequence[str], threads: int) -> None:
        """Large galleries: no reordered or converted copy of the float32 templates is made."""
        from edge_agent.watchlist.compact_index import compact_index

        if templates.ndim != 2 or templates.dtype != np.float32 or len(templates) != len(subject_refs):
            raise ValueError(f"templates {templates.shape} {templates.dtype} do not match {len(subject_refs)} subject references (float32 rows)")
        self.templates = templates
        self._subjects, codes = np.unique(np.asarray(subject_refs, dtype=str), return_inverse=True)
        self._codes = codes.astype(np.int32)
        self._index = compact_index(templates, threads)
        self._rows = _RowReader(templates)

    def __len__(self) -> int:
        return len(self.templates)

    @property
    def subject_count(self) -> int:
        return len(self._subjects)

    def search(self, probe: np.ndarray, k: int = 5) -> list[Candidate]:
        return self.search_many(np.asarray(probe, np.float32)[None], k)[0]

    def search_many(self, probes: np.ndarray, k: int = 5) -> list[list[Candidate]]:
        """Top-k subjects for each probe (rows are unit vectors), best first."""
        probes = np.asarray(probes, np.float32)
        if len(self.templates) == 0:
            return [[] for _ in range(len(probes))]
        if self._index is not None:
            return [self._search_compact(probe, k) for probe in probes]
        scores = dot_rows(self.templates, probes)  # (M, N): the only pass over the templates
        if len(self._starts) == len(self.templates):
            per_subject = scores
        else:
            per_subject = np.maximum.reduceat(scores, self._starts, axis=1)
        k = min(k, per_subject.shape[1])
        top = np.argpartition(-per_subject, k - 1, axis=1)[:, :k]
        results = []
        for row, idx in enumerate(top):
            idx = idx[np.argsort(-per_subject[row, idx])]
            results.append([Candidate(str(self._subjects[i]), float(per_subject[row, i])) for i in idx])
        return results

    def _search_compact(self, probe: np.ndarray, k: int) -> list[Candidate]:
        index = self._index
        if index is None:
            raise RuntimeError("the compact search needs the compact index")
        with index.scored(probe) as approx:  # the output tensor itself, not a copy of it
            k = min(k, len(self._subjects))
            # A lower bound T of the k-th best subject's exact score, from the best template of the
            # best-scoring groups; every template that might beat T is then re-scored exactly.
            seeds = _seeds(approx, 4 * k)
            subjects_at_seeds = _best_per_subject(seeds, self._rows.score(seeds, probe), self._codes)
            if len(subjects_at_seeds[0]) >= k:
                floor = float(subjects_at_seeds[1][k - 1])
                candidates = index.candidates(probe, approx, floor)
            else:  # fewer distinct subjects than k among the seeds: fall back to every template
                candidates = np.arange(len(approx))
            del approx  # no reference to the output tensor may outlive the block
        exact = self._rows.score(candidates, probe)
        refs, scores = _best_per_subject(candidates, exact, self._codes)
        return [Candidate(str(self._subjects[c]), float(s)) for c, s in zip(refs[:k], scores[:k], strict=True)]


def _seeds(approx: np.ndarray, count: int) -> np.ndarray:
    """The best-scoring row of each of the ``count`` best groups of BLOCK rows, sorted. Group j is
    rows j, j + m, j + 2m, ... (m = n // BLOCK): its maximum is then an elementwise maximum of
    BLOCK contiguous slices, 6x faster than np.maximum.reduceat over contiguous blocks (0.16
    against 0.91 ms for 10^6 scores here). Any rows would do: they only set the floor."""
    m = len(approx) // BLOCK
    if m <= count:
        return np.arange(len(approx))
    groups = approx[: m * BLOCK].reshape(BLOCK, m)
    best = np.argpartition(-groups.max(axis=0), count)[:count]
    return np.sort(best + m * np.argmax(groups[:, best], axis=0))


def _grouped(subject_refs: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sorted subjects, each template's subject code, the template order that groups them): rows
    grouped by subject, so "best template per subject" is one np.maximum.reduceat."""
    subjects, codes = np.unique(np.asarray(list(subject_refs), dtype=str), return_inverse=True)
    return subjects, codes, np.argsort(codes, kind="stable")


def dot_rows(templates: np.ndarray, probes: np.ndarray) -> np.ndarray:
    """``probes @ templates.T`` ((N,) for one probe, (M, N) for M), computed on the calling thread.

    Why not ``@``: numpy hands a one-row product to OpenBLAS's thread pool, whose workers then
    spin waiting for more work and take the cores from LiteRT's threads; on a 2-core device the
    whole pipeline ran 2-4x slower (benchmarks/pipeline.py, one face: 17.8 -> 74.7 fps).
    ``np.vecdot`` does one dot product per row, unthreaded, as fast for these shapes."""
    probes = np.asarray(probes, np.float32)
    if probes.ndim == 1:
        return np.asarray(np.vecdot(templates, probes))
    return np.asarray(np.vecdot(templates[None, :, :], probes[:, None, :]))


def _best_per_subject(rows: np.ndarray, scores: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(subject codes, best scores) ordered best first, from template ``rows`` and their scores."""
    order = np.argsort(-scores, kind="stable")
    subject = codes[rows[order]]
    _, first = np.unique(subject, return_index=True)
    first.sort()
    return subject[first], scores[order][first]


class _RowReader:
    """Exact float32 scores of chosen template rows. A memory-mapped gallery is read with pread:
    touching one mapped page maps the large folio around it (measured: +2 MB resident per row
    read on this kernel, so a few hundred probes would map the whole file back in)."""

    def __init__(self, templates: np.ndarray) -> None:
        self.templates = templates
        self._fd: int | None = None
        mapping = getattr(templates, "_mmap", None)
        if isinstance(templates, np.memmap) and isinstance(mapping, mmap.mmap) and templates.flags.c_contiguous and templates.filename:
            start = templates.offset - templates.offset % mmap.ALLOCATIONGRANULARITY
            self._file_offset = start + (templates.ctypes.data - np.frombuffer(mapping, np.uint8).ctypes.data)
            self._row_bytes = templates.shape[1] * 4
            self._fd = os.open(templates.filename, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            # (Quantizing read every row through the mapping; the compact index dropped those pages again.)

    def score(self, rows: np.ndarray, probe: np.ndarray) -> np.ndarray:
        if self._fd is None:
            return dot_rows(self.templates[rows], probe)
        size = self._row_bytes
        data = b"".join(os.pread(self._fd, size, self._file_offset + int(i) * size) for i in rows)
        return dot_rows(np.frombuffer(data, np.float32).reshape(len(rows), -1), probe)

    def __del__(self) -> None:
        if self._fd is not None:
            os.close(self._fd)

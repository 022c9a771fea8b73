"""In-memory gallery search: one matrix-vector product over every template, best template per subject.

Returns ranked candidates with scores; the caller applies the deployment's threshold, so the same
search serves live alerts and retrospective candidate lists.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Candidate:
    subject_ref: str
    score: float  # cosine similarity of the subject's best-matching template


class Gallery:
    def __init__(self, templates: np.ndarray, subject_refs: Sequence[str]) -> None:
        templates = np.asarray(templates, dtype=np.float32)
        if templates.ndim != 2 or len(templates) != len(subject_refs):
            raise ValueError(f"templates {templates.shape} do not match {len(subject_refs)} subject references")
        subjects, codes = np.unique(np.asarray(list(subject_refs), dtype=str), return_inverse=True)
        # Templates grouped by subject, so "best template per subject" is one np.maximum.reduceat.
        order = np.argsort(codes, kind="stable")
        self.templates = np.ascontiguousarray(templates[order])
        self.subject_refs = [str(subjects[c]) for c in codes[order]]
        self._subjects = subjects
        self._starts = np.flatnonzero(np.r_[True, np.diff(codes[order]) != 0]) if len(codes) else np.zeros(0, int)

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
        scores = probes @ self.templates.T  # (M, N): the only pass over the templates
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

"""1:N protocol: enrol a watchlist from identities with several images, search it with held-out
images of those people (mated) and with everyone else (non-mated).

Search is one matrix product per probe batch, and each probe keeps only two numbers (its best
non-mated score, or its mate's rank-1 score), so every threshold is then a cheap count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: At least this share of identities stays off every watchlist, so non-mated probes always exist.
MIN_NONMATED_SHARE = 0.2
_MAX_SCORE_CELLS = 16_000_000  # probe batch x templates, ~64 MB of float32 per batch


@dataclass(frozen=True)
class WatchlistSplit:
    enrol: np.ndarray  # image indices enrolled
    enrol_subject: np.ndarray  # identity code of each enrolled image
    mated_probes: np.ndarray  # image indices of watchlisted people not enrolled
    nonmated_probes: np.ndarray  # image indices of people not on the watchlist
    size: int  # subjects on the watchlist


@dataclass(frozen=True)
class IdentificationScores:
    watchlist_size: int
    mated_hit: np.ndarray  # mate's score when it ranked first, -inf when someone outranked it
    mated_group: np.ndarray
    nonmated_top: np.ndarray  # best score of each non-mated search
    nonmated_group: np.ndarray

    def to_json(self) -> dict[str, object]:
        return {
            "mated_hit": [None if not math.isfinite(x) else float(x) for x in self.mated_hit.tolist()],
            "mated_group": self.mated_group.tolist(),
            "nonmated_top": [float(x) for x in self.nonmated_top.tolist()],
            "nonmated_group": self.nonmated_group.tolist(),
        }

    @classmethod
    def from_json(cls, size: int, data: dict) -> IdentificationScores:
        return cls(
            size,
            np.array([-np.inf if x is None else x for x in data["mated_hit"]], np.float64),
            np.asarray(data["mated_group"], np.int64),
            np.asarray(data["nonmated_top"], np.float64),
            np.asarray(data["nonmated_group"], np.int64),
        )


def eligible_subjects(identity_codes: np.ndarray, probe_ok: np.ndarray, enrolment: dict[int, tuple[int, ...]]) -> np.ndarray:
    """Identity codes with enrolled template(s) and at least one other usable image to search with."""
    ids = np.asarray(identity_codes, np.int64)
    usable = np.asarray(probe_ok, bool).copy()
    for indices in enrolment.values():
        usable[list(indices)] = False
    with_probe = set(np.unique(ids[usable]).tolist())
    return np.array(sorted(code for code in enrolment if code in with_probe), np.int64)


def max_watchlist_size(identity_codes: np.ndarray, probe_ok: np.ndarray, enrolment: dict[int, tuple[int, ...]]) -> int:
    """Largest watchlist that still leaves a fifth of the searchable identities off it as non-mated."""
    n_identities = len(np.unique(np.asarray(identity_codes)[np.asarray(probe_ok, bool)]))
    reserve = max(1, math.ceil(MIN_NONMATED_SHARE * n_identities))
    return max(0, min(len(eligible_subjects(identity_codes, probe_ok, enrolment)), n_identities - reserve))


def split_watchlist(identity_codes: np.ndarray, probe_ok: np.ndarray, enrolment: dict[int, tuple[int, ...]],
                    size: int, seed: int = 0) -> WatchlistSplit:
    """Pick ``size`` eligible subjects (fixed seed) and enrol their templates; their other usable
    images are mated searches, every usable image of everyone else a non-mated search."""
    ids = np.asarray(identity_codes, dtype=np.int64)
    ok = np.asarray(probe_ok, bool)
    limit = max_watchlist_size(ids, ok, enrolment)
    if size < 1 or size > limit:
        raise ValueError(f"watchlist size {size} not possible with this data (1..{limit})")
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(eligible_subjects(ids, ok, enrolment), size=size, replace=False))
    enrol = np.array([i for subject in chosen.tolist() for i in enrolment[subject]], np.int64)
    on_list = np.isin(ids, chosen)
    probe = ok.copy()
    probe[enrol] = False
    return WatchlistSplit(enrol, ids[enrol], np.flatnonzero(probe & on_list), np.flatnonzero(probe & ~on_list), size)


def search(probes: np.ndarray, templates: np.ndarray, template_subject: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each probe: the rank-1 subject code and its score (best template per subject).

    Also returns the sorted subject codes; batched so memory stays bounded whatever the size.
    """
    order = np.argsort(template_subject, kind="stable")
    tmpl = np.ascontiguousarray(np.asarray(templates, np.float32)[order])
    subj = np.asarray(template_subject)[order]
    starts = np.flatnonzero(np.r_[True, np.diff(subj) != 0])
    subjects = subj[starts]
    one_each = len(starts) == len(subj)
    batch = max(1, _MAX_SCORE_CELLS // max(1, len(tmpl)))
    top_subject = np.empty(len(probes), np.int64)
    top_score = np.empty(len(probes), np.float64)
    for b0 in range(0, len(probes), batch):
        sims = np.asarray(probes[b0:b0 + batch], np.float32) @ tmpl.T
        per_subject = sims if one_each else np.maximum.reduceat(sims, starts, axis=1)
        best = np.argmax(per_subject, axis=1)
        top_subject[b0:b0 + batch] = subjects[best]
        top_score[b0:b0 + batch] = per_subject[np.arange(len(best)), best]
    return top_subject, top_score, subjects


def identification_scores(probes: np.ndarray, templates_all: np.ndarray, identity_codes: np.ndarray,
                          group_codes: np.ndarray, split: WatchlistSplit) -> IdentificationScores:
    """Search the watchlist with every probe; ``probes``/``templates_all`` are indexed by image."""
    emb = np.asarray(probes, np.float32)
    ids = np.asarray(identity_codes, np.int64)
    grp = np.asarray(group_codes, np.int64)
    templates = np.asarray(templates_all, np.float32)[split.enrol]

    _, nm_top, _ = search(emb[split.nonmated_probes], templates, split.enrol_subject)

    mated = split.mated_probes
    m_subject, m_top, _ = search(emb[mated], templates, split.enrol_subject)
    # The mate's own best template score: a tie with another subject at rank 1 counts as a hit.
    mate_score = np.empty(len(mated), np.float64)
    for subject in np.unique(ids[mated]):
        rows = np.flatnonzero(ids[mated] == subject)
        mate_templates = templates[split.enrol_subject == subject]
        mate_score[rows] = (emb[mated[rows]] @ mate_templates.T).max(axis=1)
    ranked_first = (m_subject == ids[mated]) | (mate_score >= m_top)
    hit = np.where(m_subject == ids[mated], m_top, np.where(ranked_first, mate_score, -np.inf))
    return IdentificationScores(split.size, hit, grp[mated], nm_top, grp[split.nonmated_probes])

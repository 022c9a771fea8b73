"""1:1 protocol: every mated pair, and every non-mated pair (or a fixed-seed sample when there are too many).

Scores only; rates come from ``metrics``. Per-group impostor rates use pairs where both people
are in the same group, as NIST FRVT Part 3 does: cross-group pairs score lower and would flatter
every group.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

#: 20 M float32 scores = 80 MB: all pairs of ~6,300 images; a larger set is sampled to this many.
DEFAULT_MAX_IMPOSTOR_PAIRS = 20_000_000
_BLOCK = 1024


@dataclass(frozen=True)
class VerificationScores:
    genuine: np.ndarray  # float32 scores of mated pairs
    genuine_group: np.ndarray  # group code of each mated pair
    impostor: np.ndarray  # float32 scores of non-mated pairs used
    impostor_group: np.ndarray  # group code when both sides share a group, else -1
    impostor_total: int  # non-mated pairs that exist in the data
    sampled: bool


def verification_scores(
    embeddings: np.ndarray,
    identity_codes: np.ndarray,
    group_codes: np.ndarray,
    max_impostor_pairs: int = DEFAULT_MAX_IMPOSTOR_PAIRS,
    seed: int = 0,
) -> VerificationScores:
    """Score mated and non-mated pairs; ``group_codes`` gives each image's group (by its identity)."""
    emb = np.ascontiguousarray(embeddings, dtype=np.float32)
    ids = np.asarray(identity_codes, dtype=np.int64)
    grp = np.asarray(group_codes, dtype=np.int64)
    n = len(emb)

    gen_scores, gen_groups = [], []
    order = np.argsort(ids, kind="stable")
    bounds = np.flatnonzero(np.r_[True, np.diff(ids[order]) != 0, True])
    per_identity = np.diff(bounds)
    for start, stop in itertools.pairwise(bounds):
        if stop - start < 2:
            continue
        idx = order[start:stop]
        sims = emb[idx] @ emb[idx].T
        iu = np.triu_indices(len(idx), k=1)
        gen_scores.append(sims[iu])
        gen_groups.append(np.full(len(iu[0]), grp[idx[0]], np.int64))
    genuine = np.concatenate(gen_scores).astype(np.float32) if gen_scores else np.zeros(0, np.float32)
    genuine_group = np.concatenate(gen_groups) if gen_groups else np.zeros(0, np.int64)

    total_pairs = n * (n - 1) // 2
    mated_pairs = int(np.sum(per_identity * (per_identity - 1) // 2))
    impostor_total = total_pairs - mated_pairs
    if impostor_total <= max_impostor_pairs:
        imp, imp_grp = _all_impostors(emb, ids, grp)
        sampled = False
    else:
        imp, imp_grp = _sampled_impostors(emb, ids, grp, max_impostor_pairs, seed)
        sampled = True
    return VerificationScores(genuine, genuine_group, imp, imp_grp, impostor_total, sampled)


def _all_impostors(emb: np.ndarray, ids: np.ndarray, grp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = len(emb)
    scores, groups = [], []
    cols = np.arange(n)
    for i0 in range(0, n, _BLOCK):
        rows = np.arange(i0, min(n, i0 + _BLOCK))
        sims = emb[rows] @ emb.T
        mask = (cols[None, :] > rows[:, None]) & (ids[rows][:, None] != ids[None, :])
        r, c = np.nonzero(mask)
        scores.append(sims[r, c])
        g_r, g_c = grp[rows][r], grp[c]
        groups.append(np.where(g_r == g_c, g_r, -1))
    if not scores:
        return np.zeros(0, np.float32), np.zeros(0, np.int64)
    return np.concatenate(scores).astype(np.float32), np.concatenate(groups).astype(np.int64)


def _sampled_impostors(emb: np.ndarray, ids: np.ndarray, grp: np.ndarray, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = len(emb)
    scores, groups = [], []
    got = 0
    while got < count:
        want = min(1_000_000, count - got)
        i = rng.integers(0, n, size=want * 2)
        j = rng.integers(0, n, size=want * 2)
        keep = ids[i] != ids[j]
        i, j = i[keep][:want], j[keep][:want]
        scores.append(np.einsum("ij,ij->i", emb[i], emb[j]))
        groups.append(np.where(grp[i] == grp[j], grp[i], -1))
        got += len(i)
    return np.concatenate(scores).astype(np.float32), np.concatenate(groups).astype(np.int64)

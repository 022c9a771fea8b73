"""1:1 pair scoring and the 1:N split and search, on vectors we make."""

from __future__ import annotations

import math

import numpy as np
from eval_synthetic import unit

from edge_agent.evaluation.identification import (
    eligible_subjects,
    identification_scores,
    max_watchlist_size,
    search,
    split_watchlist,
)
from edge_agent.evaluation.verification import verification_scores
from edge_agent.watchlist.gallery import Gallery


def test_verification_counts_every_pair_once():
    rng = np.random.default_rng(0)
    ids = np.array([0, 0, 0, 1, 1, 2])
    groups = np.array([0, 0, 0, 0, 0, 1])
    emb = unit(rng.normal(size=(6, 128)))
    ver = verification_scores(emb, ids, groups)
    assert ver.genuine.size == 3 + 1  # C(3,2) + C(2,2)
    assert ver.impostor.size == ver.impostor_total == 15 - 4
    assert not ver.sampled
    expected = sorted(float(emb[i] @ emb[j]) for i in range(6) for j in range(i + 1, 6) if ids[i] != ids[j])
    assert np.allclose(sorted(ver.impostor), expected, atol=1e-6)
    # same-group impostor pairs keep the group code; cross-group pairs are -1
    assert np.count_nonzero(ver.impostor_group == 0) == 6 and np.count_nonzero(ver.impostor_group == -1) == 5


def test_verification_samples_when_pairs_exceed_the_cap():
    rng = np.random.default_rng(1)
    ids = np.repeat(np.arange(100), 2)
    emb = unit(rng.normal(size=(200, 128)))
    ver = verification_scores(emb, ids, np.zeros(200, np.int64), max_impostor_pairs=5000, seed=3)
    assert ver.sampled and ver.impostor.size == 5000 and ver.impostor_total == 200 * 199 // 2 - 100


def test_vectorised_search_agrees_with_the_device_gallery():
    rng = np.random.default_rng(2)
    templates = unit(rng.normal(size=(60, 128)))
    subjects = rng.integers(0, 25, 60)  # several templates for some subjects
    probes = unit(templates[rng.integers(0, 60, 40)] + 0.8 * rng.normal(size=(40, 128)) / math.sqrt(128))
    top_subject, top_score, _ = search(probes, templates, subjects)
    gallery = Gallery(templates, [f"s{c:02d}" for c in subjects])
    for p, subject, score in zip(probes, top_subject, top_score, strict=True):
        best = gallery.search(p, k=1)[0]
        assert best.subject_ref == f"s{subject:02d}"
        assert best.score == np.float32(score) or abs(best.score - score) < 1e-5


def _toy(n_multi=6, n_single=4):
    ids = np.array([k for k in range(n_multi) for _ in range(3)] + list(range(n_multi, n_multi + n_single)))
    ok = np.ones(ids.size, bool)
    enrolment = {k: (int(np.flatnonzero(ids == k)[0]),) for k in range(n_multi)}
    return ids, ok, enrolment


def test_split_keeps_watchlist_and_nonmated_people_apart():
    ids, ok, enrolment = _toy()
    ok[1] = False  # a failed probe is never searched
    split = split_watchlist(ids, ok, enrolment, 4, seed=0)
    on_list = set(ids[split.enrol].tolist())
    assert len(on_list) == 4
    assert set(ids[split.mated_probes].tolist()) <= on_list
    assert not set(ids[split.nonmated_probes].tolist()) & on_list
    assert not set(split.enrol.tolist()) & set(split.mated_probes.tolist())
    assert 1 not in split.mated_probes and 1 not in split.nonmated_probes


def test_max_watchlist_size_reserves_nonmated_identities():
    ids, ok, enrolment = _toy(n_multi=6, n_single=0)
    assert len(eligible_subjects(ids, ok, enrolment)) == 6
    assert max_watchlist_size(ids, ok, enrolment) == 6 - math.ceil(0.2 * 6)
    ids, ok, enrolment = _toy(n_multi=6, n_single=10)
    assert max_watchlist_size(ids, ok, enrolment) == 6


def test_identification_scores_rank_one_rule():
    # subject 0 and 1 enrolled; probe of 0 is closer to 1's template (a rank-1 miss); probe of 1 is a hit
    e = np.eye(128, dtype=np.float32)
    t0, t1 = e[0], e[1]
    p0 = unit(0.5 * e[0] + 0.8 * e[1])
    p1 = unit(0.9 * e[1] + 0.1 * e[2])
    stranger = unit(0.3 * e[0] + e[3])
    vectors = np.stack([t0, p0, t1, p1, stranger])
    ids = np.array([0, 0, 1, 1, 2])
    ok = np.ones(5, bool)
    split = split_watchlist(ids, ok, {0: (0,), 1: (2,)}, 2)
    res = identification_scores(vectors, vectors, ids, np.zeros(5, np.int64), split)
    hits = dict(zip(ids[split.mated_probes].tolist(), res.mated_hit.tolist(), strict=True))
    assert hits[0] == -math.inf
    assert hits[1] == np.float32(p1 @ t1) or abs(hits[1] - float(p1 @ t1)) < 1e-6
    assert res.nonmated_top.tolist() == [float(np.float32(stranger @ t0))] or abs(res.nonmated_top[0] - float(stranger @ t0)) < 1e-6



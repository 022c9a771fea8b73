"""Vectorised top-k gallery search."""

from __future__ import annotations

import numpy as np
import pytest

from edge_agent.watchlist.gallery import Gallery


def _unit(rng, n, d=128):
    v = rng.standard_normal((n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_search_ranks_subjects_by_their_best_template_like_brute_force():
    rng = np.random.default_rng(3)
    templates = _unit(rng, 300)
    refs = [f"subj-{i % 97}" for i in range(300)]  # several templates per subject
    gallery = Gallery(templates, refs)
    probes = _unit(rng, 10)
    for probe, result in zip(probes, gallery.search_many(probes, k=5)):
        scores = templates @ probe
        best = {}
        for ref, s in zip(refs, scores):
            best[ref] = max(best.get(ref, -2.0), float(s))
        expected = sorted(best.items(), key=lambda kv: -kv[1])[:5]
        assert [c.subject_ref for c in result] == [r for r, _ in expected]
        np.testing.assert_allclose([c.score for c in result], [s for _, s in expected], rtol=1e-5)


def test_search_finds_a_noisy_copy_of_a_template():
    rng = np.random.default_rng(4)
    templates = _unit(rng, 5000)
    gallery = Gallery(templates, [f"s{i}" for i in range(5000)])
    probe = templates[1234] + 0.02 * rng.standard_normal(128).astype(np.float32)
    top = gallery.search(probe / np.linalg.norm(probe), k=3)
    assert top[0].subject_ref == "s1234" and top[0].score > 0.9 > top[1].score


def test_k_larger_than_gallery_and_empty_gallery():
    rng = np.random.default_rng(5)
    gallery = Gallery(_unit(rng, 2), ["a", "b"])
    assert len(gallery.search(_unit(rng, 1)[0], k=10)) == 2
    assert Gallery(np.zeros((0, 128), np.float32), []).search(_unit(rng, 1)[0]) == []


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError):
        Gallery(np.zeros((3, 128), np.float32), ["a"])

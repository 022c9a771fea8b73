"""Vectorised top-k gallery search."""

from __future__ import annotations

import os

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
    for probe, result in zip(probes, gallery.search_many(probes, k=5), strict=True):
        scores = templates @ probe
        best = {}
        for ref, s in zip(refs, scores, strict=True):
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


def _exact_top(templates, codes, probe, k):
    scores = templates @ probe
    best = {}
    for i in np.argsort(-scores, kind="stable"):
        best.setdefault(int(codes[i]), float(scores[i]))
        if len(best) == k:
            break
    return list(best)


def _compact_case(tmp_path, rng, n=120_000):
    """A gallery large enough for the int8 path, saved and memory-mapped as a central one would be;
    probes near templates (clear matches) and random ones (close calls among the top 5)."""
    templates = _unit(rng, n)
    np.save(tmp_path / "t.npy", templates)
    codes = rng.integers(0, n // 3, n)  # about three templates per subject, scattered
    probes = np.vstack([templates[rng.integers(0, n, 20)] + 0.05 * rng.standard_normal((20, 128)).astype(np.float32), _unit(rng, 20)])
    probes /= np.linalg.norm(probes, axis=1, keepdims=True)
    return templates, codes, probes, np.load(tmp_path / "t.npy", mmap_mode="r")


def test_large_gallery_search_is_exactly_the_float32_ranking(tmp_path):
    from edge_agent.watchlist import gallery as gallery_module

    rng = np.random.default_rng(6)
    templates, codes, probes, mapped = _compact_case(tmp_path, rng)
    gallery = Gallery(mapped, [f"p{c}" for c in codes])
    assert gallery._index is not None and len(gallery) >= gallery_module.COMPACT_FROM
    assert gallery.templates is mapped, "the float32 rows are used in place, not copied"
    for probe, result in zip(probes, gallery.search_many(probes, k=5), strict=True):
        assert [c.subject_ref for c in result] == [f"p{c}" for c in _exact_top(templates, codes, probe, 5)]
        exact_best = [float((templates[codes == int(c.subject_ref[1:])] @ probe).max()) for c in result]
        np.testing.assert_allclose([c.score for c in result], exact_best, rtol=0, atol=1e-6)


def test_without_the_error_bound_the_int8_ranking_would_differ(tmp_path, monkeypatch):
    """Positive control: the exact re-rank is what makes the answer exact. With the error bound
    forced to zero only templates the int8 scores put at the top are re-scored, and on close
    calls the ranking then differs from float32's."""
    from edge_agent.watchlist.compact_index import Int8Index

    rng = np.random.default_rng(7)
    templates, codes, probes, mapped = _compact_case(tmp_path, rng)
    monkeypatch.setattr(Int8Index, "error_bound", lambda self, probe: 0.0)
    gallery = Gallery(mapped, [f"p{c}" for c in codes])
    differing = sum([c.subject_ref for c in result] != [f"p{c}" for c in _exact_top(templates, codes, probe, 5)]
                    for probe, result in zip(probes, gallery.search_many(probes, k=5), strict=True))
    assert differing > 0


def test_int8_error_bound_holds(tmp_path):
    from edge_agent.watchlist.compact_index import Int8Index

    rng = np.random.default_rng(8)
    templates = _unit(rng, 20_000)
    index = Int8Index(templates)
    for probe in _unit(rng, 20):
        approx = index.scores(probe, np.empty(len(templates), np.float32))
        error = float(np.abs(approx - templates @ probe).max())
        assert 0 < error <= index.error_bound(probe)


def test_large_gallery_search_through_int4_is_exactly_the_float32_ranking(tmp_path, monkeypatch):
    """Issue 14.5: from INT4_FROM templates the first pass is int4 (64 MB per probe for 10^6
    templates); its bound admits thousands of candidates, which the int8 stage narrows."""
    from edge_agent.watchlist import compact_index

    monkeypatch.setattr(compact_index, "INT4_FROM", 0)
    rng = np.random.default_rng(6)
    templates, codes, probes, mapped = _compact_case(tmp_path, rng)
    gallery = Gallery(mapped, [f"p{c}" for c in codes])
    assert isinstance(gallery._index, compact_index.Int4Index)
    for probe, result in zip(probes, gallery.search_many(probes, k=5), strict=True):
        assert [c.subject_ref for c in result] == [f"p{c}" for c in _exact_top(templates, codes, probe, 5)]
    # A probe that is not a unit vector: the model's bias covers unit probes only.
    for probe, result in zip(probes[-5:] * 1.5, gallery.search_many(probes[-5:] * 1.5, k=5), strict=True):
        assert [c.subject_ref for c in result] == [f"p{c}" for c in _exact_top(templates, codes, probe, 5)]


def test_without_its_error_bounds_the_int4_ranking_would_differ(tmp_path, monkeypatch):
    """Positive control for the int4 path: with the int8 stage's bound and the input and float
    terms at zero (the int4 rows' own terms are in the model's bias; the adversarial test below
    shows those are nearly reached) the answer differs from float32's on close calls."""
    from edge_agent.watchlist import compact_index

    monkeypatch.setattr(compact_index, "INT4_FROM", 0)
    monkeypatch.setattr(compact_index, "FLOAT_SLACK", 0.0)
    rng = np.random.default_rng(7)
    templates, codes, probes, mapped = _compact_case(tmp_path, rng)
    gallery = Gallery(mapped, [f"p{c}" for c in codes])
    index = gallery._index
    assert isinstance(index, compact_index.Int4Index)
    index._residual4[:], index._residual8[:], index._l1_max = 0, 0, 0.0
    differing = sum([c.subject_ref for c in result] != [f"p{c}" for c in _exact_top(templates, codes, probe, 5)]
                    for probe, result in zip(probes, gallery.search_many(probes, k=5), strict=True))
    assert differing > 0


def _worst_rounded_rows(rng, n, qmax=7, d=128):
    """Unit rows every component of which but the peak sits half a step between two int4 codes
    (the largest rounding error there is), with the peak at qmax steps so the step is known."""
    grid = rng.integers(-qmax, qmax, (n, d)).astype(np.float64) + 0.5
    grid[:, 0] = qmax
    rows = grid / np.linalg.norm(grid, axis=1, keepdims=True)
    return rows.astype(np.float32)


def test_int4_error_bounds_hold_on_random_and_adversarial_rows():
    """The bound must hold per row; on rows rounded as badly as possible, probed along each
    row's own rounding error (where Cauchy-Schwarz is an equality), it is also nearly reached."""
    from edge_agent.watchlist.compact_index import Int4Index

    rng = np.random.default_rng(8)
    random_rows, worst = _unit(rng, 20_000), _worst_rounded_rows(rng, 2_000)
    for templates, probes in ((random_rows, _unit(rng, 20)), (worst, None)):
        index = Int4Index(templates, threads=1)
        if probes is None:  # each probe along the rounding error of one row: w - w4
            steps = np.abs(templates).max(axis=1, keepdims=True) / 7
            errors = templates - np.rint(templates / steps) * steps
            probes = errors[:20] / np.linalg.norm(errors[:20], axis=1, keepdims=True)
        for i, probe in enumerate(probes):
            error = np.abs(index.scores(probe, np.empty(len(templates), np.float32)) - templates @ probe)
            bounds = index.error_bounds(probe)
            assert np.all(error <= bounds)
            if templates is worst:
                assert error[i] >= 0.8 * bounds[i], "the adversarial probe should come close to the bound"


# Run in a fresh interpreter so no other test's threads (broker clients, servers) are counted.
_SEARCH_THREADS_SCRIPT = """
import os, sys, threading, time
import numpy as np
from edge_agent.watchlist.gallery import Gallery

def other_threads_ticks():
    me, total = threading.get_native_id(), 0
    for tid in os.listdir("/proc/self/task"):
        if int(tid) != me:
            fields = open(f"/proc/self/task/{tid}/stat").read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime, clock ticks
    return total

rng = np.random.default_rng(9)
templates = rng.standard_normal((10_000, 128)).astype(np.float32)
templates /= np.linalg.norm(templates, axis=1, keepdims=True)
gallery = Gallery(templates, [f"s{i}" for i in range(len(templates))])
product = sys.argv[1] == "matmul"
time.sleep(0.5)  # a worker woken while the gallery was built spins on for a while: let it stop
before = other_threads_ticks()
for probe in templates[:300]:
    if product:
        probe[None] @ gallery.templates.T
    else:
        gallery.search(probe, k=3)
time.sleep(0.3)  # a spinning worker keeps counting for a while after the last call
print(other_threads_ticks() - before)
"""


def _other_thread_ticks(kind: str) -> int:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _SEARCH_THREADS_SCRIPT, kind], check=True, capture_output=True, text=True)
    return int(out.stdout.strip().splitlines()[-1])


def test_device_watchlist_search_keeps_to_the_calling_thread():
    """A device searches its watchlist between LiteRT invokes on a 2-core CPU; numpy's ``@`` put
    the one-row product on OpenBLAS's thread pool, whose spinning workers took the cores from
    LiteRT (issue 14: the pipeline ran 3x slower). The positive control shows the ``@`` product
    of the same shapes does wake other threads here, so a zero count is a real result."""
    if _other_thread_ticks("matmul") == 0:
        pytest.skip("this numpy's BLAS does not thread a one-row product: nothing to tell apart")
    assert _other_thread_ticks("search") == 0


_INDEX_PEAK_SCRIPT = """
import sys, tempfile
from pathlib import Path
import numpy as np
from edge_agent.watchlist.compact_index import Int8Index

def status(key):
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return int(fields[key].split()[0]) * 1024

n = int(sys.argv[1])
with tempfile.TemporaryDirectory() as tmp:
    rng = np.random.default_rng(1)
    rows = rng.standard_normal((n, 128), dtype=np.float32)
    np.save(Path(tmp) / "t.npy", rows / np.linalg.norm(rows, axis=1, keepdims=True))
    del rows
    mapped = np.load(Path(tmp) / "t.npy", mmap_mode="r")
    Int8Index(mapped[:10], threads=1)  # the runtime's one-off allocations are not the index's
    Path("/proc/self/clear_refs").write_text("5")  # restart the peak (VmHWM) from the current RSS
    before = status("VmRSS")
    index = Int8Index(mapped, threads=1)
    print(status("VmHWM") - before)
"""


def test_building_the_int8_index_of_a_mapped_gallery_peaks_near_the_index_size():
    """Issue 14.5: the build held the int8 matrix five times over (the codes, flatbuffers' copy
    of them, the builder, its output slice, the bytes given to LiteRT) with the whole float32
    file resident: 9x the int8 bytes at its peak (1.4 GB for a 1,000,000-template gallery's
    128 MB). Now the rows are quantized into the builder and the file's pages are dropped as
    they are read: the model twice (builder, LiteRT's copy), XNNPACK's packed weights, and a
    slice being quantized with the per-row scales and zero points (under 0.5x here)."""
    import subprocess
    import sys

    if not os.access("/proc/self/clear_refs", os.W_OK):
        pytest.skip("no /proc/self/clear_refs to restart the peak RSS from")

    def peak(n: int) -> int:
        out = subprocess.run([sys.executable, "-c", _INDEX_PEAK_SCRIPT, str(n)], check=True, capture_output=True, text=True)
        return int(out.stdout.strip().splitlines()[-1])

    # The growth per int8 byte between two sizes: fixed costs (the slice's temporaries, and under
    # qemu the emulator's code cache, ~10 MB more than on x86) cancel, every copy of the matrix
    # adds 1.0. Measured 2.2-2.4 on x86 and on arm64 under emulation; 9-10 with the old copies.
    growth = (peak(300_000) - peak(150_000)) / (150_000 * 128)
    assert growth <= 3.0


def test_templates_written_to_their_placement_are_kept_without_a_copy_and_search_the_same():
    # How the watchlist loader fills a gallery (issue 14, peak RSS): each template to its row.
    rng = np.random.default_rng(5)
    templates = _unit(rng, 300)
    refs = [f"subj-{(i * 37) % 97}" for i in range(300)]  # subjects interleaved, so rows move
    rows = Gallery.placement(refs)
    assert sorted(rows.tolist()) == list(range(300)) and rows.tolist() != list(range(300))
    placed = np.empty_like(templates)
    placed[rows] = templates
    gallery, copied = Gallery(placed, refs, placed=True), Gallery(templates, refs)
    assert gallery.templates is placed
    np.testing.assert_array_equal(gallery.templates, copied.templates)
    probes = _unit(rng, 10)
    assert gallery.search_many(probes, k=5) == copied.search_many(probes, k=5)
    with pytest.raises(ValueError, match="C-contiguous"):
        Gallery(np.asfortranarray(placed), refs, placed=True)

"""The embedder on real faces: unit vectors, same-person above different-person, int8 close to fp32."""

from __future__ import annotations

import csv
import itertools

import numpy as np
import pytest

from edge_agent.vision.image_io import read_image


def _best_face(core, image, keep_aligned=False):
    faces = [f for f in core.faces(image, embed_rejected=True, keep_aligned=keep_aligned)]
    return max(faces, key=lambda f: f.detection.width * f.detection.score) if faces else None


def test_embeddings_are_unit_float32_and_deterministic(core, fixtures_dir):
    image = read_image(fixtures_dir / "faces" / "obama_1.jpg")
    a = _best_face(core, image).embedding
    b = _best_face(core, image).embedding
    assert a.dtype == np.float32 and a.shape == (128,)
    assert np.linalg.norm(a) == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_array_equal(a, b)


def test_fixture_pairs_same_person_scores_above_different_person(core, fixtures_dir):
    names = ["obama_1", "obama_2", "obama_3", "biden_1", "biden_2", "astronaut_collins"]
    emb = {n: _best_face(core, read_image(fixtures_dir / "faces" / f"{n}.jpg")).embedding for n in names}
    person = {n: n.split("_")[0] for n in names}
    same = [float(emb[a] @ emb[b]) for a, b in itertools.combinations(names, 2) if person[a] == person[b]]
    diff = [float(emb[a] @ emb[b]) for a, b in itertools.combinations(names, 2) if person[a] != person[b]]
    assert min(same) > max(diff), f"same {sorted(same)} vs different {sorted(diff)}"


def _dev_faces(core, devset, keep_aligned=False):
    """(identity, face) for the best face of every dev photo with a detectable face."""
    rows = list(csv.DictReader(open(devset / "manifest.csv")))
    out = []
    for row in rows:
        face = _best_face(core, read_image(devset / row["path"]), keep_aligned)
        if face is not None:
            out.append((row["identity"], face))
    return out


@pytest.fixture(scope="module")
def dev_faces(core, devset):
    return _dev_faces(core, devset, keep_aligned=True)


def tar_at_far(genuine: np.ndarray, impostor: np.ndarray, far: float) -> tuple[float, float]:
    """TAR at the lowest threshold whose FAR does not exceed ``far``."""
    threshold = float(np.quantile(impostor, 1 - far, method="higher"))
    threshold = np.nextafter(threshold, np.inf)  # strictly above that impostor score
    return float(np.mean(genuine >= threshold)), threshold


@pytest.mark.devset
def test_dev_set_verification_tar_at_far_1_percent(dev_faces, record_property):
    ids = np.array([i for i, _ in dev_faces])
    emb = np.stack([f.embedding for _, f in dev_faces])
    scores = emb @ emb.T
    upper = np.triu_indices(len(ids), 1)
    same = ids[upper[0]] == ids[upper[1]]
    genuine, impostor = scores[upper][same], scores[upper][~same]
    tar, threshold = tar_at_far(genuine, impostor, 0.01)
    print(f"\ndev set: {len(genuine)} genuine / {len(impostor)} impostor pairs; TAR@FAR=1% = {tar:.4f} at {threshold:.3f}")
    record_property("tar_at_far_1pct", tar)
    assert genuine.mean() > impostor.mean() + 0.3
    assert tar >= 0.97


@pytest.mark.devset
def test_int8_embedder_stays_close_to_the_fp32_reference(dev_faces, record_property):
    from edge_agent.vision.peer import load_reference_sface

    reference = load_reference_sface()
    cosines = np.array([float(f.embedding @ reference.embed(f.aligned)) for _, f in dev_faces])
    print(f"\nint8 vs fp32: mean cosine {cosines.mean():.4f}, min {cosines.min():.4f} over {len(cosines)} faces")
    record_property("int8_fp32_mean_cosine", float(cosines.mean()))
    assert cosines.mean() >= 0.99
    assert cosines.min() >= 0.95


def _pair_scores(identities: list[str], embeddings: list[np.ndarray | None]) -> tuple[np.ndarray, np.ndarray]:
    """Genuine and impostor scores over all photo pairs; a genuine pair with a photo whose face was
    not found scores -inf (a miss), so failures to detect count against a pipeline."""
    genuine, impostor = [], []
    for (id_a, emb_a), (id_b, emb_b) in itertools.combinations(zip(identities, embeddings, strict=True), 2):
        score = float(emb_a @ emb_b) if emb_a is not None and emb_b is not None else -np.inf
        if id_a == id_b:
            genuine.append(score)
        elif np.isfinite(score):
            impostor.append(score)
    return np.array(genuine), np.array(impostor)


@pytest.mark.devset
def test_dev_set_ours_at_least_as_accurate_as_the_opencv_peer(core, devset, record_property):
    """The brief's claim, checked on every run: our pipeline (BlazeFace, 4-point alignment, int8
    SFace) verifies the dev set at least as well as OpenCV's own (YuNet, alignCrop, fp32 SFace),
    detection failures included. The peer gets its best setting here: at YuNet's default score
    0.9 it misses 29 of these 204 tightly cropped photos (TAR 0.69); at 0.5 it finds them all."""
    from edge_agent.vision.peer import PeerPipeline

    peer = PeerPipeline(score_threshold=0.5)
    rows = list(csv.DictReader(open(devset / "manifest.csv")))
    ids, ours, theirs = [], [], []
    for row in rows:
        image = read_image(devset / row["path"])
        ids.append(row["identity"])
        face = _best_face(core, image)
        ours.append(face.embedding if face is not None else None)
        found = peer.detect(image)
        best = max(found, key=lambda d: (d.box[2] - d.box[0]) * d.score) if found else None
        theirs.append(peer.embed(peer.align_crop(image, best)) if best is not None else None)
    results = {}
    for name, embeddings in (("ours", ours), ("peer", theirs)):
        genuine, impostor = _pair_scores(ids, embeddings)
        results[name] = {far: tar_at_far(genuine, impostor, far)[0] for far in (0.01, 0.001)}
        results[name]["missed"] = sum(e is None for e in embeddings)
    print(f"\ndev set, {len(rows)} photos: {results}")
    for name, figures in results.items():
        record_property(f"{name}_tar_at_far_0.1pct", figures[0.001])
    assert results["ours"]["missed"] <= results["peer"]["missed"]
    assert results["ours"][0.01] >= results["peer"][0.01]
    assert results["ours"][0.001] >= results["peer"][0.001]

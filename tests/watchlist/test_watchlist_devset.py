"""Dev-set check of the whole watchlist path: photos -> build -> sealed package -> device load ->
a *different* photo of each subject finds that subject first."""

from __future__ import annotations

import csv
from collections import defaultdict
from datetime import timedelta

import pytest
from watchlist_helpers import DURING, START

from edge_agent.vision.enrolment import enrol_image
from edge_agent.vision.image_io import read_image
from edge_agent.watchlist.build import SUBJECT_COLUMNS, build_watchlist, read_subjects_csv
from edge_agent.watchlist.loader import load_watchlist


@pytest.mark.devset
def test_devset_subjects_found_with_other_photos(devset, core, world, tmp_path):
    by_identity: dict[str, list[str]] = defaultdict(list)
    with open(devset / "manifest.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            by_identity[row["identity"]].append(row["path"])
    chosen = sorted(i for i, paths in by_identity.items() if len(paths) >= 2)[:25]
    assert len(chosen) >= 10
    refs = {identity: f"DEV-{n:04d}" for n, identity in enumerate(chosen)}  # opaque: no names in the package
    lines = [",".join(SUBJECT_COLUMNS)]
    for identity in chosen:
        lines.append(f"{refs[identity]},suspect,{sorted(by_identity[identity])[0]},LFW,research test,2007-01-01,2026-01-01,no,")
    (tmp_path / "subjects.csv").write_text("\n".join(lines) + "\n")
    subjects = read_subjects_csv(tmp_path / "subjects.csv")
    result = build_watchlist(
        world.deployment, subjects, devset, {"cam-01": world.devices["cam-01"].sealing_public}, world.authority, core, START - timedelta(hours=1)
    )
    assert len(result.entries) >= 0.8 * len(chosen)  # a few reference photos may be refused (e.g. two faces)
    assert all(w.code in {"old_image", "no_face", "multiple_faces", "low_quality", "subject_excluded"} for w in result.warnings)
    assert sum(w.code == "old_image" for w in result.warnings) == len(result.entries)  # 2007 photos
    wl = load_watchlist(result.package, world.devices["cam-01"], world.authority.public_key(), core.identity, DURING)
    listed = {e.subject_ref for e in wl.entries}
    hits = trials = 0
    for identity in chosen:
        if refs[identity] not in listed:
            continue
        for path in sorted(by_identity[identity])[1:3]:
            probe = enrol_image(core, read_image(devset / path))
            if not probe.ok:
                continue
            trials += 1
            hits += wl.search(probe.template, DURING, k=1)[0].subject_ref == refs[identity]
    assert trials >= 10
    assert hits / trials >= 0.9, f"rank-1 {hits}/{trials}"


"""policing.md 12 for searches: faces that match nobody leave no trace. After a search of many
non-matching faces, no template bytes, printed template digits or image data of theirs are in the
audit log, the command's output, the logs, the temp directory or any file the search wrote; a
planted template is found (positive control)."""

from __future__ import annotations

import logging
import tempfile

import numpy as np
import pytest
from privacy_helpers import copy_faces, files_under, find_traces, trace_needles

from edge_agent.cli.main import main
from edge_agent.vision.image_io import is_image_file, read_image


def _non_watchlist_photos(fixtures_dir, devset):
    photos = [fixtures_dir / "faces" / "astronaut_collins.jpg"]
    if devset is not None:
        photos += [p for p in sorted(devset.glob("*/*")) if is_image_file(p) and p.parent.name not in ("Joe_Biden", "Barack_Obama")][:60]
    return photos


def test_a_search_leaves_no_trace_of_faces_that_match_nobody(site_copy, tmp_path, fixtures_dir, core, request, capsys, caplog, monkeypatch):
    try:
        devset = request.getfixturevalue("devset")
    except pytest.skip.Exception:
        devset = None  # a fresh clone: the committed fixtures alone
    photos = _non_watchlist_photos(fixtures_dir, devset)
    # plus one watchlist subject, so the search also writes a candidate (the record is not empty)
    probes = copy_faces(tmp_path / "probes", [*photos, fixtures_dir / "faces" / "obama_2.jpg"])
    temp_root = tmp_path / "private-tmp"
    temp_root.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp_root))
    monkeypatch.setattr(tempfile, "tempdir", str(temp_root))
    before = set(files_under(site_copy.root))

    capsys.readouterr()
    with caplog.at_level(logging.DEBUG):
        assert main(site_copy.args(probes, "--json")) == 0
        assert main(site_copy.args(probes)) == 0
    captured = capsys.readouterr()
    audited = site_copy.last("search_run")
    assert audited["faces_searched"] >= len(photos) * 0.9 and [c["subject_ref"] for c in audited["candidates"]] == ["CASE-0001"]

    # What a careless search could have leaked: every non-matching face's template and crop size.
    threshold = audited["threshold"]
    watchlist_refs = [core.faces(read_image(fixtures_dir / "faces" / n))[0].embedding for n in ("obama_1.jpg", "biden_1.jpg")]
    templates, shapes = [], set()
    for photo in photos:
        for face in core.faces(read_image(photo), embed_rejected=True):
            if max(float(face.embedding @ r) for r in watchlist_refs) < threshold:
                templates.append(face.embedding)
                x1, y1, x2, y2 = face.detection.box
                shapes.add((int(round(y2 - y1)), int(round(x2 - x1))))
    assert len(templates) >= len(photos) * 0.9
    needles = trace_needles(templates, shapes)

    blobs = {name: data for name, data in files_under(site_copy.root).items() if name not in before}  # what the search wrote
    blobs.update(files_under(temp_root))
    blobs[str(site_copy.audit_log)] = site_copy.audit_log.read_bytes()
    blobs["stdout"] = captured.out.encode()
    blobs["stderr"] = captured.err.encode()
    blobs["captured log"] = caplog.text.encode()
    assert find_traces(blobs, needles) == []

    # Positive control: the same scan finds one of those templates written into the audit log's bytes, or printed.
    planted = {"audit": blobs[str(site_copy.audit_log)] + templates[0].astype("<f4").tobytes(), "printed": f"{np.asarray(templates[-1])}".encode()}
    assert len(find_traces(planted, needles)) >= 2

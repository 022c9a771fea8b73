"""Issue 10.1 (and 13, fusion): what an authorised search says. Only candidates at or above the
deployment's threshold, ranked, and plainly nothing when there are none; every search audited
with the input's hash; a video gives one list per person with the time they are seen."""

from __future__ import annotations

import math

import hashlib
import json
import shutil

import cv2
import numpy as np
from search_helpers import build_site

from edge_agent.cli.main import main
from edge_agent.demo.scenes import background, portrait_tile, write_walk_past_video


def _probes(tmp_path, fixtures_dir, *names):
    folder = tmp_path / "probes"
    folder.mkdir()
    for name in names:
        shutil.copy(fixtures_dir / "faces" / name, folder / name)
    return folder


def _run_json(argv, capsys) -> dict:
    capsys.readouterr()
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_only_candidates_at_or_above_the_threshold_are_listed(site_copy, tmp_path, fixtures_dir, capsys):
    probes = _probes(tmp_path, fixtures_dir, "obama_2.jpg", "biden_2.jpg", "astronaut_collins.jpg")
    out = _run_json(site_copy.args(probes), capsys)
    assert out["threshold"] == 0.6 and out["faces_found"] >= 3
    by_file: dict[str, list] = {}
    for r in out["results"]:
        by_file.setdefault(r["file"], []).extend(r["candidates"])
    # One candidate each, the right one: the other subject (scoring far below 0.6) is not a tail of the list.
    assert [c["subject_ref"] for c in by_file["obama_2.jpg"]] == ["CASE-0001"]
    assert [c["subject_ref"] for c in by_file["biden_2.jpg"]] == ["CASE-0002"]
    assert "astronaut_collins.jpg" not in by_file  # nobody on the watchlist: no list at all
    assert all(c["score"] >= 0.6 and c["basis"] == "single_frame" for cs in by_file.values() for c in cs)


def test_no_candidate_is_said_plainly(site_copy, fixtures_dir, capsys):
    capsys.readouterr()
    assert main(site_copy.args(fixtures_dir / "faces" / "astronaut_collins.jpg")) == 0
    text = capsys.readouterr().out
    assert "No candidate at or above the threshold 0.6." in text
    assert "CASE-" not in text and "not identifications" in text


def test_the_deployments_threshold_is_the_one_applied(tmp_path, fixtures_dir, capsys):
    """The same probe and watchlist subject, under a deployment whose threshold is above its score."""
    site = build_site(tmp_path / "strict", fixtures_dir, deployment_id="DEP-RFR-0099", alert_threshold=0.95)
    out = _run_json(site.args(fixtures_dir / "faces" / "obama_2.jpg"), capsys)
    assert out["threshold"] == 0.95 and out["results"] == [] and out["faces_searched"] == 1
    capsys.readouterr()
    assert main(site.args(fixtures_dir / "faces" / "obama_2.jpg")) == 0
    assert "No candidate at or above the threshold 0.95." in capsys.readouterr().out


def test_every_search_is_audited_with_input_hash_and_candidates(site_copy, tmp_path, fixtures_dir, capsys):
    photo = fixtures_dir / "faces" / "obama_2.jpg"
    out = _run_json(site_copy.args(photo), capsys)
    assert site_copy.kinds() == ["watchlist_loaded", "search_run"]
    (record,) = [r for r in site_copy.audit_records() if r["kind"] == "search_run"]
    assert record["actor"] == "operator:dc-4411" and out["audit"]["seq"] == record["seq"]
    d = record["details"]
    assert d["input_sha256"] == hashlib.sha256(photo.read_bytes()).hexdigest() and d["input_kind"] == "image"
    assert d["deployment_id"] == "DEP-RFR-0007" and d["mode"] == "RFR" and d["threshold"] == 0.6
    assert d["faces_found"] == out["faces_found"] >= 1 and d["faces_searched"] >= 1 and d["stopped_because"] == "complete"
    assert [(c["subject_ref"], c["file"], c["face"]) for c in d["candidates"]] == [("CASE-0001", "obama_2.jpg", 1)]
    assert d["candidates"][0]["score"] >= 0.6
    # a folder is named by the hash of its manifest (one "<sha256> <name>" line per image, in search order)
    probes = _probes(tmp_path, fixtures_dir, "biden_2.jpg", "astronaut_collins.jpg")
    _run_json(site_copy.args(probes), capsys)
    manifest = "".join(f"{hashlib.sha256((probes / n).read_bytes()).hexdigest()} {n}\n" for n in ("astronaut_collins.jpg", "biden_2.jpg"))
    folder = site_copy.last("search_run")
    assert folder["input_sha256"] == hashlib.sha256(manifest.encode()).hexdigest() and folder["input_files"] == 2
    assert main(["audit", "verify", str(site_copy.audit_log), "--device-pub", str(site_copy.root / "keys" / "cam-01")]) == 0


def test_a_video_gives_one_list_per_person_with_the_time_they_are_seen(site_copy, tmp_path, capsys):
    # Three people walk past one after another (2 s each, 0.5 s apart); two are on the watchlist.
    video = write_walk_past_video(tmp_path / "walk.avi", ["astronaut_collins.jpg", "obama_2.jpg", "biden_2.jpg"])
    out = _run_json(site_copy.args(video, "--sample-fps", "5"), capsys)
    assert out["input_kind"] == "video" and out["frames_searched"] >= 30
    results = out["results"]
    assert [[c["subject_ref"] for c in r["candidates"]] for r in results] == [["CASE-0001"], ["CASE-0002"]]  # one list per person
    obama, biden = results
    assert 2.4 <= obama["first_seen_s"] < obama["last_seen_s"] <= 4.6 and obama["faces"] >= 8
    assert 4.9 <= biden["first_seen_s"] < biden["last_seen_s"] <= 7.1
    assert out["tracks"] == 3  # the astronaut was followed too, but has no list
    for r in results:
        (c,) = r["candidates"]
        assert c["score"] >= 0.6 and c["basis"] in ("single_frame", "fused_track") and r["first_seen_s"] <= c["at_s"] <= r["last_seen_s"]
    audited = site_copy.last("search_run")
    assert audited["tracks"] == 3 and [(c["track"], c["subject_ref"]) for c in audited["candidates"]] == [(obama["track"], "CASE-0001"), (biden["track"], "CASE-0002")]
    capsys.readouterr()
    assert main(site_copy.args(video)) == 0
    text = capsys.readouterr().out
    assert text.count("person (track") == 2 and "00:00:02." in text and ("fused track template" in text or "best single frame" in text)


def test_oifr_searches_only_the_subject_of_the_still(tmp_path, fixtures_dir, capsys):
    """An officer's still of one person with a bystander behind: only the subject is searched; two
    people of comparable size are refused as ambiguous, nothing searched (vision/subject.py)."""
    site = build_site(tmp_path / "oifr", fixtures_dir, deployment_id="DEP-OIFR-0002", mode="OIFR", platform="handheld")
    frame = background(900, 600, 7).copy()
    frame[60:460, 60:460] = portrait_tile("obama_2.jpg", 400)  # the subject, close
    frame[380:540, 700:860] = portrait_tile("biden_2.jpg", 160)  # a bystander, on the watchlist
    still = tmp_path / "still.png"
    cv2.imwrite(str(still), frame)
    out = _run_json(site.args(still), capsys)
    assert out["faces_found"] == 2 and out["faces_searched"] == 1 and out["faces_not_searched"] == 1
    assert [[c["subject_ref"] for c in r["candidates"]] for r in out["results"]] == [["CASE-0001"]]
    # RFR on the same still searches every face: the bystander is then found too (the control)
    rfr = build_site(tmp_path / "rfr", fixtures_dir, deployment_id="DEP-RFR-0003")
    both = _run_json(rfr.args(still), capsys)
    assert sorted(c["subject_ref"] for r in both["results"] for c in r["candidates"]) == ["CASE-0001", "CASE-0002"]

    two = background(900, 500, 8).copy()
    two[50:450, 40:440] = portrait_tile("obama_2.jpg", 400)
    two[50:450, 460:860] = portrait_tile("biden_2.jpg", 400)
    pair = tmp_path / "pair.png"
    cv2.imwrite(str(pair), two)
    capsys.readouterr()
    assert main(site.args(pair)) == 0
    text = capsys.readouterr().out
    assert "subject cannot be told" in text and "CASE-" not in text
    assert site.last("search_run")["faces_searched"] == 0 and "multiple_faces" in site.last("search_run")["not_searched_because"]


def test_matching_stops_at_the_deployments_end_mid_video(rfr_site, tmp_path, core):
    """policing.md 2: a clock that passes the end during the search stops it; nothing after is searched."""
    import base64
    from datetime import timedelta

    from edge_agent.audit.log import AuditLog
    from edge_agent.crypto.canonical import parse_utc
    from edge_agent.identity.keys import load_authority_public, load_device_keys
    from edge_agent.search.authority import open_for_search
    from edge_agent.watchlist.loader import DeviceTrust
    from edge_agent.search.inputs import open_input, read_frames
    from edge_agent.search.retrospective import DEPLOYMENT_ENDED, run_search

    video = write_walk_past_video(tmp_path / "walk.avi", ["obama_2.jpg", "biden_2.jpg"])
    end = parse_utc(json.loads(base64.b64decode(json.loads(rfr_site.deployment.read_text())["record"]))["end"], "end")
    search_input = open_input(video)
    with AuditLog.open(tmp_path / "audit.log", None, "operator:dc-4411") as audit:
        watchlist = open_for_search(rfr_site.deployment, rfr_site.watchlist, search_input,
                                    DeviceTrust(load_device_keys(rfr_site.root / "keys" / "cam-01"), load_authority_public(rfr_site.root / "auth"), core.identity), end - timedelta(minutes=1), audit)
    times = iter([end - timedelta(seconds=30)] * 12 + [end] * 1000)  # 11 frames inside the window, then the end
    frames, _ = read_frames(search_input, 5.0)
    outcome = run_search(core, watchlist, search_input, frames, lambda: next(times), max_track_gap_s=1.0)
    assert outcome.stopped_because == DEPLOYMENT_ENDED and outcome.frames == 11
    assert [[c.subject_ref for c in h.candidates] for h in outcome.hits] == [["CASE-0001"]]  # Biden walks in after the end


def test_compare_says_it_is_not_a_search(fixtures_dir, capsys):
    faces = fixtures_dir / "faces"
    assert main(["compare", str(faces / "obama_1.jpg"), str(faces / "obama_2.jpg")]) == 0
    text = capsys.readouterr().out
    assert "1:1 comparison of the two files you supplied" in text and "not a watchlist search" in text and "not evidence of identity" in text
    assert main(["compare", str(faces / "obama_1.jpg"), str(faces / "obama_2.jpg"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["comparison"] == "1:1" and "not a watchlist search" in out["note"] and out["cosine"] > 0.5


def test_a_searched_template_is_zeroed_once_searched(rfr_site, tmp_path, fixtures_dir, core):
    """The search holds no template after it: every face's embedding it was given is zero."""
    from datetime import datetime, timezone

    from edge_agent.audit.log import AuditLog
    from edge_agent.identity.keys import load_authority_public, load_device_keys
    from edge_agent.search.authority import open_for_search
    from edge_agent.watchlist.loader import DeviceTrust
    from edge_agent.search.inputs import SearchFrame, open_input
    from edge_agent.search.retrospective import run_search
    from edge_agent.vision.image_io import read_image

    photo = fixtures_dir / "faces" / "astronaut_collins.jpg"
    search_input = open_input(photo)
    with AuditLog.open(tmp_path / "audit.log", None, "operator:dc-4411") as audit:
        now = datetime.now(timezone.utc)
        watchlist = open_for_search(rfr_site.deployment, rfr_site.watchlist, search_input,
                                    DeviceTrust(load_device_keys(rfr_site.root / "keys" / "cam-01"), load_authority_public(rfr_site.root / "auth"), core.identity), now, audit)
    seen = []

    class Recording:  # the real core; it only remembers the faces it handed out
        identity = core.identity

        def faces(self, image):
            found = core.faces(image)
            seen.extend(found)
            return found

    outcome = run_search(Recording(), watchlist, search_input, iter([SearchFrame(read_image(photo), photo.name, 0, None)]),
                         lambda: now)  # type: ignore[arg-type]
    assert outcome.faces_searched >= 1 and seen
    assert all(f.embedding is None or not np.any(f.embedding) for f in seen)


def _noisy_walk(path, sigma: float = 55.0, frames: int = 15, fps: float = 5.0):
    """obama_2 drifting slowly across a 640x480 frame, each frame with its own heavy sensor noise."""
    tile = portrait_tile("obama_2.jpg", 240)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (640, 480))
    for i in range(frames):
        frame = background(640, 480, 100 + i).copy()
        noise = np.random.default_rng(i).normal(0, sigma, tile.shape)
        frame[120:360, 200 + 2 * i : 440 + 2 * i] = np.clip(tile.astype(np.int16) + noise, 0, 255).astype(np.uint8)
        writer.write(frame)
    writer.release()
    return path


def test_a_person_no_single_frame_reaches_is_found_on_the_fused_track_template(tmp_path, fixtures_dir, core, capsys):
    """Issue 13: a video search matches each track's fused template too, and cites it. Every frame
    here is too noisy to reach the threshold on its own (the control, measured on the same frames);
    fused over the track, the noise averages out and the subject is listed, basis fused_track."""
    from edge_agent.vision.enrolment import enrol_image
    from edge_agent.vision.image_io import read_image

    video = _noisy_walk(tmp_path / "noisy.avi")
    reference = enrol_image(core, read_image(fixtures_dir / "faces" / "obama_1.jpg")).template
    capture, singles = cv2.VideoCapture(str(video)), []
    while (read := capture.read())[0]:
        singles += [float(f.embedding @ reference) for f in core.faces(read[1]) if f.embedding is not None]
    capture.release()
    assert len(singles) >= 12
    # The threshold sits just above the best single frame measured here, so no single frame can
    # list anyone (a constant broke when the bit-exact resize moved these scores by 0.02; at sigma
    # 55 the best frame scores 0.623, the fused template 0.640).
    threshold = math.ceil((max(singles) + 0.005) * 1000) / 1000
    assert 0.55 <= threshold <= 0.7, f"the noisy frames score {max(singles):.3f}: no longer a hard case near the operating range"

    site = build_site(tmp_path / "site", fixtures_dir, deployment_id="DEP-RFR-FUSED", alert_threshold=threshold)
    out = _run_json(site.args(video, "--sample-fps", "5"), capsys)
    (person,) = out["results"]
    (candidate,) = person["candidates"]
    assert candidate["subject_ref"] == "CASE-0001" and candidate["basis"] == "fused_track" and candidate["score"] >= threshold
    assert site.last("search_run")["candidates"][0]["basis"] == "fused_track"

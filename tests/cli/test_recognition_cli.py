"""detect / compare through the real CLI entry point (search: tests/search)."""

from __future__ import annotations

import json

import cv2
import numpy as np

from edge_agent.cli.main import main


def test_detect_json_and_drawing(tmp_path, fixtures_dir, capsys):
    out = tmp_path / "drawn.png"
    assert main(["detect", str(fixtures_dir / "faces" / "biden_2.jpg"), "--json", "--draw", str(out)]) == 0
    result = json.loads(capsys.readouterr().out)
    (face,) = result["faces"]
    assert face["quality"]["ok"] and len(face["keypoints"]) == 6
    drawn = cv2.imread(str(out))
    original = cv2.imread(str(fixtures_dir / "faces" / "biden_2.jpg"))
    assert drawn.shape == original.shape and not np.array_equal(drawn, original)


def test_compare_same_and_different_people(fixtures_dir, capsys):
    faces = fixtures_dir / "faces"
    main(["compare", str(faces / "obama_1.jpg"), str(faces / "obama_2.jpg"), "--json"])
    same = json.loads(capsys.readouterr().out)["cosine"]
    main(["compare", str(faces / "obama_1.jpg"), str(faces / "biden_1.jpg"), "--json"])
    different = json.loads(capsys.readouterr().out)["cosine"]
    assert same > 0.5 > different


def test_compare_refuses_a_face_free_photo(fixtures_dir, capsys):
    assert main(["compare", str(fixtures_dir / "faces" / "obama_1.jpg"), str(fixtures_dir / "scenes" / "rocket_no_face.jpg")]) == 2
    assert "no_face" in capsys.readouterr().err


def test_tiles_find_a_distant_face_in_hd_footage_and_bad_tiles_are_refused(tmp_path, capsys):
    from edge_agent.demo.scenes import background, portrait_tile

    frame = background(1280, 720, 5).copy()
    size = round(46 / 0.52)  # obama_2's face is 52 % of its portrait tile: a 46 px face at 720p
    frame[100 : 100 + size, 200 : 200 + size] = portrait_tile("obama_2.jpg", size)
    image = tmp_path / "far.png"
    cv2.imwrite(str(image), frame)
    counts = {}
    for tiles in ("1x1", "2x2"):
        assert main(["detect", str(image), "--detector", "full", "--tiles", tiles, "--json"]) == 0
        counts[tiles] = len(json.loads(capsys.readouterr().out)["faces"])
    assert counts == {"1x1": 0, "2x2": 1}
    assert main(["detect", str(image), "--tiles", "9x9"]) != 0
    assert "COLSxROWS" in capsys.readouterr().err

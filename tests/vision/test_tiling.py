"""Detector tiles find distant faces in HD frames that the whole-frame pass cannot see, once each."""

from __future__ import annotations

import numpy as np
import pytest

from edge_agent.demo.scenes import background, portrait_tile
from edge_agent.errors import ConfigError
from edge_agent.vision.core import RecognitionCore
from edge_agent.vision.detector import Detection
from edge_agent.vision.tiling import Region, TileGrid, cut_by_inner_edge, to_frame

FACE_RATIO = {"obama_2.jpg": 0.52, "biden_1.jpg": 0.33}  # face width / portrait tile width (measured)


def test_grid_parsing_and_refusals():
    assert TileGrid.parse("1x1").enabled is False
    assert (TileGrid.parse(" 3 x 2 ").cols, TileGrid.parse("3x2").rows) == (3, 2)
    for bad in ("0x1", "5x1", "2", "axb", "2x2x2", "", "automatic"):
        with pytest.raises(ConfigError, match="COLSxROWS"):
            TileGrid.parse(bad)


@pytest.mark.parametrize("size,grid", [((640, 480), (1, 1)), ((800, 600), (1, 1)), ((1280, 720), (2, 2)), ((1920, 1080), (3, 2)), ((3840, 2160), (4, 4))])
def test_auto_tiles_keep_each_tile_about_640x480(size, grid):
    auto = TileGrid.parse("auto")
    assert auto.enabled and str(auto) == "auto"
    assert auto.grid_for(*size) == grid
    assert len(auto.regions(*size)) == (0 if grid == (1, 1) else grid[0] * grid[1])


@pytest.mark.parametrize("grid,size", [("2x2", (1280, 720)), ("3x2", (1920, 1080)), ("4x3", (1001, 777)), ("2x1", (640, 480))])
def test_tiles_cover_the_frame_and_overlap(grid, size):
    width, height = size
    tiles = TileGrid.parse(grid)
    regions = tiles.regions(width, height)
    assert len(regions) == tiles.cols * tiles.rows
    covered = np.zeros((height, width), np.int32)
    for r in regions:
        assert r.x >= 0 and r.y >= 0 and r.x + r.width <= width and r.y + r.height <= height
        covered[r.y : r.y + r.height, r.x : r.x + r.width] += 1
    assert covered.min() >= 1, "every pixel is in some tile"
    xs = sorted({r.x for r in regions})
    for a, b in zip(xs, xs[1:], strict=False):
        assert regions[0].width - (b - a) >= 0.2 * regions[0].width, "neighbouring tiles overlap by at least 20 %"
    assert TileGrid().regions(width, height) == []


def test_a_box_on_an_inner_edge_is_cut_and_one_on_the_frame_edge_is_not():
    frame_w, frame_h = 1280, 720
    left_tile = Region(0, 0, 700, 400)
    assert cut_by_inner_edge((650.0, 100.0, 699.0, 150.0), left_tile, frame_w, frame_h)  # right edge is inside the frame
    assert not cut_by_inner_edge((0.0, 100.0, 40.0, 150.0), left_tile, frame_w, frame_h)  # left edge is the frame's
    assert not cut_by_inner_edge((300.0, 100.0, 340.0, 150.0), left_tile, frame_w, frame_h)
    moved = to_frame(Detection((1.0, 2.0, 3.0, 4.0), 0.9, np.zeros((6, 2), np.float32)), Region(100, 50, 10, 10))
    assert moved.box == (101.0, 52.0, 103.0, 54.0) and np.all(moved.keypoints == [100, 50])


def _scene(width: int, height: int, placements: list[tuple[str, int, int, int]]) -> np.ndarray:
    frame = background(width, height, 11).copy()
    for name, x, y, size in placements:
        frame[y : y + size, x : x + size] = portrait_tile(name, size)
    return frame


def _centre_inside(detection: Detection, x: int, y: int, size: int) -> bool:
    cx, cy = (detection.box[0] + detection.box[2]) / 2, (detection.box[1] + detection.box[3]) / 2
    return x <= cx <= x + size and y <= cy <= y + size


@pytest.fixture(scope="module")
def cores():
    return {grid: RecognitionCore.load(detector="full", tiles=TileGrid.parse(grid)) for grid in ("1x1", "2x2")}


def test_a_distant_face_at_720p_needs_tiles(cores):
    size = round(46 / FACE_RATIO["obama_2.jpg"])  # a 46 px face: accepted by the quality gate (40 px)
    frame = _scene(1280, 720, [("obama_2.jpg", 150, 120, size)])
    assert cores["1x1"].detect(frame) == []
    found = cores["2x2"].detect(frame)
    assert len(found) == 1 and _centre_inside(found[0], 150, 120, size)
    assert 35 <= found[0].width <= 60


def test_a_small_face_in_the_overlap_and_a_big_face_across_all_tiles_are_each_found_once(cores):
    small = round(48 / FACE_RATIO["obama_2.jpg"])
    big = 560
    # The small face sits on the vertical centre line, inside the overlap of the left and right tiles;
    # the big portrait covers the frame's centre, crossing every tile boundary.
    placements = [("obama_2.jpg", 640 - small // 2, 10, small), ("biden_1.jpg", 380, 150, big)]
    frame = _scene(1280, 720, placements)
    whole = cores["1x1"].detect(frame)
    tiled = cores["2x2"].detect(frame)
    assert len(tiled) == 2, [d.box for d in tiled]
    assert sum(_centre_inside(d, 640 - small // 2, 10, small) for d in tiled) == 1
    big_tiled = [d for d in tiled if d.width > 100]
    big_whole = [d for d in whole if d.width > 100]
    assert len(big_tiled) == len(big_whole) == 1
    inter_w = min(big_tiled[0].box[2], big_whole[0].box[2]) - max(big_tiled[0].box[0], big_whole[0].box[0])
    assert inter_w > 0.8 * big_whole[0].width, "merging the tile views does not move the big face's box"


def test_faces_from_tiles_are_aligned_and_embedded_like_any_other(cores):
    size = round(60 / FACE_RATIO["obama_2.jpg"])
    far = _scene(1280, 720, [("obama_2.jpg", 900, 400, size)])
    near = _scene(640, 480, [("obama_2.jpg", 170, 40, 400)])
    far_faces = cores["2x2"].faces(far, embed_rejected=True)
    near_faces = cores["1x1"].faces(near)
    assert len(far_faces) == 1 and len(near_faces) == 1
    similarity = float(far_faces[0].embedding @ near_faces[0].embedding)
    assert similarity > 0.5, f"the same portrait at 60 px and 200 px should still match (cosine {similarity:.2f})"


@pytest.mark.parametrize("name,size,x", [("biden_2.jpg", 200, 440), ("biden_2.jpg", 200, 600), ("biden_1.jpg", 260, 560), ("obama_1.jpg", 320, 520)])
def test_a_face_cut_by_a_tile_edge_is_reported_once_where_the_whole_frame_sees_it(cores, name, size, x):
    """These placements put a face across the tiles' inner edges (a half face is detected in one
    tile); without dropping cut faces the first one is reported twice. The one box reported is the
    score-weighted merge of the whole frame's view and the tiles' views (at ~1.8x the scale, where
    BlazeFace puts the box elsewhere: IoU 0.71-0.94 with the whole frame's), so it must be at least
    as close to the whole frame's box as the closest uncut tile view alone. (A fixed IoU bound of
    0.85 sat 0.004 under one measurement and failed when the resize became bit-exact: 0.834.)"""
    frame = _scene(1280, 720, [(name, x, 200, size)])
    tiled, whole = cores["2x2"].detect(frame), cores["1x1"].detect(frame)
    assert len(tiled) == 1 and len(whole) == 1
    height, width = frame.shape[:2]
    tile_views = [
        _iou(to_frame(d, region).box, whole[0].box)
        for region in cores["2x2"].tiles.regions(width, height)
        for d in cores["2x2"].detectors[0].detect(frame[region.y : region.y + region.height, region.x : region.x + region.width])
        if not cut_by_inner_edge(d.box, region, width, height)
    ]
    assert tile_views, "some tile sees the whole face"
    assert _iou(tiled[0].box, whole[0].box) >= max(tile_views), (tiled[0].box, whole[0].box, tile_views)


def _iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)

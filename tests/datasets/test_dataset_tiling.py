"""Tiles cover the frame with overlap; boxes are clipped to a tile; small remnants are dropped."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from datasets.tiling import clip_boxes, tile_windows


@pytest.mark.parametrize(
    ("width", "height", "tile", "overlap", "expected_x", "expected_y"),
    [
        (200, 100, 100, 0.0, [0, 100], [0]),
        (250, 100, 100, 0.2, [0, 80, 150], [0]),  # step 80, last tile shifted to end at 250
        (100, 60, 100, 0.2, [0], [0]),  # frame smaller than a tile: one window, clipped to the frame
        (640, 640, 640, 0.2, [0], [0]),
        (4000, 3000, 640, 0.2, [*range(0, 3360, 512), 3360], [*range(0, 2360, 512), 2360]),
    ],
)
def test_tile_windows_cover_the_frame(width, height, tile, overlap, expected_x, expected_y):
    windows = tile_windows(width, height, tile, overlap)
    assert sorted({w[0] for w in windows}) == expected_x
    assert sorted({w[1] for w in windows}) == expected_y
    assert len(windows) == len(expected_x) * len(expected_y)
    covered = np.zeros((height, width), dtype=bool)
    for x0, y0, x1, y1 in windows:
        assert x1 - x0 == min(tile, width) and y1 - y0 == min(tile, height)
        covered[y0:y1, x0:x1] = True
    assert covered.all()
    xs = sorted({w[0] for w in windows})
    for a, b in itertools.pairwise(xs):  # neighbours overlap by at least the asked share
        assert (a + tile) - b >= int(overlap * tile)


@pytest.mark.parametrize(("tile", "overlap"), [(0, 0.2), (100, 1.0), (100, -0.1)])
def test_tile_windows_reject_bad_arguments(tile, overlap):
    with pytest.raises(ValueError, match="tile"):
        tile_windows(100, 100, tile, overlap)


def test_box_across_a_tile_border_becomes_two_clipped_boxes():
    box = np.array([[90.0, 20.0, 110.0, 40.0]])
    left = clip_boxes(box, np.array([3]), (0, 0, 100, 100), min_visible=0.4, min_px=4)
    right = clip_boxes(box, np.array([3]), (100, 0, 200, 100), min_visible=0.4, min_px=4)
    np.testing.assert_allclose(left.xyxy, [[90, 20, 100, 40]])
    np.testing.assert_allclose(right.xyxy, [[0, 20, 10, 40]])
    assert left.class_ids.tolist() == right.class_ids.tolist() == [3]
    assert left.dropped == right.dropped == 0


@pytest.mark.parametrize(
    ("box", "min_visible", "min_px", "kept", "dropped"),
    [
        ((95, 20, 140, 40), 0.4, 4, [], 1),  # 5 of 45 px visible: remnant dropped by visible share
        ((95, 20, 140, 40), 0.1, 4, [[95, 20, 100, 40]], 0),  # same remnant kept with a lower threshold
        ((97, 20, 101, 40), 0.4, 4, [], 1),  # 3 of 4 px visible (75 %) but narrower than min_px
        ((10, 10, 30, 30), 0.4, 4, [[10, 10, 30, 30]], 0),  # inside: unchanged
        ((150, 10, 170, 30), 0.4, 4, [], 0),  # outside the tile: ignored, not "dropped"
    ],
)
def test_clip_boxes_drops_small_remnants(box, min_visible, min_px, kept, dropped):
    result = clip_boxes(np.array([box], dtype=float), np.array([1]), (0, 0, 100, 100), min_visible, min_px)
    np.testing.assert_allclose(result.xyxy.reshape(-1, 4), np.array(kept, dtype=float).reshape(-1, 4))
    assert result.dropped == dropped


def test_clip_boxes_in_tile_coordinates_for_offset_window():
    result = clip_boxes(np.array([[250.0, 310.0, 290.0, 330.0]]), np.array([0]), (240, 300, 340, 400))
    np.testing.assert_allclose(result.xyxy, [[10, 10, 50, 30]])


def test_clip_boxes_empty():
    result = clip_boxes(np.zeros((0, 4)), np.zeros((0,), dtype=int), (0, 0, 10, 10))
    assert result.xyxy.shape == (0, 4) and result.dropped == 0

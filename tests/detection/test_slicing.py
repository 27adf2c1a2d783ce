"""detection.slicing: tile coverage, exact mapping back, merging of objects cut by tile borders, batching.

Most tests use an *oracle* backend — a stand-in model that reports every pure-red blob in each input it is given
as a box of class ``crack`` — so the whole real path (letterbox, tensor, decode, rescale, shift, merge) runs and
the right answer is known exactly. One test runs the real ONNX model.
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest
from fixtures_inference import synthetic_frame

from detection import taxonomy
from detection.detections import Detections
from detection.inference import Detector
from detection.model_meta import ModelMeta
from detection.slicing import TILE_KEY, SlicedDetector, tile_windows

NAMES = taxonomy.class_names("wind-rgb")
CRACK = NAMES.index("crack")
RED = (0, 0, 255)


class OracleBackend:
    """Finds pure-red connected blobs in each (3, H, W) RGB input; outputs a raw (B, 4 + nc, 64) YOLO array."""

    name = "oracle"

    def __init__(self, size: int) -> None:
        self._shape = (None, 3, size, size)
        self.batches: list[int] = []

    @property
    def input_shape(self):
        return self._shape

    @property
    def dynamic_batch(self) -> bool:
        return True

    @property
    def providers(self) -> list[str]:
        return ["numpy"]

    @property
    def metadata(self) -> dict[str, str]:
        return {}

    def run(self, batch: np.ndarray) -> np.ndarray:
        self.batches.append(len(batch))
        out = np.zeros((len(batch), 4 + len(NAMES), 64), np.float32)
        for b, x in enumerate(batch):
            mask = ((x[0] > 0.99) & (x[1] < 0.01) & (x[2] < 0.01)).astype(np.uint8)
            n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
            for k, (x0, y0, w, h, _area) in enumerate(stats[1:n]):
                out[b, :4, k] = [x0 + w / 2, y0 + h / 2, w, h]
                out[b, 4 + CRACK, k] = 0.9
        return out


def oracle_detector(size: int = 160) -> Detector:
    meta = ModelMeta(names=dict(enumerate(NAMES)), imgsz=(size, size))
    return Detector(OracleBackend(size), meta, conf=0.25, iou=0.45)


def frame_with(boxes: list[tuple[int, int, int, int]], h: int = 420, w: int = 700) -> np.ndarray:
    img = np.full((h, w, 3), 90, np.uint8)
    for x1, y1, x2, y2 in boxes:
        img[y1:y2, x1:x2] = RED
    return img


# ------------------------------------------------------------------------------------------------ windows
@pytest.mark.parametrize(
    ("h", "w", "tile", "overlap"),
    [
        (3000, 4000, 640, 0.2),
        (512, 640, 640, 0.2),
        (1080, 1920, (384, 640), 0.25),
        (4000, 3000, 640, 0.0),
        (300, 200, 640, 0.2),  # frame smaller than a tile
        (641, 1281, 640, 0.2),  # one pixel more than a tile: no 1-px sliver
        (420, 700, 160, 0.2),
    ],
)
def test_tile_windows_cover_the_frame(h, w, tile, overlap) -> None:
    th, tw = (tile, tile) if isinstance(tile, int) else tile
    wins = tile_windows(h, w, tile, overlap)
    covered = np.zeros((h, w), bool)
    for x1, y1, x2, y2 in wins:
        assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
        assert x2 - x1 == min(tw, w) and y2 - y1 == min(th, h)  # every tile full size: no slivers
        covered[y1:y2, x1:x2] = True
    assert covered.all()
    xs, ys = np.unique(wins[:, 0]), np.unique(wins[:, 1])
    assert xs[0] == 0 and ys[0] == 0 and wins[:, 2].max() == w and wins[:, 3].max() == h
    for starts, size, t in ((xs, w, tw), (ys, h, th)):
        if size > t:
            steps = np.diff(starts)
            assert steps.max() <= t - round(t * overlap)  # at least the requested overlap
            assert len(starts) == int(np.ceil((size - t) / (t - round(t * overlap)))) + 1  # and no more tiles


def test_tile_windows_count_for_a_4000x3000_frame() -> None:
    assert len(tile_windows(3000, 4000, 640, 0.2)) == 6 * 8


@pytest.mark.parametrize(
    ("args", "match"),
    [((0, 10, 640, 0.2), "must be positive"), ((10, 10, 640, 1.0), r"overlap must be in \[0, 1\)")],
)
def test_tile_windows_errors(args, match) -> None:
    with pytest.raises(ValueError, match=match):
        tile_windows(*args)


# ------------------------------------------------------------------------------------------------ oracle
def test_boxes_map_back_exactly() -> None:
    painted = [
        (10, 12, 40, 30),
        (150, 100, 175, 140),
        (300, 250, 330, 262),
        (640, 380, 690, 415),
        (500, 10, 520, 60),
    ]
    sliced = SlicedDetector(oracle_detector(160), overlap=0.25, merge="greedy")
    found = sliced.predict(frame_with(painted))
    assert sorted(map(tuple, found.xyxy.astype(int).tolist())) == sorted(painted)
    np.testing.assert_array_equal(np.sort(found.xyxy, axis=0), np.sort(np.array(painted, np.float32), axis=0))
    assert set(found.class_id.tolist()) == {CRACK}


def test_long_thin_crack_cut_by_tiles_becomes_one_box() -> None:
    crack = (20, 200, 680, 204)  # 660 px long, 4 px wide: crosses five 160-px tiles
    det = oracle_detector(160)
    pieces = SlicedDetector(det, overlap=0.2).predict_tiles(frame_with([crack]))
    assert len(np.unique(pieces.data[TILE_KEY])) >= 5 and len(pieces) >= 5
    assert (
        pieces.xyxy[:, 2].max() - pieces.xyxy[:, 0].min() == 660
        and (pieces.xyxy[:, 2] - pieces.xyxy[:, 0]).max() <= 160
    )
    only_nms = SlicedDetector(det, overlap=0.2, merge="nms").predict(frame_with([crack]))
    assert len(only_nms) > 1  # NMS alone leaves the crack in pieces
    merged = SlicedDetector(det, overlap=0.2, merge="greedy").predict(frame_with([crack]))
    assert len(merged) == 1 and merged.xyxy[0].tolist() == list(crack)


def test_diagonal_crack_and_separate_defects() -> None:
    img = frame_with([(600, 20, 640, 50)])
    cv2.line(img, (30, 30), (500, 380), RED, 3)
    found = SlicedDetector(oracle_detector(160), overlap=0.2).predict(img)
    assert len(found) == 2
    big = found[np.argmax(found.area)]
    np.testing.assert_allclose(big.xyxy[0], [29, 29, 502, 382], atol=2)


def test_tiles_are_batched() -> None:
    det = oracle_detector(160)
    sliced = SlicedDetector(det, overlap=0.2, batch_size=4)
    sliced.predict(frame_with([]))
    k = len(sliced.windows((420, 700)))
    assert (
        sum(det.backend.batches) == k
        and max(det.backend.batches) == 4
        and len(det.backend.batches) == -(-k // 4)
    )


def test_full_frame_pass_is_added() -> None:
    det = oracle_detector(160)
    big = (100, 80, 600, 380)  # larger than any tile
    dets = SlicedDetector(det, full_frame=True).predict_tiles(frame_with([big]))
    whole = dets[dets.data[TILE_KEY] == -1]
    assert len(whole) == 1
    np.testing.assert_allclose(
        whole.xyxy[0], big, atol=1 / (160 / 700) + 1
    )  # found at 160/700 scale, mapped back
    merged = SlicedDetector(det, full_frame=True).predict(frame_with([big]))
    assert len(merged) == 1


def test_empty_frame_and_argument_errors() -> None:
    det = oracle_detector(160)
    assert len(SlicedDetector(det).predict(frame_with([]))) == 0
    with pytest.raises(ValueError, match="merge must be 'nms' or 'greedy'"):
        SlicedDetector(det, merge="wbf")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="overlap"):
        SlicedDetector(det, overlap=1.0)


# ------------------------------------------------------------------------------------------------ real model
def test_real_model_single_tile_equals_whole_frame(onnx_model) -> None:
    det = Detector.from_onnx(onnx_model.path, conf=0.05, iou=0.45)
    img = synthetic_frame(300, 320, seed=11)
    whole = det.predict(img)
    sliced = SlicedDetector(det, tile=320, merge="nms").predict(img)  # one tile = the frame
    assert len(whole) > 0
    np.testing.assert_allclose(sliced.xyxy, whole.xyxy, atol=1e-4)


def test_real_model_on_a_large_frame(onnx_model) -> None:
    det = Detector.from_onnx(onnx_model.path, conf=0.05, iou=0.45)
    img = synthetic_frame(720, 1280, seed=12, shapes=40)
    found = SlicedDetector(det, overlap=0.2, batch_size=8, full_frame=True).predict(img)
    assert isinstance(found, Detections) and len(found) > 0
    assert (
        found.xyxy[:, [0, 2]].max() <= 1920 and found.xyxy[:, [1, 3]].max() <= 1080 and found.xyxy.min() >= 0
    )
    assert len(found) <= det.max_det and np.all(np.diff(found.confidence) <= 0)


def test_default_tile_keeps_the_model_training_scale() -> None:
    """A model trained on 320 px tiles resized to 160 (``slice_tile``) is fed 320 px tiles; boxes still map back."""
    base = oracle_detector(160)
    scaled = Detector(base.backend, replace(base.meta, slice_tile=(320, 320)), conf=0.25, iou=0.45)
    assert SlicedDetector(base).tile == (160, 160)
    sliced = SlicedDetector(scaled, overlap=0.25)
    assert sliced.tile == (320, 320)
    assert len(sliced.windows((420, 700))) == 2 * 3
    painted = [(10, 12, 40, 30), (230, 250, 260, 262), (640, 380, 690, 415)]
    found = sliced.predict(frame_with(painted))
    # each tile is halved on its way into the model: boxes come back within two pixels
    np.testing.assert_allclose(
        np.sort(found.xyxy, axis=0), np.sort(np.array(painted, np.float32), axis=0), atol=2.0
    )
    assert SlicedDetector(scaled, tile=200).tile == (200, 200)  # an explicit tile still wins

"""Sliced inference for large drone frames: ONE implementation shared by the cloud pipeline and the Jetson runtime.

A 4000×3000 frame letterboxed into 640×640 shrinks a 10-px crack to 1.6 px; cutting the frame into model-sized
tiles keeps full resolution. Tiles overlap so every defect lies wholly inside at least one tile (when it is smaller
than the overlap); detections are mapped back to frame pixels and merged across tiles:

1. class-aware NMS (the detector's IoU) removes the duplicates two overlapping tiles both saw;
2. with ``merge="greedy"``, boxes of one class from different tiles that overlap by intersection-over-smaller
   ``>= merge_threshold`` are merged into their union box — a slender crack cut by tile borders becomes one box.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np

from detection.boxes import batched_nms, greedy_merge, shift_boxes
from detection.detections import Detections
from detection.inference import Detector

TILE_KEY = "tile"
"""``Detections.data`` key holding the tile index a detection came from (-1: the full-frame pass)."""


def _starts(size: int, tile: int, overlap: float) -> np.ndarray:
    """Tile start offsets along one axis: evenly spread, first at 0, last flush with the border."""
    if size <= tile:
        return np.zeros(1, dtype=np.int64)
    step = max(1, tile - round(tile * overlap))
    n = math.ceil((size - tile) / step) + 1
    return np.rint(np.linspace(0, size - tile, n)).astype(np.int64)


def tile_windows(h: int, w: int, tile: int | tuple[int, int] = 640, overlap: float = 0.2) -> np.ndarray:
    """Windows covering an (h, w) frame: (K, 4) int64 rows ``x1, y1, x2, y2``, row-major.

    Tiles are ``tile`` (h, w) pixels (smaller along an axis where the frame is smaller). Adjacent tiles overlap by
    at least ``overlap`` × tile; they are spread evenly and the last one is aligned to the border, so there are no
    thin slivers at the right or bottom edge.

    Raises:
        ValueError: empty frame or tile, or overlap outside [0, 1).
    """
    th, tw = (tile, tile) if isinstance(tile, int) else (int(tile[0]), int(tile[1]))
    if h <= 0 or w <= 0 or th <= 0 or tw <= 0:
        raise ValueError(f"tile_windows: frame (h, w)=({h}, {w}) and tile ({th}, {tw}) must be positive")
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"tile_windows: overlap must be in [0, 1), got {overlap}")
    ys, xs = _starts(h, th, overlap), _starts(w, tw, overlap)
    y1, x1 = np.meshgrid(ys, xs, indexing="ij")
    x1, y1 = x1.ravel(), y1.ravel()
    return np.stack([x1, y1, np.minimum(x1 + tw, w), np.minimum(y1 + th, h)], axis=1)


class SlicedDetector:
    """Tile a frame, detect in all tiles in batches, map back and merge.

    Args:
        detector: the whole-image detector (its conf / iou / max_det apply).
        tile: tile size (h, w) or one int, in frame pixels; default the model's own (``ModelMeta.tile_for``: the
            scale it was trained at, e.g. 640 px tiles for a model trained on 640 px tiles at input 320; else its
            input size, so tiles are not resized).
        overlap: fraction of the tile shared with each neighbour (0.2 = at least 20 %).
        batch_size: tiles per backend call.
        full_frame: also run the whole frame letterboxed, to catch objects larger than a tile.
        merge: ``"nms"`` (class-aware NMS only) or ``"greedy"`` (NMS, then greedy IoS merging across tiles).
        merge_threshold: IoS for greedy merging; default ``overlap / 2`` (pieces of one object cut by a border
            overlap by about ``overlap`` × tile over a piece at most a tile long).

    Raises:
        ValueError: unknown ``merge`` mode or thresholds out of range.
    """

    def __init__(
        self,
        detector: Detector,
        tile: int | tuple[int, int] | None = None,
        overlap: float = 0.2,
        batch_size: int = 8,
        full_frame: bool = False,
        merge: Literal["nms", "greedy"] = "greedy",
        merge_threshold: float | None = None,
    ) -> None:
        if merge not in ("nms", "greedy"):
            raise ValueError(f"SlicedDetector: merge must be 'nms' or 'greedy', got {merge!r}")
        if not 0.0 <= overlap < 1.0:
            raise ValueError(f"SlicedDetector: overlap must be in [0, 1), got {overlap}")
        if batch_size < 1:
            raise ValueError(f"SlicedDetector: batch_size must be >= 1, got {batch_size}")
        self.detector = detector
        self.tile: tuple[int, int] = (
            detector.meta.tile_for(detector.input_hw)
            if tile is None
            else ((tile, tile) if isinstance(tile, int) else (tile[0], tile[1]))
        )
        self.overlap = overlap
        self.batch_size = batch_size
        self.full_frame = full_frame
        self.merge = merge
        self.merge_threshold = overlap / 2 if merge_threshold is None else float(merge_threshold)
        if not 0.0 <= self.merge_threshold <= 1.0:
            raise ValueError(f"SlicedDetector: merge_threshold must be in 0..1, got {merge_threshold}")

    def windows(self, shape: tuple[int, int]) -> np.ndarray:
        """(K, 4) tile windows for a frame of ``shape`` (h, w)."""
        return tile_windows(shape[0], shape[1], self.tile, self.overlap)

    def predict_tiles(self, frame: np.ndarray) -> Detections:
        """All tiles' detections in frame pixels, unmerged, with ``data["tile"]`` (the window index)."""
        view = self.detector.model_image(frame)
        wins = self.windows(view.shape[:2])
        found: list[Detections] = []
        for start in range(0, len(wins), self.batch_size):
            chunk = wins[start : start + self.batch_size]
            tiles = [view[y1:y2, x1:x2] for x1, y1, x2, y2 in chunk]  # views, no copies
            for k, (dets, (x1, y1, _, _)) in enumerate(
                zip(self.detector.predict_batch(tiles), chunk, strict=True)
            ):
                if len(dets):
                    idx = np.full(len(dets), start + k, dtype=np.int32)
                    found.append(
                        Detections(
                            shift_boxes(dets.xyxy, x1, y1),
                            dets.confidence,
                            dets.class_id,
                            {**dets.data, TILE_KEY: idx},
                        )
                    )
        if self.full_frame and len(wins) > 1:
            whole = self.detector.predict(view)
            if len(whole):
                found.append(whole.with_data(**{TILE_KEY: np.full(len(whole), -1, dtype=np.int32)}))
        return (
            Detections.merge(found)
            if found
            else Detections.empty().with_data(**{TILE_KEY: np.zeros(0, np.int32)})
        )

    def merge_detections(self, dets: Detections) -> Detections:
        """Merge detections from overlapping tiles (see the module docstring); best first, at most max_det.

        Detections that all come from one tile are returned as the detector gave them (nothing to merge).
        """
        if not len(dets) or (TILE_KEY in dets.data and len(np.unique(dets.data[TILE_KEY])) == 1):
            return dets.sorted()[: self.detector.max_det]
        keep = batched_nms(dets.xyxy, dets.confidence, dets.class_id, self.detector.iou)
        dets = dets[keep]
        if self.merge == "greedy":
            dets = greedy_merge(
                dets, self.merge_threshold, group_key=TILE_KEY if TILE_KEY in dets.data else None
            )
        return dets[: self.detector.max_det]

    def predict(self, frame: np.ndarray) -> Detections:
        """Detect in one frame of any size → merged :class:`Detections` in frame pixels."""
        return self.merge_detections(self.predict_tiles(frame))

    def predict_batch(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        return [self.predict(f) for f in frames]

    __call__ = predict

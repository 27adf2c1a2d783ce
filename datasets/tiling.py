"""Cutting large frames into overlapping training tiles, and clipping boxes to a tile (pure numpy)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ClippedBoxes:
    """Boxes of one tile: ``xyxy`` (N, 4) float64 in tile pixels, ``class_ids`` (N,), and how many were dropped.

    ``dropped`` counts boxes that touched the tile but whose visible part was too small to keep.
    """

    xyxy: np.ndarray
    class_ids: np.ndarray
    dropped: int


def _starts(length: int, tile: int, step: int) -> list[int]:
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, step))
    starts.append(length - tile)  # the last tile ends exactly at the border
    return sorted(set(starts))


def tile_windows(width: int, height: int, tile: int, overlap: float) -> list[tuple[int, int, int, int]]:
    """Windows ``(x0, y0, x1, y1)`` (pixels, exclusive end) covering a ``width``×``height`` frame.

    Tiles are ``tile``×``tile``; neighbours overlap by at least ``overlap`` of a tile (the step is
    ``floor(tile * (1 - overlap))``); the last row/column is shifted to end at the border. A frame side shorter
    than ``tile`` gives one window of that side's full length.

    Raises:
        ValueError: ``tile < 1`` or ``overlap`` outside [0, 1).
    """
    if tile < 1:
        raise ValueError(f"tile size must be >= 1 px, got {tile}")
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"tile overlap must be in [0, 1), got {overlap}")
    step = max(1, int(tile * (1.0 - overlap)))
    xs, ys = _starts(width, tile, step), _starts(height, tile, step)
    return [(x, y, min(x + tile, width), min(y + tile, height)) for y in ys for x in xs]


def clip_boxes(
    xyxy: np.ndarray,
    class_ids: np.ndarray,
    window: tuple[int, int, int, int],
    min_visible: float = 0.4,
    min_px: float = 4.0,
) -> ClippedBoxes:
    """Clip ``(N, 4)`` frame-pixel boxes to ``window`` and express them in tile pixels.

    A box that does not intersect the window is ignored. A box that does is kept when the visible fraction of
    its area is at least ``min_visible`` and both visible sides are at least ``min_px``; otherwise it is counted
    in ``dropped`` (a remnant: part of an object that the tile shows but does not label).
    """
    xyxy = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    class_ids = np.asarray(class_ids, dtype=np.int64).reshape(-1)
    x0, y0, x1, y1 = (float(v) for v in window)
    cx0 = np.clip(xyxy[:, 0], x0, x1)
    cy0 = np.clip(xyxy[:, 1], y0, y1)
    cx1 = np.clip(xyxy[:, 2], x0, x1)
    cy1 = np.clip(xyxy[:, 3], y0, y1)
    vis_w, vis_h = cx1 - cx0, cy1 - cy0
    touching = (vis_w > 0) & (vis_h > 0)
    area = np.maximum(xyxy[:, 2] - xyxy[:, 0], 0) * np.maximum(xyxy[:, 3] - xyxy[:, 1], 0)
    fraction = np.where(area > 0, vis_w * vis_h / np.where(area > 0, area, 1.0), 0.0)
    keep = touching & (fraction >= min_visible) & (vis_w >= min_px) & (vis_h >= min_px)
    clipped = np.stack([cx0 - x0, cy0 - y0, cx1 - x0, cy1 - y0], axis=1)[keep]
    return ClippedBoxes(xyxy=clipped, class_ids=class_ids[keep], dropped=int((touching & ~keep).sum()))

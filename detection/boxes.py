"""Box arithmetic in pure numpy: IoU / IoS, NMS, greedy merging, clipping and scaling.

Boxes are ``x1, y1, x2, y2`` in pixels. Areas follow the continuous convention (``(x2 - x1) * (y2 - y1)``,
no ``+1``), as torchvision and ultralytics do, so results agree with their NMS.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from detection.detections import Detections


def _as_boxes(name: str, boxes: np.ndarray) -> np.ndarray:
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.ndim == 1 and arr.size == 0:
        arr = arr.reshape(0, 4)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"{name}: expected boxes of shape (N, 4), got {arr.shape}")
    return arr


def box_area(boxes: np.ndarray) -> np.ndarray:
    """(N, 4) → (N,) areas; inverted boxes count as 0."""
    b = _as_boxes("box_area", boxes)
    return np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)


def _intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    return wh[..., 0] * wh[..., 1]


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every pair: a (N, 4), b (M, 4) → (N, M) float32.

    Pairs whose union is empty (two degenerate boxes) have IoU 0.
    """
    a, b = _as_boxes("box_iou a", a), _as_boxes("box_iou b", b)
    inter = _intersection(a, b)
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
    return iou.astype(np.float32)


def box_ios(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over the smaller box's area of every pair: a (N, 4), b (M, 4) → (N, M) float32.

    1.0 when one box lies inside the other. Pairs where the smaller box has zero area have IoS 0.
    """
    a, b = _as_boxes("box_ios a", a), _as_boxes("box_ios b", b)
    inter = _intersection(a, b)
    smaller = np.minimum(box_area(a)[:, None], box_area(b)[None, :])
    with np.errstate(divide="ignore", invalid="ignore"):
        ios = np.where(smaller > 0, inter / np.where(smaller > 0, smaller, 1), 0.0)
    return ios.astype(np.float32)


NMS_BLOCK = 128
"""Boxes handled per block in :func:`nms` (bounds the IoU matrices to ``max(kept, NMS_BLOCK) × NMS_BLOCK``)."""


def _pair_iou(a: np.ndarray, b: np.ndarray, area_a: np.ndarray, area_b: np.ndarray) -> np.ndarray:
    inter = _intersection(a, b)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def nms(
    boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, max_det: int | None = None
) -> np.ndarray:
    """Greedy non-maximum suppression: boxes (N, 4), scores (N,) → (K,) int64 indices kept, best first.

    A box is suppressed when its IoU with a kept, higher-scoring box is strictly greater than ``iou_threshold``
    (torchvision's rule). Ties in score keep the earlier box. ``max_det`` stops after that many kept boxes (the
    result equals the first ``max_det`` of a full run).

    Vectorised in blocks of :data:`NMS_BLOCK` score-sorted boxes: each block is first checked against every box
    kept so far in one matrix operation, then resolved greedily inside itself — so the Python loop only touches
    boxes that survive the earlier blocks, and memory stays bounded for tens of thousands of candidates.

    Raises:
        ValueError: shapes disagree or the threshold is outside 0..1.
    """
    b = _as_boxes("nms", boxes)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(s) != len(b):
        raise ValueError(f"nms: {len(b)} boxes but {len(s)} scores")
    if not 0.0 <= iou_threshold <= 1.0:
        raise ValueError(f"nms: iou_threshold must be in 0..1, got {iou_threshold}")
    limit = len(b) if max_det is None else int(max_det)
    order = np.argsort(-s, kind="stable")
    b = b[order]
    areas = box_area(b)
    kept: list[int] = []
    for start in range(0, len(b), NMS_BLOCK):
        if len(kept) >= limit:
            break
        blk = slice(start, min(start + NMS_BLOCK, len(b)))
        alive = np.ones(blk.stop - start, dtype=bool)
        if kept:
            prev = np.asarray(kept)
            alive &= ~(_pair_iou(b[prev], b[blk], areas[prev], areas[blk]) > iou_threshold).any(axis=0)
        cand = np.flatnonzero(alive) + start
        if not cand.size:
            continue
        over = _pair_iou(b[cand], b[cand], areas[cand], areas[cand]) > iou_threshold
        suppressed = np.zeros(len(cand), dtype=bool)
        for i in range(len(cand)):
            if suppressed[i]:
                continue
            kept.append(int(cand[i]))
            if len(kept) >= limit:
                break
            suppressed |= over[i]
    return order[np.asarray(kept, dtype=np.int64)].astype(np.int64)


def batched_nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    class_ids: np.ndarray,
    iou_threshold: float,
    max_det: int | None = None,
) -> np.ndarray:
    """Class-aware NMS: boxes of different classes never suppress each other.

    boxes (N, 4), scores (N,), class_ids (N,) → (K,) int64 indices kept, best first. Implemented with the
    coordinate-offset trick (each class shifted beyond the others' extent), in float64 so offsets lose no precision.
    """
    b = _as_boxes("batched_nms", boxes)
    c = np.asarray(class_ids).reshape(-1)
    if len(c) != len(b):
        raise ValueError(f"batched_nms: {len(b)} boxes but {len(c)} class ids")
    if not len(b):
        return np.zeros(0, dtype=np.int64)
    span = float(np.abs(b).max()) * 2 + 1.0
    offset = c.astype(np.float64)[:, None] * span
    return nms(b + offset, scores, iou_threshold, max_det)


def greedy_merge(dets: Detections, ios_threshold: float = 0.1, group_key: str | None = None) -> Detections:
    """Merge same-class boxes that overlap by intersection-over-smaller into their union box.

    Greedy, best confidence first: the best remaining box seeds a group; every remaining box of its class whose
    IoS with the group's current union box is ``>= ios_threshold`` joins it (repeated until the union stops
    growing), so pieces of one slender crack cut by tile borders become ONE box. The merged detection keeps the
    maximum confidence and the ``data`` values of its best member.

    Args:
        dets: (N) detections.
        ios_threshold: minimum IoS for a box to join a group (0..1).
        group_key: optional ``dets.data`` key (e.g. ``"tile"``); boxes with a value already present in the group
            never join it, so two distinct boxes the model found in the same tile are not merged.

    Returns:
        (K <= N) detections, best first.
    """
    from detection.detections import Detections

    if not 0.0 <= ios_threshold <= 1.0:
        raise ValueError(f"greedy_merge: ios_threshold must be in 0..1, got {ios_threshold}")
    if len(dets) < 2:
        return dets.sorted()
    groups = dets.data[group_key] if group_key is not None else None
    order = np.argsort(-dets.confidence, kind="stable")
    boxes = dets.xyxy.astype(np.float64)
    alive = np.ones(len(dets), dtype=bool)
    merged_boxes: list[np.ndarray] = []
    seeds: list[int] = []
    for seed in order:
        if not alive[seed]:
            continue
        alive[seed] = False
        union = boxes[seed].copy()
        member_groups = {groups[seed].item()} if groups is not None else set()
        candidates = np.flatnonzero(alive & (dets.class_id == dets.class_id[seed]))
        changed = True
        while changed and candidates.size:
            changed = False
            ios = box_ios(union[None], boxes[candidates])[0]
            for j, value in zip(candidates, ios, strict=True):
                if value < ios_threshold or not alive[j]:
                    continue
                if groups is not None and groups[j].item() in member_groups:
                    continue
                alive[j] = False
                union = np.concatenate(
                    [np.minimum(union[:2], boxes[j, :2]), np.maximum(union[2:], boxes[j, 2:])]
                )
                if groups is not None:
                    member_groups.add(groups[j].item())
                changed = True
            candidates = candidates[alive[candidates]]
        merged_boxes.append(union)
        seeds.append(int(seed))
    kept = dets[np.asarray(seeds, dtype=np.intp)]
    return Detections(np.asarray(merged_boxes, np.float32), kept.confidence, kept.class_id, kept.data)


def clip_boxes(boxes: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Clip (N, 4) boxes to an image of ``shape`` (height, width); returns a new float32 array."""
    b = np.array(boxes, dtype=np.float32, copy=True).reshape(-1, 4)
    h, w = shape[:2]
    b[:, [0, 2]] = np.clip(b[:, [0, 2]], 0, w)
    b[:, [1, 3]] = np.clip(b[:, [1, 3]], 0, h)
    return b


def scale_boxes(
    boxes: np.ndarray, gain: tuple[float, float], pad: tuple[float, float] = (0.0, 0.0)
) -> np.ndarray:
    """Map (N, 4) boxes from a resized, padded image back to the original: ``(box - pad) / gain``.

    ``gain`` is (gain_x, gain_y) = resized size / original size per axis; ``pad`` is (pad_x, pad_y) pixels added
    on the left and top. Returns a new float32 array.
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    gx, gy = gain
    px, py = pad
    out = (b - np.array([px, py, px, py])) / np.array([gx, gy, gx, gy])
    return out.astype(np.float32)


def shift_boxes(boxes: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """Translate (N, 4) boxes by (dx, dy) pixels (tile → frame coordinates); returns float32."""
    return (np.asarray(boxes, dtype=np.float64).reshape(-1, 4) + np.array([dx, dy, dx, dy])).astype(
        np.float32
    )


def xywh_to_xyxy(xywh: np.ndarray) -> np.ndarray:
    """(N, 4) centre-x, centre-y, width, height → (N, 4) x1, y1, x2, y2 (same dtype)."""
    xy, wh = xywh[..., :2], xywh[..., 2:4]
    half = wh / 2
    return np.concatenate([xy - half, xy + half], axis=-1)

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

    Up to :data:`NMS_SPARSE_MIN` boxes the greedy loop runs in OpenCV's C++ ``NMSBoxes`` (the same rule and
    order, 2–8× faster than numpy on a frame's candidates: it is on every frame's critical path). Boxes with a zero
    area use a numpy loop vectorised in blocks of :data:`NMS_BLOCK` score-sorted boxes: each block is first checked
    against every box kept so far in one matrix operation, then resolved greedily inside itself — so the Python loop
    only touches boxes that survive the earlier blocks, and memory stays bounded for tens of thousands of candidates. Above
    :data:`NMS_SPARSE_MIN` boxes (merging thousands of tile detections) the kept-versus-block products grow
    quadratically, so suppression instead follows the graph of overlapping pairs found by a sweep along x — the
    same decisions with work proportional to the pairs that actually overlap.

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
    if len(b) > NMS_SPARSE_MIN:
        graph = _overlap_graph(b, areas, iou_threshold)
        if graph is not None:
            return order[_greedy_on_graph(graph, len(b), limit)].astype(np.int64)
    elif len(b) > 1 and np.all(areas > 0) and np.isfinite(b).all():
        prefix = 3 * limit  # greedy decisions on a score-sorted prefix do not depend on the boxes after it
        if prefix < len(b):
            kept = _nms_opencv(b[:prefix], iou_threshold)
            if len(kept) >= limit:
                return order[kept[:limit]]
        return order[_nms_opencv(b, iou_threshold)[:limit]]
    return order[_nms_blocked(b, areas, iou_threshold, limit)]


def _nms_blocked(b: np.ndarray, areas: np.ndarray, iou_threshold: float, limit: int) -> np.ndarray:
    """Greedy NMS of score-sorted boxes in numpy, :data:`NMS_BLOCK` boxes at a time → kept positions (K,) int64."""
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
    return np.asarray(kept, dtype=np.int64)


def _nms_opencv(b: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy NMS of score-sorted boxes with positive areas in OpenCV's C++ loop → kept positions, best first.

    OpenCV visits boxes by descending score and suppresses a box whose IoU with a kept one is greater than the
    threshold: the rule of :func:`_nms_blocked`. It is given strictly decreasing ranks instead of the scores, so it
    visits the boxes in exactly this function's sorted order (ties included). Boxes with a zero area are left to
    :func:`_nms_blocked` (OpenCV counts two empty boxes as identical).
    """
    import cv2

    xywh = np.column_stack([b[:, :2], b[:, 2:] - b[:, :2]])
    ranks = np.arange(len(b), 0, -1, dtype=np.float32)  # exact below 2**24 boxes (NMS_SPARSE_MIN bounds n)
    kept = cv2.dnn.NMSBoxes(xywh, ranks, 0.0, float(iou_threshold))
    return np.asarray(kept, dtype=np.int64).reshape(-1)


NMS_SPARSE_MIN = 2048
"""Above this many boxes :func:`nms` suppresses along the graph of overlapping pairs (see :func:`_overlap_graph`)."""
NMS_PAIRS_MAX = 40_000_000
"""Candidate pairs (boxes overlapping along x) beyond which :func:`nms` keeps the blocked all-pairs method."""


def _overlap_graph(b: np.ndarray, areas: np.ndarray, thr: float) -> tuple[np.ndarray, np.ndarray] | None:
    """Pairs of boxes with IoU ``> thr``, as CSR (starts (n + 1,), neighbours (2P,)), or ``None`` when too many.

    A sweep along x: with boxes sorted by ``x1``, box ``q`` after ``p`` can only overlap ``p`` while
    ``x1[q] < x2[p]`` (a ``searchsorted``), so only x-overlapping pairs get the IoU arithmetic — that of
    :func:`_pair_iou`, element by element, so the decisions are the blocked method's. ``thr >= 0`` is assumed (a
    positive IoU needs a strict overlap).
    """
    n = len(b)
    by_x = np.argsort(b[:, 0], kind="stable")
    x1s = b[by_x, 0]
    hi = np.searchsorted(x1s, b[by_x, 2], side="left")
    counts = np.maximum(hi - np.arange(n) - 1, 0)
    if int(counts.sum()) > NMS_PAIRS_MAX:
        return None
    ends = np.cumsum(counts)
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    step = 1 << 18  # pairs per chunk: bounds the temporaries to ~20 MB (a frame's NMS must not double the RSS)
    p0 = 0
    while p0 < n:  # chunks of sorted positions holding about ``step`` candidate pairs each
        base = ends[p0 - 1] if p0 else 0
        p1 = max(p0 + 1, int(np.searchsorted(ends, base + step, side="right")))
        p1 = min(p1, n)
        cnt = counts[p0:p1]
        p = np.repeat(np.arange(p0, p1), cnt)
        first = np.repeat(np.cumsum(cnt) - cnt, cnt)
        q = p + 1 + (np.arange(len(p)) - first)
        i, j = by_x[p], by_x[q]
        lt = np.maximum(b[i, :2], b[j, :2])
        rb = np.minimum(b[i, 2:], b[j, 2:])
        wh = np.clip(rb - lt, 0, None)
        inter = wh[:, 0] * wh[:, 1]
        union = areas[i] + areas[j] - inter
        with np.errstate(divide="ignore", invalid="ignore"):
            iou = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
        hit = iou > thr
        rows.append(i[hit])
        cols.append(j[hit])
        p0 = p1
    r = np.concatenate([*rows, *cols]) if rows else np.zeros(0, np.int64)
    c = np.concatenate([*cols, *rows]) if rows else np.zeros(0, np.int64)
    order = np.argsort(r, kind="stable")
    return np.searchsorted(r[order], np.arange(n + 1)), c[order]


def _greedy_on_graph(graph: tuple[np.ndarray, np.ndarray], n: int, limit: int) -> np.ndarray:
    """Greedy NMS over score-sorted boxes 0..n-1 given their overlap graph → kept positions (K,) int64."""
    starts, nbrs = graph
    suppressed = np.zeros(n, dtype=bool)
    kept: list[int] = []
    for i in range(n):
        if suppressed[i]:
            continue
        kept.append(i)
        if len(kept) >= limit:
            break
        suppressed[nbrs[starts[i] : starts[i + 1]]] = True
    return np.asarray(kept, dtype=np.int64)


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


MERGE_PAIRS_MAX = 1_000_000
"""At most this many first-round box pairs per class are precomputed by :func:`greedy_merge` (beyond: each seed's
IoS is computed when it is reached — the same result, more Python-level work)."""


def greedy_merge(dets: Detections, ios_threshold: float = 0.1, group_key: str | None = None) -> Detections:
    """Merge same-class boxes that overlap by intersection-over-smaller into their union box.

    Greedy, best confidence first: the best remaining box seeds a group; every remaining box of its class whose
    IoS with the group's current union box is ``>= ios_threshold`` joins it (repeated until the union stops
    growing), so pieces of one slender crack cut by tile borders become ONE box. The merged detection keeps the
    maximum confidence and the ``data`` values of its best member.

    Each round compares the union as it was at the start of the round with the remaining boxes (in index order);
    with ``group_key``, a box whose group value is already in the group — or taken by a lower-index box joining in
    the same round — stays out.

    Vectorised: classes never interact, so each class is merged on its own; overlapping pairs (found by comparisons) answer every
    seed's first round from its precomputed partners (most seeds have none), and only growing unions are recomputed.

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
    groups = np.asarray(dets.data[group_key]).reshape(-1) if group_key is not None else None
    order = np.argsort(-dets.confidence, kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    boxes = dets.xyxy.astype(np.float64)
    seeds: list[int] = []
    unions: list[np.ndarray] = []
    for cls in np.unique(dets.class_id):
        members = np.flatnonzero(dets.class_id == cls)  # ascending index: the order candidates are visited in
        s, u = _merge_class(boxes[members], rank[members], ios_threshold,
                            groups[members] if groups is not None else None)  # fmt: skip
        seeds.extend(members[s].tolist())
        unions.extend(u)
    by_rank = np.argsort(rank[np.asarray(seeds, dtype=np.int64)], kind="stable")
    kept = dets[np.asarray(seeds, dtype=np.intp)[by_rank]]
    merged = np.asarray(unions, dtype=np.float64).reshape(-1, 4)[by_rank]
    return Detections(merged.astype(np.float32), kept.confidence, kept.class_id, kept.data)


def _ios_with(union: np.ndarray, cols: np.ndarray, areas: np.ndarray) -> np.ndarray:
    """IoS of one box (4,) with boxes given as columns (4, m) and their areas (m,) → (m,) float32.

    The same arithmetic as :func:`box_ios` (so thresholds decide identically), without its per-call checks.
    """
    iw = np.minimum(union[2], cols[2]) - np.maximum(union[0], cols[0])
    ih = np.minimum(union[3], cols[3]) - np.maximum(union[1], cols[1])
    inter = np.maximum(iw, 0) * np.maximum(ih, 0)
    smaller = np.minimum(max(union[2] - union[0], 0.0) * max(union[3] - union[1], 0.0), areas)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(smaller > 0, inter / np.where(smaller > 0, smaller, 1), 0.0).astype(np.float32)


def _first_round(boxes: np.ndarray, areas: np.ndarray, thr: float) -> tuple[np.ndarray, np.ndarray] | None:
    """Every box's first-round partners: (starts (n + 1,), partners (P,)) in CSR form, or ``None`` when too many.

    Box ``i``'s partners ``partners[starts[i]:starts[i + 1]]`` (ascending) are the other boxes whose IoS with box
    ``i`` is ``>= thr``. With ``thr > 0`` (as float32) a partner must strictly overlap box ``i``, so only
    overlapping pairs — found with comparisons, block by block — get the IoS arithmetic (that of :func:`box_ios`).
    """
    n = len(boxes)
    x1, y1, x2, y2 = (np.ascontiguousarray(boxes[:, k]) for k in range(4))
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    total = 0
    for i in range(0, n, 128):  # row blocks: bounded temporaries
        sl = slice(i, min(i + 128, n))
        if np.float32(thr) > 0:
            over = (x1[sl, None] < x2[None, :]) & (x1[None, :] < x2[sl, None])
            over &= (y1[sl, None] < y2[None, :]) & (y1[None, :] < y2[sl, None])
        else:
            over = np.ones((sl.stop - sl.start, n), dtype=bool)
        ii, jj = np.nonzero(over)
        ii += i
        keep = ii != jj
        ii, jj = ii[keep], jj[keep]
        iw = np.minimum(x2[ii], x2[jj]) - np.maximum(x1[ii], x1[jj])
        ih = np.minimum(y2[ii], y2[jj]) - np.maximum(y1[ii], y1[jj])
        inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
        smaller = np.minimum(areas[ii], areas[jj])
        with np.errstate(divide="ignore", invalid="ignore"):
            ios = np.where(smaller > 0, inter / np.where(smaller > 0, smaller, 1), 0.0).astype(np.float32)
        hit = ios >= thr
        rows.append(ii[hit])
        cols.append(jj[hit])
        total += int(hit.sum())
        if total > MERGE_PAIRS_MAX:
            return None
    row = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    partners = np.concatenate(cols) if cols else np.zeros(0, np.int64)
    return np.searchsorted(row, np.arange(n + 1)), partners


def _merge_class(
    boxes: np.ndarray, rank: np.ndarray, thr: float, groups: np.ndarray | None
) -> tuple[list[int], list[np.ndarray]]:
    """Greedy merging within one class: boxes (n, 4) float64, rank (n,) confidence rank (0 = best), groups (n,).

    Returns the seed positions (into ``boxes``) and their union boxes, in seed order.
    """
    n = len(boxes)
    alive = np.ones(n, dtype=bool)
    cols = np.ascontiguousarray(boxes.T)
    areas = box_area(boxes)
    group_of = groups.tolist() if groups is not None else None
    first = _first_round(boxes, areas, thr)
    # Rounds after the first: with thr > 0 a box can only join if it overlaps the union along x, so only boxes
    # whose x1 lies in (union x1 - widest box, union x2) are compared (a window of the x1-sorted order).
    windowed = bool(np.float32(thr) > 0)
    by_x = np.argsort(boxes[:, 0], kind="stable")
    x1s = boxes[by_x, 0]
    widest = float(np.max(boxes[:, 2] - boxes[:, 0], initial=0.0))

    def hits_of(union: np.ndarray) -> np.ndarray:
        """Alive boxes (ascending index) whose IoS with ``union`` is >= thr."""
        if windowed:
            lo = int(np.searchsorted(x1s, union[0] - widest, side="left"))
            hi = int(np.searchsorted(x1s, union[2], side="left"))
            near = by_x[lo:hi]
            near = near[alive[near]]
        else:
            near = np.flatnonzero(alive)
        return np.sort(near[_ios_with(union, cols[:, near], areas[near]) >= thr])

    seeds: list[int] = []
    unions: list[np.ndarray] = []
    for seed in np.argsort(rank, kind="stable").tolist():
        if not alive[seed]:
            continue
        alive[seed] = False
        union = boxes[seed].copy()
        seeds.append(seed)
        if first is not None:
            partners = first[1][first[0][seed] : first[0][seed + 1]]
            joined_idx = partners[alive[partners]]
        else:
            joined_idx = hits_of(union)
        members = {group_of[seed]} if group_of is not None else None
        while joined_idx.size:
            joined = joined_idx.tolist()  # ascending index: the order the rule visits them in
            if members is not None:
                fresh = []
                for j in joined:
                    if group_of[j] not in members:  # type: ignore[index]
                        members.add(group_of[j])  # type: ignore[index]
                        fresh.append(j)
                joined = fresh
            if not joined:
                break
            alive[joined] = False
            grown = np.concatenate([np.minimum(union[:2], boxes[joined, :2].min(0)),
                                    np.maximum(union[2:], boxes[joined, 2:].max(0))])  # fmt: skip
            if np.array_equal(grown, union):
                break  # the next round would compare the same union: the same hits, all taken or blocked
            union = grown
            joined_idx = hits_of(union)
        unions.append(union)
    return seeds, unions


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

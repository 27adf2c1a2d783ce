"""The vectorised ``greedy_merge`` against a straightforward reference (the original loop-per-box version).

Random box sets of several densities (isolated boxes, clusters of tile-cut pieces, identical boxes, degenerate
boxes), with and without a group key, several thresholds: the outputs must be identical — boxes, confidences,
classes, data and order.
"""

from __future__ import annotations

import numpy as np
import pytest

from detection.boxes import MERGE_PAIRS_MAX, box_area, box_ios, greedy_merge
from detection.detections import Detections


def reference_greedy_merge(dets: Detections, ios_threshold: float, group_key: str | None) -> Detections:
    """One seed at a time, one candidate at a time, exactly as the rule is written in the docstring."""
    if len(dets) < 2:
        return dets.sorted()
    groups = dets.data[group_key] if group_key is not None else None
    order = np.argsort(-dets.confidence, kind="stable")
    boxes = dets.xyxy.astype(np.float64)
    alive = np.ones(len(dets), dtype=bool)
    merged_boxes, seeds = [], []
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


def random_detections(seed: int, n: int, layout: str, classes: int, tiles: int) -> Detections:
    """n detections on a 4000×3000 frame; ``layout`` shapes how much they overlap."""
    rng = np.random.default_rng(seed)
    if layout == "sparse":
        xy = rng.uniform(0, 3900, (n, 2))
        wh = rng.uniform(5, 60, (n, 2))
    elif layout == "clustered":  # pieces of a few long objects cut by tile borders
        centres = rng.uniform(0, 3600, (max(1, n // 8), 2))
        xy = centres[rng.integers(0, len(centres), n)] + rng.normal(0, 40, (n, 2))
        wh = rng.uniform(10, 300, (n, 2))
    elif layout == "dense":
        xy = rng.uniform(0, 400, (n, 2))
        wh = rng.uniform(20, 200, (n, 2))
    else:  # "ties": repeated boxes and confidences, zero-area boxes
        base = rng.uniform(0, 500, (max(1, n // 4), 2))
        xy = base[rng.integers(0, len(base), n)]
        wh = rng.choice([0.0, 30.0, 30.0, 80.0], (n, 2))
    xyxy = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
    conf = rng.choice(np.linspace(0.3, 0.9, 7), n) if layout == "ties" else rng.uniform(0.25, 1.0, n)
    cls = rng.integers(0, classes, n)
    tile = rng.integers(-1, tiles, n).astype(np.int32)
    return Detections(xyxy, conf.astype(np.float32), cls, {"tile": tile, "k": np.arange(n)})


CASES = [
    # seed, n, layout, classes, tiles, threshold, group key
    (0, 0, "sparse", 1, 4, 0.1, None),
    (1, 1, "sparse", 1, 4, 0.1, "tile"),
    (2, 2, "dense", 1, 1, 0.1, None),
    (3, 40, "sparse", 3, 8, 0.1, "tile"),
    (4, 200, "clustered", 2, 12, 0.1, "tile"),
    (5, 200, "clustered", 2, 12, 0.1, None),
    (6, 300, "dense", 1, 48, 0.1, "tile"),
    (7, 300, "dense", 3, 2, 0.5, "tile"),
    (8, 300, "dense", 3, 2, 0.0, None),
    (9, 300, "dense", 2, 6, 1.0, "tile"),
    (10, 150, "ties", 2, 3, 0.1, "tile"),
    (11, 150, "ties", 1, 3, 0.3, None),
    (12, 600, "clustered", 4, 48, 0.1, "tile"),
]


@pytest.mark.parametrize(("seed", "n", "layout", "classes", "tiles", "thr", "key"), CASES)
def test_greedy_merge_equals_reference(seed, n, layout, classes, tiles, thr, key) -> None:
    dets = random_detections(seed, n, layout, classes, tiles)
    want = reference_greedy_merge(dets, thr, key)
    got = greedy_merge(dets, thr, group_key=key)
    assert len(got) == len(want)
    np.testing.assert_array_equal(got.xyxy, want.xyxy)
    np.testing.assert_array_equal(got.confidence, want.confidence)
    np.testing.assert_array_equal(got.class_id, want.class_id)
    assert set(got.data) == set(want.data)
    for name in want.data:
        np.testing.assert_array_equal(got.data[name], want.data[name])
    if n >= 40 and layout != "sparse" and thr < 1.0:
        assert len(got) < n  # the case exercises merging, not only pass-through


def test_greedy_merge_without_the_matrix(monkeypatch) -> None:
    """Beyond MERGE_PAIRS_MAX first-round pairs each seed's IoS is computed on the fly: same result."""
    import detection.boxes as boxes_mod

    dets = random_detections(21, 400, "clustered", 1, 12)
    want = reference_greedy_merge(dets, 0.1, "tile")
    monkeypatch.setattr(boxes_mod, "MERGE_PAIRS_MAX", 10)
    got = boxes_mod.greedy_merge(dets, 0.1, group_key="tile")
    np.testing.assert_array_equal(got.xyxy, want.xyxy)
    np.testing.assert_array_equal(got.data["k"], want.data["k"])
    assert MERGE_PAIRS_MAX >= 100_000


@pytest.mark.parametrize(
    ("seed", "n", "layout", "thr", "max_det"),
    [(30, 2500, "dense", 0.45, None), (31, 5000, "clustered", 0.45, 300), (32, 3000, "ties", 0.0, None),
     (33, 4000, "sparse", 0.7, None), (34, 2100, "dense", 1.0, 50)],
)  # fmt: skip
def test_nms_overlap_graph_equals_the_blocked_method(monkeypatch, seed, n, layout, thr, max_det) -> None:
    """Above NMS_SPARSE_MIN boxes NMS follows the overlap graph: the same kept indices, in the same order."""
    import detection.boxes as boxes_mod

    dets = random_detections(seed, n, layout, 3, 1)
    args = (dets.xyxy, dets.confidence, dets.class_id, thr, max_det)
    assert n > boxes_mod.NMS_SPARSE_MIN
    graph = boxes_mod.batched_nms(*args)
    monkeypatch.setattr(boxes_mod, "NMS_SPARSE_MIN", 10**9)
    blocked = boxes_mod.batched_nms(*args)
    np.testing.assert_array_equal(graph, blocked)
    assert len(graph) < n or layout == "sparse" or thr == 1.0  # dense cases exercise suppression
    monkeypatch.setattr(boxes_mod, "NMS_SPARSE_MIN", 10)
    monkeypatch.setattr(boxes_mod, "NMS_PAIRS_MAX", 5)  # too many pairs: the blocked method after all
    np.testing.assert_array_equal(boxes_mod.batched_nms(*args), blocked)


@pytest.mark.parametrize(
    ("seed", "n", "layout", "thr", "max_det"),
    [(40, 1500, "dense", 0.45, None), (41, 2000, "clustered", 0.45, 300), (42, 800, "ties", 0.0, None),
     (43, 1200, "sparse", 0.7, None), (44, 600, "dense", 1.0, 50), (45, 300, "ties", 0.5, 10)],
)  # fmt: skip
def test_nms_opencv_loop_equals_the_numpy_loop(seed, n, layout, thr, max_det) -> None:
    """Up to NMS_SPARSE_MIN boxes NMS runs in OpenCV: the same kept indices, in the same order, as numpy's loop."""
    import detection.boxes as boxes_mod

    dets = random_detections(seed, n, layout, 3, 1)
    dets = dets[box_area(dets.xyxy) > 0]  # repeated boxes and tied scores stay; empty boxes take the numpy loop
    n = len(dets)
    got = boxes_mod.batched_nms(dets.xyxy, dets.confidence, dets.class_id, thr, max_det)
    b = dets.xyxy.astype(np.float64) + dets.class_id[:, None] * (np.abs(dets.xyxy).max() * 2 + 1.0)
    order = np.argsort(-dets.confidence.astype(np.float64), kind="stable")
    limit = n if max_det is None else max_det
    want = order[boxes_mod._nms_blocked(b[order], box_area(b[order]), thr, limit)]
    assert n <= boxes_mod.NMS_SPARSE_MIN and np.all(box_area(b) > 0)  # the OpenCV path was taken
    np.testing.assert_array_equal(got, want)
    assert len(got) < n or layout == "sparse" or thr == 1.0


@pytest.mark.parametrize(("seed", "n", "max_det"), [(50, 2000, 20), (51, 1500, 300), (52, 900, 100), (53, 400, 1)])
def test_nms_max_det_stops_early_with_the_same_result(seed: int, n: int, max_det: int) -> None:
    """With max_det, NMS first resolves a score-sorted prefix: the kept boxes are the full run's first max_det."""
    import detection.boxes as boxes_mod

    dets = random_detections(seed, n, "dense", 2, 1)
    dets = dets[box_area(dets.xyxy) > 0]
    full = boxes_mod.batched_nms(dets.xyxy, dets.confidence, dets.class_id, 0.45)
    assert len(full) > max_det  # the limit is reached, so the prefix decides
    np.testing.assert_array_equal(
        boxes_mod.batched_nms(dets.xyxy, dets.confidence, dets.class_id, 0.45, max_det), full[:max_det]
    )

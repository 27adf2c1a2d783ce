"""detection.boxes: IoU / IoS / NMS / greedy merging, table-driven with hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from detection.boxes import (
    batched_nms,
    box_area,
    box_ios,
    box_iou,
    clip_boxes,
    greedy_merge,
    nms,
    scale_boxes,
    shift_boxes,
    xywh_to_xyxy,
)
from detection.detections import Detections

A = [0, 0, 10, 10]


@pytest.mark.parametrize(
    ("a", "b", "iou", "ios"),
    [
        (A, [0, 0, 10, 10], 1.0, 1.0),  # identical
        (A, [5, 0, 15, 10], 50 / 150, 0.5),  # half overlap
        (A, [10, 0, 20, 10], 0.0, 0.0),  # touching edges
        (A, [20, 20, 30, 30], 0.0, 0.0),  # disjoint
        (A, [2, 2, 4, 4], 4 / 100, 1.0),  # small box inside: IoS 1
        (A, [5, 5, 5, 8], 0.0, 0.0),  # degenerate (zero width) inside
        ([3, 3, 3, 3], [3, 3, 3, 3], 0.0, 0.0),  # two points: empty union
        (A, [8, 8, 4, 4], 0.0, 0.0),  # inverted box has no area
    ],
)
def test_iou_and_ios_pairs(a, b, iou, ios) -> None:
    assert box_iou(np.array([a]), np.array([b]))[0, 0] == pytest.approx(iou, abs=1e-6)
    assert box_ios(np.array([a]), np.array([b]))[0, 0] == pytest.approx(ios, abs=1e-6)
    # symmetric
    assert box_iou(np.array([b]), np.array([a]))[0, 0] == pytest.approx(iou, abs=1e-6)


@pytest.mark.parametrize(("n", "m"), [(0, 0), (0, 3), (2, 0), (3, 4)])
def test_pairwise_shapes(n: int, m: int) -> None:
    rng = np.random.default_rng(n * 10 + m)
    a = np.sort(rng.uniform(0, 50, (n, 4)).reshape(n, 2, 2), axis=1).transpose(0, 2, 1).reshape(n, 4)
    b = np.sort(rng.uniform(0, 50, (m, 4)).reshape(m, 2, 2), axis=1).transpose(0, 2, 1).reshape(m, 4)
    for fn in (box_iou, box_ios):
        out = fn(a, b)
        assert out.shape == (n, m) and out.dtype == np.float32
        assert np.all((out >= 0) & (out <= 1 + 1e-6))


def test_pairwise_rejects_bad_shape() -> None:
    with pytest.raises(ValueError, match=r"expected boxes of shape \(N, 4\), got \(2, 3\)"):
        box_iou(np.zeros((2, 3)), np.zeros((1, 4)))


def test_box_area_clips_inverted() -> None:
    assert box_area(np.array([[0, 0, 2, 3], [5, 5, 1, 1]])).tolist() == [6.0, 0.0]


@pytest.mark.parametrize(
    ("boxes", "scores", "thr", "keep"),
    [
        ([], [], 0.5, []),
        ([A], [0.9], 0.5, [0]),
        ([A, [1, 1, 11, 11], [50, 50, 60, 60]], [0.8, 0.9, 0.7], 0.5, [1, 2]),  # best of a pair survives
        ([A, [5, 0, 15, 10]], [0.9, 0.8], 1 / 3, [0, 1]),  # IoU exactly at the threshold is kept (strict >)
        ([A, [5, 0, 15, 10]], [0.9, 0.8], 0.3, [0]),
        ([A, A, A], [0.5, 0.5, 0.5], 0.5, [0]),  # ties: the earliest wins
        ([A, [0, 0, 0, 10]], [0.4, 0.9], 0.5, [1, 0]),  # degenerate box suppresses nothing
    ],
)
def test_nms_table(boxes, scores, thr, keep) -> None:
    assert nms(np.array(boxes, dtype=np.float32).reshape(-1, 4), np.array(scores), thr).tolist() == keep


@pytest.mark.parametrize(("n", "iou"), [(400, 0.45), (3000, 0.45), (3000, 0.7), (1500, 0.0)])
def test_nms_agrees_with_torchvision(n: int, iou: float) -> None:
    """Also beyond one block (NMS_BLOCK = 128): the blocked algorithm equals the plain greedy one."""
    torch = pytest.importorskip("torch")
    tv = pytest.importorskip("torchvision")
    rng = np.random.default_rng(n)
    xy = rng.uniform(0, 400, (n, 2))
    wh = rng.uniform(5, 60, (n, 2))
    boxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)
    scores = ((rng.permutation(n) + 1) / (n + 1)).astype(
        np.float32
    )  # distinct: torchvision's sort is not stable
    classes = rng.integers(0, 3, n)
    want = tv.ops.nms(torch.from_numpy(boxes), torch.from_numpy(scores), iou).numpy()
    assert nms(boxes, scores, iou).tolist() == want.tolist()
    assert nms(boxes, scores, iou, max_det=37).tolist() == want[:37].tolist()
    want_b = tv.ops.batched_nms(
        torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(classes), iou
    )
    assert batched_nms(boxes, scores, classes, iou).tolist() == want_b.numpy().tolist()


@pytest.mark.parametrize(
    ("classes", "keep"),
    [([0, 0], [0]), ([0, 1], [0, 1])],  # one class suppresses, two classes do not
)
def test_batched_nms_is_class_aware(classes, keep) -> None:
    boxes = np.array([A, [1, 1, 11, 11]], np.float32)
    assert batched_nms(boxes, np.array([0.9, 0.8]), np.array(classes), 0.5).tolist() == keep


def test_batched_nms_negative_coordinates_do_not_leak_across_classes() -> None:
    boxes = np.array([[-100, -100, -50, -50], [-100, -100, -50, -50]], np.float32)
    assert sorted(batched_nms(boxes, np.array([0.9, 0.8]), np.array([0, 1]), 0.5).tolist()) == [0, 1]


@pytest.mark.parametrize(("bad", "match"), [(-0.1, "0..1"), (1.5, "0..1")])
def test_nms_rejects_bad_threshold(bad: float, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        nms(np.array([A], np.float32), np.array([1.0]), bad)


def test_nms_rejects_length_mismatch() -> None:
    with pytest.raises(ValueError, match="2 boxes but 1 scores"):
        nms(np.array([A, A], np.float32), np.array([1.0]), 0.5)


def dets(rows: list[tuple[list[float], float, int]], **data) -> Detections:
    return Detections(
        np.array([r[0] for r in rows], np.float32).reshape(-1, 4),
        np.array([r[1] for r in rows], np.float32),
        np.array([r[2] for r in rows], np.int32),
        {k: np.asarray(v) for k, v in data.items()},
    )


@pytest.mark.parametrize(
    ("rows", "thr", "want"),
    [
        ([], 0.5, []),
        ([([0, 0, 10, 10], 0.9, 0)], 0.5, [([0, 0, 10, 10], 0.9, 0)]),
        # crack in three pieces along x, each overlapping its neighbour: one union box, max confidence
        (
            [([0, 0, 100, 4], 0.5, 1), ([80, 0, 180, 5], 0.9, 1), ([160, 1, 240, 6], 0.6, 1)],
            0.1,
            [([0, 0, 240, 6], 0.9, 1)],
        ),
        # the same pieces, but of different classes: nothing merges
        (
            [([0, 0, 100, 4], 0.5, 0), ([80, 0, 180, 5], 0.9, 1)],
            0.1,
            [([80, 0, 180, 5], 0.9, 1), ([0, 0, 100, 4], 0.5, 0)],
        ),
        # overlap below the threshold: kept apart (IoS = 20/100 = 0.2)
        (
            [([0, 0, 100, 10], 0.5, 0), ([80, 0, 180, 10], 0.9, 0)],
            0.25,
            [([80, 0, 180, 10], 0.9, 0), ([0, 0, 100, 10], 0.5, 0)],
        ),
        # a chain: C only overlaps the union of A and B, not A alone — the growing union picks it up
        (
            [([0, 0, 50, 10], 0.9, 0), ([40, 0, 90, 10], 0.8, 0), ([85, 0, 130, 10], 0.7, 0)],
            0.1,
            [([0, 0, 130, 10], 0.9, 0)],
        ),
    ],
)
def test_greedy_merge_table(rows, thr, want) -> None:
    out = greedy_merge(dets(rows), thr)
    assert out.xyxy.tolist() == [w[0] for w in want]
    assert out.confidence.tolist() == pytest.approx([w[1] for w in want])
    assert out.class_id.tolist() == [w[2] for w in want]


def test_greedy_merge_respects_groups() -> None:
    rows = [([0, 0, 100, 10], 0.9, 0), ([50, 0, 150, 10], 0.8, 0), ([120, 0, 200, 10], 0.7, 0)]
    same_tile = greedy_merge(dets(rows, tile=[0, 0, 1]), 0.1, group_key="tile")
    # boxes 0 and 1 come from the same tile, so they are never merged with each other; box 2 (tile 1) overlaps
    # only box 1, so it joins box 1's group.
    assert sorted(same_tile.xyxy.tolist()) == [[0, 0, 100, 10], [50, 0, 200, 10]]
    assert same_tile.data["tile"].tolist() == [0, 0]  # data of each group's best member
    assert len(greedy_merge(dets(rows), 0.1)) == 1


def test_clip_scale_shift_and_xywh() -> None:
    assert clip_boxes(np.array([[-5, -5, 50, 20]]), (10, 40)).tolist() == [[0, 0, 40, 10]]
    assert scale_boxes(np.array([[12, 24, 32, 44]]), (2.0, 4.0), (2, 4)).tolist() == [[5, 5, 15, 10]]
    assert shift_boxes(np.array([[0, 0, 1, 1]]), 10, 20).tolist() == [[10, 20, 11, 21]]
    assert xywh_to_xyxy(np.array([[5.0, 5.0, 4.0, 2.0]])).tolist() == [[3, 4, 7, 6]]

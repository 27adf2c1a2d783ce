"""detection.metrics: hand-computable cases, and agreement with ultralytics' own implementation."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from detection.metrics import (
    IOU_THRESHOLDS,
    MetricsAccumulator,
    average_precision,
    box_iou,
    confusion_matrix,
    match_detections,
)

NAMES = ["a", "b"]
BOX = [0.0, 0.0, 10.0, 10.0]
BOX2 = [20.0, 20.0, 30.0, 30.0]
FAR = [50.0, 50.0, 60.0, 60.0]
BG = 2  # background index in the (3, 3) confusion matrix


def image(preds: list[tuple[list[float], float, int]], gts: list[tuple[list[float], int]]) -> dict:
    """One image as the accumulator's arguments: preds (box, conf, cls), gts (box, cls)."""
    return {
        "pred_xyxy": np.array([p[0] for p in preds], dtype=np.float32).reshape(-1, 4),
        "pred_conf": np.array([p[1] for p in preds], dtype=np.float32),
        "pred_cls": np.array([p[2] for p in preds], dtype=np.int64),
        "gt_xyxy": np.array([g[0] for g in gts], dtype=np.float32).reshape(-1, 4),
        "gt_cls": np.array([g[1] for g in gts], dtype=np.int64),
    }


def cm(*cells: tuple[int, int, int]) -> list[list[int]]:
    out = np.zeros((3, 3), dtype=int)
    for r, c, v in cells:
        out[r, c] = v
    return out.tolist()


# Each case: images, expected map50, map50_95, class-"a" precision, recall, confusion cells [true, predicted].
CASES = {
    "perfect": (
        [image([(BOX, 0.9, 0), (BOX2, 0.8, 1)], [(BOX, 0), (BOX2, 1)])],
        1.0,
        1.0,
        1.0,
        1.0,
        cm((0, 0, 1), (1, 1, 1)),
    ),
    "one_fp_below_the_tp": (  # the FP comes after recall is already 1: AP unchanged, max-F1 threshold drops it
        [image([(BOX, 0.9, 0), (FAR, 0.8, 0)], [(BOX, 0)])],
        1.0,
        1.0,
        1.0,
        1.0,
        cm((0, 0, 1), (BG, 0, 1)),
    ),
    "one_fp_ranked_first": (  # precision 0 then 1/2: the envelope is 0.5 everywhere
        [image([(FAR, 0.95, 0), (BOX, 0.9, 0)], [(BOX, 0)])],
        0.5,
        0.5,
        0.5,
        1.0,
        cm((0, 0, 1), (BG, 0, 1)),
    ),
    "one_missed": (  # recall reaches 0.5: 51 of 101 recall points (0.00 .. 0.50) have precision 1
        [image([(BOX, 0.9, 0)], [(BOX, 0), (BOX2, 0)])],
        51 / 101,
        51 / 101,
        1.0,
        0.5,
        cm((0, 0, 1), (0, BG, 1)),
    ),
    "wrong_class": (  # class b has no ground truth: not averaged
        [image([(BOX, 0.9, 1)], [(BOX, 0)])],
        0.0,
        0.0,
        0.0,
        0.0,
        cm((0, 1, 1)),
    ),
    "empty_predictions": (
        [image([], [(BOX, 0)])],
        0.0,
        0.0,
        0.0,
        0.0,
        cm((0, BG, 1)),
    ),
    "empty_ground_truth": (
        [image([(BOX, 0.9, 0)], [])],
        None,
        None,
        None,
        None,
        cm((BG, 0, 1)),
    ),
    "iou_0.7_counts_at_5_of_10_thresholds": (  # [0,0,10,7] vs [0,0,10,10]: IoU exactly 0.7
        [image([([0.0, 0.0, 10.0, 7.0], 0.9, 0)], [(BOX, 0)])],
        1.0,
        0.5,
        1.0,
        1.0,
        cm((0, 0, 1)),
    ),
    "duplicate_is_a_false_positive": (  # two images; the lower-confidence duplicate is an FP after recall 1
        [image([(BOX, 0.9, 0), (BOX, 0.8, 0)], [(BOX, 0)]), image([(BOX2, 0.95, 0)], [(BOX2, 0)])],
        1.0,
        1.0,
        1.0,
        1.0,
        cm((0, 0, 2), (BG, 0, 1)),
    ),
    "low_confidence_prediction_is_not_in_the_confusion_matrix": (  # below cm_conf 0.25
        [image([(BOX, 0.1, 0)], [(BOX, 0)])],
        1.0,
        1.0,
        1.0,
        1.0,
        cm((0, BG, 1)),
    ),
}


@pytest.mark.parametrize(
    ("images", "map50", "map50_95", "p_a", "r_a", "matrix"), CASES.values(), ids=CASES.keys()
)
def test_hand_computable_cases(images, map50, map50_95, p_a, r_a, matrix) -> None:
    acc = MetricsAccumulator(NAMES)
    for im in images:
        acc.add(**im)
    m = acc.compute()
    assert m.images == len(images)
    if map50 is None:
        assert m.map50 is None and m.map50_95 is None
    else:
        assert m.map50 == pytest.approx(map50, abs=1e-12)
        assert m.map50_95 == pytest.approx(map50_95, abs=1e-12)
    a = m.per_class[0]
    assert a.precision == (None if p_a is None else pytest.approx(p_a))
    assert a.recall == (None if r_a is None else pytest.approx(r_a))
    assert m.confusion_matrix.tolist() == matrix


def test_class_without_ground_truth_is_reported_but_not_averaged() -> None:
    acc = MetricsAccumulator(NAMES)
    acc.add(**image([(BOX, 0.9, 0), (BOX2, 0.8, 1)], [(BOX, 0)]))
    m = acc.compute()
    b = m.per_class[1]
    assert (b.support, b.predictions, b.ap50, b.recall) == (0, 1, None, None)
    assert m.map50 == 1.0
    d = m.to_dict()
    assert d["per_class"]["b"]["ap50"] is None
    assert d["confusion_matrix"]["labels"] == ["a", "b", "background"]


def test_max_f1_threshold_is_a_prediction_confidence() -> None:
    # GT: 2 of class a. Preds: TP .9, FP .8, TP .7 → F1 at .9 = 2/3, at .8 = 1/2, at .7 = 0.8 → threshold 0.7.
    acc = MetricsAccumulator(NAMES)
    acc.add(**image([(BOX, 0.9, 0), (FAR, 0.8, 0), (BOX2, 0.7, 0)], [(BOX, 0), (BOX2, 0)]))
    m = acc.compute()
    assert m.conf_threshold == pytest.approx(0.7)
    assert (m.per_class[0].precision, m.per_class[0].recall) == (pytest.approx(2 / 3), pytest.approx(1.0))


@pytest.mark.parametrize(
    ("recall", "precision", "coco", "ultra"),
    [
        ([1.0], [1.0], 1.0, 0.995),  # perfect: ultralytics' envelope falls to 0 at recall 1
        ([0.5], [1.0], 51 / 101, None),
        ([], [], 0.0, 0.0),
        ([0.0, 1.0], [0.0, 0.5], 0.5, None),
    ],
)
def test_average_precision_methods(recall, precision, coco, ultra) -> None:
    assert average_precision(np.array(recall), np.array(precision), "coco") == pytest.approx(coco)
    if ultra is not None:
        assert average_precision(np.array(recall), np.array(precision), "ultralytics") == pytest.approx(ultra)


def test_average_precision_rejects_unknown_method() -> None:
    with pytest.raises(ValueError, match="coco"):
        average_precision(np.array([1.0]), np.array([1.0]), "voc")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pred_xyxy": np.zeros((2, 3))}, r"pred_xyxy: expected shape \(N, 4\)"),
        ({"pred_conf": np.zeros(3)}, "pred_conf: expected 2 rows"),
        ({"pred_cls": np.array([0, 5])}, r"pred_cls: class ids must be in 0\.\.1"),
        ({"gt_cls": np.array([-1])}, "gt_cls: class ids"),
    ],
)
def test_add_rejects_bad_input(kwargs, message) -> None:
    args = image([(BOX, 0.9, 0), (BOX2, 0.8, 1)], [(BOX, 0)])
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        MetricsAccumulator(NAMES).add(**args)


def test_box_iou_known_values() -> None:
    iou = box_iou(np.array([BOX]), np.array([BOX, [5.0, 0.0, 15.0, 10.0], FAR, [3.0, 3.0, 3.0, 9.0]]))
    np.testing.assert_allclose(iou, [[1.0, 50 / 150, 0.0, 0.0]])


def test_confusion_matrix_matches_across_classes_one_to_one() -> None:
    # Two predictions on one object: the better-overlapping one is matched (as class b), the other is background.
    m = confusion_matrix(
        np.array([BOX, [0.0, 0.0, 10.0, 8.0]]), np.array([0.5, 0.9]), np.array([1, 0]),
        np.array([BOX]), np.array([0]), num_classes=2,
    )  # fmt: skip
    assert m.tolist() == cm((0, 1, 1), (BG, 0, 1))


# --- agreement with ultralytics' implementation (same inputs → same numbers) -----------------------------------


def random_scene(rng: np.random.Generator, n_gt: int, n_pred: int, nc: int) -> dict:
    """Ground truth boxes and jittered predictions (some near a GT, some random), as one image."""
    xy = rng.uniform(0, 200, (n_gt, 2))
    gt = np.c_[xy, xy + rng.uniform(10, 60, (n_gt, 2))]
    gt_cls = rng.integers(0, nc, n_gt)
    src = rng.integers(0, max(n_gt, 1), n_pred)
    jitter = rng.normal(0, 4, (n_pred, 4))
    near = gt[src] + jitter if n_gt else rng.uniform(0, 200, (n_pred, 4))
    rand_xy = rng.uniform(0, 200, (n_pred, 2))
    rand = np.c_[rand_xy, rand_xy + rng.uniform(10, 60, (n_pred, 2))]
    use_near = rng.random(n_pred) < 0.7
    pred = np.where(use_near[:, None], near, rand)
    pred[:, 2:] = np.maximum(pred[:, 2:], pred[:, :2] + 1)
    pred_cls = np.where(rng.random(n_pred) < 0.85, gt_cls[src] if n_gt else 0, rng.integers(0, nc, n_pred))
    return {
        "pred_xyxy": pred,
        "pred_conf": rng.random(n_pred),
        "pred_cls": pred_cls,
        "gt_xyxy": gt,
        "gt_cls": gt_cls,
    }


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matching_equals_ultralytics_match_predictions(seed: int) -> None:
    torch = pytest.importorskip("torch")
    from ultralytics.engine.validator import BaseValidator

    rng = np.random.default_rng(seed)
    s = random_scene(rng, n_gt=12, n_pred=30, nc=3)
    order = np.argsort(-s["pred_conf"], kind="stable")  # ultralytics expects confidence order
    ours = match_detections(s["pred_xyxy"], s["pred_conf"], s["pred_cls"], s["gt_xyxy"], s["gt_cls"])[order]
    fake_validator = SimpleNamespace(iouv=torch.tensor(IOU_THRESHOLDS, dtype=torch.float32))
    iou = torch.from_numpy(box_iou(s["gt_xyxy"], s["pred_xyxy"][order])).float()
    theirs = BaseValidator.match_predictions(
        fake_validator, torch.from_numpy(s["pred_cls"][order]), torch.from_numpy(s["gt_cls"]), iou
    ).numpy()
    assert ours.any(), "the scene should produce some matches"
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_map_equals_ultralytics_ap_per_class(seed: int) -> None:
    pytest.importorskip("torch")
    from ultralytics.utils.metrics import ap_per_class

    rng = np.random.default_rng(seed)
    acc = MetricsAccumulator(["x", "y", "z"])
    stats = {"tp": [], "conf": [], "pred_cls": [], "target_cls": []}
    for _ in range(5):
        s = random_scene(rng, n_gt=int(rng.integers(0, 8)), n_pred=int(rng.integers(0, 20)), nc=3)
        acc.add(**s)
        stats["tp"].append(
            match_detections(s["pred_xyxy"], s["pred_conf"], s["pred_cls"], s["gt_xyxy"], s["gt_cls"])
        )
        stats["conf"].append(s["pred_conf"])
        stats["pred_cls"].append(s["pred_cls"])
        stats["target_cls"].append(s["gt_cls"])
    ours = acc.compute(method="ultralytics")
    out = ap_per_class(*(np.concatenate(v) for v in stats.values()))
    ap, classes = out[5], out[6]
    assert ours.map50 == pytest.approx(ap[:, 0].mean(), abs=1e-9)
    assert ours.map50_95 == pytest.approx(ap.mean(), abs=1e-9)
    for k, c in enumerate(classes):
        assert ours.per_class[c].ap50 == pytest.approx(ap[k, 0], abs=1e-9)
    # COCO sampling differs from ultralytics' trapezoid by at most the last half-step (0.005) plus interpolation.
    coco = acc.compute(method="coco")
    assert abs(coco.map50 - ours.map50) < 0.05

"""Detection metrics in pure numpy: mAP50, mAP50-95, per-class precision/recall, confusion matrix.

Definitions (the same as COCO's and ultralytics' so numbers are comparable):

* **Matching**, per image and per IoU threshold: predictions are visited in descending confidence; each takes the
  unclaimed ground-truth box *of its own class* with the highest IoU, and is a true positive if that IoU is at least
  the threshold (COCO's rule; ultralytics' ``BaseValidator.match_predictions`` does the same).
* **AP** per class from the cumulative precision/recall over all images, with the precision envelope
  (monotone non-increasing), sampled at 101 recall points:

  - ``method="coco"`` (default): the mean of the envelope at recall 0, 0.01, …, 1 (pycocotools). Perfect → 1.0.
  - ``method="ultralytics"``: linear interpolation of the envelope and the trapezoid rule over the same 101 points
    (``ultralytics.utils.metrics.compute_ap``). Perfect → 0.995, because the envelope drops to 0 at recall 1.

* **mAP** is the mean over classes that have ground truth (``support > 0``); classes with predictions but no
  ground truth are reported but not averaged (as in COCO and ultralytics). With no ground truth at all mAP is
  undefined and reported as ``None``.
* **Precision / recall** per class at IoU 0.5, at the one confidence threshold (over the predictions' distinct
  confidences) that maximises the mean F1 over the classes with ground truth. Exact step curves, no smoothing.
* **Confusion matrix** ``(nc + 1, nc + 1)``, ``matrix[true, predicted]``, index ``nc`` is background: predictions
  above ``cm_conf`` are matched to ground truth regardless of class, greedily by IoU (> ``cm_iou``), one to one;
  a missed object counts in column ``nc`` and a false detection in row ``nc``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

IOU_THRESHOLDS = np.round(np.linspace(0.5, 0.95, 10), 2)
"""The COCO IoU thresholds 0.50, 0.55, …, 0.95."""
RECALL_POINTS = np.linspace(0.0, 1.0, 101)
"""The 101 recall points AP is sampled at."""

APMethod = Literal["coco", "ultralytics"]


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of (N, 4) and (M, 4) xyxy boxes → (N, M) float64. Degenerate boxes have IoU 0."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area_a = np.clip(a[:, 2:] - a[:, :2], 0, None).prod(-1)
    area_b = np.clip(b[:, 2:] - b[:, :2], 0, None).prod(-1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _check(name: str, arr: Any, shape_tail: tuple[int, ...], n: int | None = None) -> np.ndarray:
    """``arr`` as an array of shape (N, *shape_tail); empty input becomes (0, *shape_tail)."""
    out = np.asarray(arr)
    if out.size == 0:
        out = out.reshape((0, *shape_tail))
    if out.ndim != 1 + len(shape_tail) or out.shape[1:] != shape_tail:
        expected = "(" + ", ".join(["N", *map(str, shape_tail)]) + (",)" if not shape_tail else ")")
        raise ValueError(f"{name}: expected shape {expected}, got {out.shape}")
    if n is not None and out.shape[0] != n:
        raise ValueError(f"{name}: expected {n} rows (one per box), got {out.shape[0]}")
    return out


def match_detections(
    pred_xyxy: np.ndarray,
    pred_conf: np.ndarray,
    pred_cls: np.ndarray,
    gt_xyxy: np.ndarray,
    gt_cls: np.ndarray,
    iou_thresholds: np.ndarray = IOU_THRESHOLDS,
) -> np.ndarray:
    """Which predictions of one image are true positives, at each IoU threshold.

    Args:
        pred_xyxy: (N, 4) predicted boxes. pred_conf: (N,) confidences. pred_cls: (N,) class ids.
        gt_xyxy: (M, 4) ground-truth boxes. gt_cls: (M,) class ids.
        iou_thresholds: (T,) thresholds.

    Returns:
        (N, T) bool, in the order the predictions were given.
    """
    pred_xyxy = _check("pred_xyxy", pred_xyxy, (4,))
    n = pred_xyxy.shape[0]
    pred_conf = _check("pred_conf", pred_conf, (), n)
    pred_cls = _check("pred_cls", pred_cls, (), n).astype(np.int64)
    gt_xyxy = _check("gt_xyxy", gt_xyxy, (4,))
    gt_cls = _check("gt_cls", gt_cls, (), gt_xyxy.shape[0]).astype(np.int64)
    thresholds = np.asarray(iou_thresholds, dtype=np.float64).reshape(-1)
    correct = np.zeros((n, thresholds.size), dtype=bool)
    if n == 0 or gt_xyxy.shape[0] == 0:
        return correct
    iou = box_iou(gt_xyxy, pred_xyxy) * (gt_cls[:, None] == pred_cls[None, :])  # (M, N), other classes zeroed
    claimed = np.zeros((gt_xyxy.shape[0], thresholds.size), dtype=bool)
    cols = np.arange(thresholds.size)
    for j in np.argsort(-pred_conf, kind="stable"):
        available = np.where(claimed, 0.0, iou[:, j, None])  # (M, T)
        k = available.argmax(0)  # best unclaimed target per threshold
        hit = available[k, cols] >= thresholds
        correct[j] = hit
        claimed[k[hit], cols[hit]] = True
    return correct


def average_precision(recall: np.ndarray, precision: np.ndarray, method: APMethod = "coco") -> float:
    """AP from cumulative (K,) recall and precision (detections in descending confidence). See module docstring."""
    recall = np.asarray(recall, dtype=np.float64)
    precision = np.asarray(precision, dtype=np.float64)
    if method not in ("coco", "ultralytics"):
        raise ValueError(f"AP method must be 'coco' or 'ultralytics', got {method!r}")
    if recall.size == 0:  # no predictions (ultralytics' ap_per_class also gives 0 here)
        return 0.0
    if method == "coco":
        return float(precision_envelope(recall, precision).mean())
    mrec = np.concatenate(([0.0], recall, [recall[-1]], [1.0]))  # ultralytics' compute_ap
    mpre = np.concatenate(([1.0], precision, [0.0], [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    y = np.interp(RECALL_POINTS, mrec, mpre)
    return float(np.sum((y[1:] + y[:-1]) * np.diff(RECALL_POINTS)) / 2.0)  # trapezoid rule


def precision_envelope(recall: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """The (101,) precision envelope at :data:`RECALL_POINTS` (0 beyond the highest recall reached): the PR curve."""
    recall = np.asarray(recall, dtype=np.float64)
    if recall.size == 0:
        return np.zeros_like(RECALL_POINTS)
    envelope = np.maximum.accumulate(np.asarray(precision, dtype=np.float64)[::-1])[::-1]
    idx = np.searchsorted(recall, RECALL_POINTS, side="left")
    return np.where(idx < envelope.size, envelope[np.minimum(idx, envelope.size - 1)], 0.0)


@dataclass(frozen=True)
class ClassMetrics:
    """Metrics of one class. AP and recall are ``None`` when the class has no ground truth."""

    name: str
    support: int
    """Ground-truth instances."""
    predictions: int
    precision: float | None
    recall: float | None
    ap50: float | None
    ap50_95: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "precision": self.precision,
            "recall": self.recall,
            "ap50": self.ap50,
            "ap50_95": self.ap50_95,
            "support": self.support,
            "predictions": self.predictions,
        }


@dataclass(frozen=True)
class DetectionMetrics:
    """The result of :meth:`MetricsAccumulator.compute`."""

    names: list[str]
    images: int
    map50: float | None
    map50_95: float | None
    precision: float | None
    """Mean over classes with ground truth, at :attr:`conf_threshold`."""
    recall: float | None
    per_class: list[ClassMetrics]
    confusion_matrix: np.ndarray
    """(nc + 1, nc + 1) int64, ``[true, predicted]``, last index background."""
    conf_threshold: float | None
    """The confidence threshold that maximises mean F1 (``None`` without predictions or ground truth)."""
    pr_curves: np.ndarray
    """(nc, 101) precision envelope at IoU 0.5 over :data:`RECALL_POINTS` (zeros for classes without data)."""
    ap_method: str
    cm_conf: float
    cm_iou: float
    ap_matrix: np.ndarray = field(repr=False)
    """(nc, T) AP per class and IoU threshold (NaN where the class has no ground truth)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``None`` where undefined)."""
        return {
            "map50": self.map50,
            "map50_95": self.map50_95,
            "precision": self.precision,
            "recall": self.recall,
            "images": self.images,
            "conf_threshold": self.conf_threshold,
            "ap_method": self.ap_method,
            "per_class": {c.name: c.to_dict() for c in self.per_class},
            "confusion_matrix": {
                "labels": [*self.names, "background"],
                "rows": "true",
                "columns": "predicted",
                "conf": self.cm_conf,
                "iou": self.cm_iou,
                "matrix": self.confusion_matrix.tolist(),
            },
        }


class MetricsAccumulator:
    """Collects per-image predictions and ground truth, then computes :class:`DetectionMetrics`.

    Example::

        acc = MetricsAccumulator(names=["a", "b"])
        for image in images:
            acc.add(pred_xyxy, pred_conf, pred_cls, gt_xyxy, gt_cls)
        metrics = acc.compute()
    """

    def __init__(
        self,
        names: Sequence[str],
        iou_thresholds: np.ndarray = IOU_THRESHOLDS,
        cm_conf: float = 0.25,
        cm_iou: float = 0.45,
    ) -> None:
        if not names:
            raise ValueError("names: at least one class name is needed")
        self.names = list(names)
        self.iou_thresholds = np.asarray(iou_thresholds, dtype=np.float64).reshape(-1)
        if self.iou_thresholds.size == 0 or self.iou_thresholds[0] != 0.5:
            raise ValueError(
                f"iou_thresholds must start at 0.5 (mAP50 is read from it), got {iou_thresholds}"
            )
        self.cm_conf = float(cm_conf)
        self.cm_iou = float(cm_iou)
        nc = len(self.names)
        self._tp: list[np.ndarray] = []
        self._conf: list[np.ndarray] = []
        self._pred_cls: list[np.ndarray] = []
        self._gt_cls: list[np.ndarray] = []
        self._cm = np.zeros((nc + 1, nc + 1), dtype=np.int64)
        self.images = 0

    def add(
        self,
        pred_xyxy: np.ndarray,
        pred_conf: np.ndarray,
        pred_cls: np.ndarray,
        gt_xyxy: np.ndarray,
        gt_cls: np.ndarray,
    ) -> None:
        """Add one image: (N, 4) / (N,) / (N,) predictions and (M, 4) / (M,) ground truth, same pixel frame.

        Raises:
            ValueError: wrong shapes, or a class id outside ``0..nc-1``.
        """
        nc = len(self.names)
        pred_xyxy = _check("pred_xyxy", pred_xyxy, (4,))
        n = pred_xyxy.shape[0]
        pred_conf = _check("pred_conf", pred_conf, (), n).astype(np.float64)
        pred_cls = _check("pred_cls", pred_cls, (), n).astype(np.int64)
        gt_xyxy = _check("gt_xyxy", gt_xyxy, (4,))
        gt_cls = _check("gt_cls", gt_cls, (), gt_xyxy.shape[0]).astype(np.int64)
        for label, cls in (("pred_cls", pred_cls), ("gt_cls", gt_cls)):
            if cls.size and (cls.min() < 0 or cls.max() >= nc):
                raise ValueError(
                    f"{label}: class ids must be in 0..{nc - 1}, got {sorted(set(cls.tolist()))}"
                )
        self._tp.append(
            match_detections(pred_xyxy, pred_conf, pred_cls, gt_xyxy, gt_cls, self.iou_thresholds)
        )
        self._conf.append(pred_conf)
        self._pred_cls.append(pred_cls)
        self._gt_cls.append(gt_cls)
        self._cm += confusion_matrix(
            pred_xyxy, pred_conf, pred_cls, gt_xyxy, gt_cls, nc, conf=self.cm_conf, iou=self.cm_iou
        )
        self.images += 1

    def compute(self, method: APMethod = "coco") -> DetectionMetrics:
        """All metrics over the images added so far."""
        nc, t = len(self.names), self.iou_thresholds.size
        tp = np.concatenate(self._tp) if self._tp else np.zeros((0, t), dtype=bool)
        conf = np.concatenate(self._conf) if self._conf else np.zeros(0)
        pred_cls = np.concatenate(self._pred_cls) if self._pred_cls else np.zeros(0, dtype=np.int64)
        gt_cls = np.concatenate(self._gt_cls) if self._gt_cls else np.zeros(0, dtype=np.int64)
        order = np.argsort(-conf, kind="stable")
        tp, conf, pred_cls = tp[order], conf[order], pred_cls[order]
        support = np.bincount(gt_cls, minlength=nc)
        n_pred = np.bincount(pred_cls, minlength=nc)

        ap = np.full((nc, t), np.nan)
        curves = np.zeros((nc, RECALL_POINTS.size))
        for c in range(nc):
            if support[c] == 0:
                continue
            sel = pred_cls == c
            tpc = tp[sel].cumsum(0).astype(np.float64)  # (K, T)
            fpc = (~tp[sel]).cumsum(0).astype(np.float64)
            recall = tpc / support[c]
            precision = tpc / np.maximum(tpc + fpc, 1.0)
            for j in range(t):
                ap[c, j] = average_precision(recall[:, j], precision[:, j], method)
            curves[c] = precision_envelope(recall[:, 0], precision[:, 0])

        p, r, best_conf = _max_f1_precision_recall(tp[:, 0], conf, pred_cls, support)
        has_gt = support > 0
        per_class = []
        for c, name in enumerate(self.names):
            per_class.append(
                ClassMetrics(
                    name=name,
                    support=int(support[c]),
                    predictions=int(n_pred[c]),
                    precision=float(p[c]) if has_gt[c] else None,
                    recall=float(r[c]) if has_gt[c] else None,
                    ap50=float(ap[c, 0]) if has_gt[c] else None,
                    ap50_95=float(ap[c].mean()) if has_gt[c] else None,
                )
            )
        any_gt = bool(has_gt.any())
        return DetectionMetrics(
            names=list(self.names),
            images=self.images,
            map50=float(ap[has_gt, 0].mean()) if any_gt else None,
            map50_95=float(ap[has_gt].mean()) if any_gt else None,
            precision=float(p[has_gt].mean()) if any_gt else None,
            recall=float(r[has_gt].mean()) if any_gt else None,
            per_class=per_class,
            confusion_matrix=self._cm.copy(),
            conf_threshold=best_conf,
            pr_curves=curves,
            ap_method=method,
            cm_conf=self.cm_conf,
            cm_iou=self.cm_iou,
            ap_matrix=ap,
        )


def _max_f1_precision_recall(
    tp50: np.ndarray, conf: np.ndarray, pred_cls: np.ndarray, support: np.ndarray
) -> tuple[np.ndarray, np.ndarray, float | None]:
    """Per-class precision and recall at the confidence threshold maximising mean F1 over classes with support.

    Args:
        tp50: (N,) bool, true positive at IoU 0.5. conf: (N,) sorted descending. pred_cls: (N,). support: (nc,).

    Returns:
        (nc,) precision, (nc,) recall, the chosen threshold (None when there is nothing to choose).
    """
    nc = support.size
    has_gt = support > 0
    if conf.size == 0 or not has_gt.any():
        return np.zeros(nc), np.zeros(nc), None
    onehot = pred_cls[:, None] == np.arange(nc)[None, :]  # (N, nc)
    tpc = np.cumsum(onehot & tp50[:, None], axis=0)  # (N, nc) TPs among the first i+1 predictions
    npc = np.cumsum(onehot, axis=0)
    # Threshold candidates: each distinct confidence; "conf >= t" keeps everything up to its last tie.
    last = np.flatnonzero(np.r_[conf[1:] != conf[:-1], True])
    tpc, npc = tpc[last].astype(np.float64), npc[last].astype(np.float64)  # (K, nc)
    precision = np.divide(tpc, npc, out=np.zeros_like(tpc), where=npc > 0)
    recall = tpc / np.maximum(support, 1)[None, :]
    f1 = np.divide(
        2 * precision * recall, precision + recall, out=np.zeros_like(tpc), where=precision + recall > 0
    )
    best = int(f1[:, has_gt].mean(1).argmax())  # first maximum: the highest such threshold
    return precision[best], recall[best], float(conf[last[best]])


def confusion_matrix(
    pred_xyxy: np.ndarray,
    pred_conf: np.ndarray,
    pred_cls: np.ndarray,
    gt_xyxy: np.ndarray,
    gt_cls: np.ndarray,
    num_classes: int,
    conf: float = 0.25,
    iou: float = 0.45,
) -> np.ndarray:
    """Confusion matrix of one image → (nc + 1, nc + 1) int64, ``[true, predicted]``, last index background.

    Predictions with confidence below ``conf`` are ignored. Pairs with IoU > ``iou`` are matched regardless of
    class, highest IoU first, one to one.
    """
    pred_xyxy = np.asarray(pred_xyxy, dtype=np.float64).reshape(-1, 4)
    keep = np.asarray(pred_conf, dtype=np.float64).reshape(-1) >= conf
    pred_xyxy = pred_xyxy[keep]
    pred_cls = np.asarray(pred_cls, dtype=np.int64).reshape(-1)[keep]
    gt_xyxy = np.asarray(gt_xyxy, dtype=np.float64).reshape(-1, 4)
    gt_cls = np.asarray(gt_cls, dtype=np.int64).reshape(-1)
    bg = num_classes
    matrix = np.zeros((num_classes + 1, num_classes + 1), dtype=np.int64)
    gt_used = np.zeros(gt_cls.size, dtype=bool)
    pred_used = np.zeros(pred_cls.size, dtype=bool)
    if gt_cls.size and pred_cls.size:
        ious = box_iou(gt_xyxy, pred_xyxy)
        gi, pj = np.nonzero(ious > iou)
        for k in np.argsort(-ious[gi, pj], kind="stable"):
            g, p = gi[k], pj[k]
            if gt_used[g] or pred_used[p]:
                continue
            gt_used[g] = pred_used[p] = True
            matrix[gt_cls[g], pred_cls[p]] += 1
    np.add.at(matrix, (gt_cls[~gt_used], bg), 1)
    np.add.at(matrix, (bg, pred_cls[~pred_used]), 1)
    return matrix

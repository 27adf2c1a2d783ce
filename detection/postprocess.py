"""Decode raw YOLO outputs into :class:`Detections` (in model-input pixels), vectorised numpy.

Two output layouts are understood, detected from the array shape and the model's metadata:

- **raw** (YOLOv8 / YOLO11 heads, ``nms=False`` exports): (B, 4 + nc, N) — rows ``cx, cy, w, h`` then one
  sigmoid score per class for each of N anchors. Decoded as ultralytics does: best class per anchor, keep
  ``score > conf``, ``cxcywh → xyxy``, at most 30 000 candidates by score, class-aware NMS, at most ``max_det``.
  (B, N, 4 + nc) is accepted too (transposed exports).
- **end-to-end** (YOLO26, or ``nms=True`` exports): (B, max_det, 6) rows ``x1, y1, x2, y2, score, class`` —
  already suppressed, only ``score > conf`` is applied.
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np

from detection.boxes import batched_nms, xywh_to_xyxy
from detection.detections import Detections

MAX_NMS_CANDIDATES = 30_000
"""Candidates kept (best scores first) before NMS, as ultralytics does."""


class OutputLayout(StrEnum):
    RAW = "raw"
    """(B, 4 + nc, N)"""
    RAW_TRANSPOSED = "raw-transposed"
    """(B, N, 4 + nc)"""
    END2END = "end2end"
    """(B, max_det, 6)"""


class OutputFormatError(ValueError):
    """The model's output does not have a layout this decoder knows; the message shows the shape."""


def detect_layout(shape: tuple[int, ...], nc: int | None = None, end2end: bool | None = None) -> OutputLayout:
    """Which layout an output of ``shape`` (B, ·, ·) has, given the class count and the ``end2end`` metadata flag.

    Raises:
        OutputFormatError: not 3-D, or no layout fits.
    """
    if len(shape) != 3:
        raise OutputFormatError(f"expected a (B, C, N) detection output, got shape {tuple(shape)}")
    _, a, b = shape
    if end2end:
        if b < 6:
            raise OutputFormatError(f"end2end model output must be (B, max_det, 6), got {tuple(shape)}")
        return OutputLayout.END2END
    if nc is not None and a == 4 + nc:
        return OutputLayout.RAW
    if b == 6:  # ultralytics' own rule: a last dimension of 6 is an end-to-end output
        return OutputLayout.END2END
    if nc is not None:
        if b == 4 + nc:
            return OutputLayout.RAW_TRANSPOSED
        raise OutputFormatError(
            f"output shape {tuple(shape)} fits neither (B, 4+{nc}, N) nor (B, max_det, 6)"
        )
    if a > 4 and b > a:
        return OutputLayout.RAW
    raise OutputFormatError(f"cannot tell the layout of output shape {tuple(shape)} without the class count")


def decode_raw(
    pred: np.ndarray, conf: float, iou: float, max_det: int = 300, agnostic: bool = False
) -> Detections:
    """One image's raw head output (4 + nc, N) → detections in input pixels (≤ ``max_det``, best first)."""
    if pred.ndim != 2 or pred.shape[0] < 5:
        raise OutputFormatError(f"decode_raw: expected (4 + nc, N), got {pred.shape}")
    cls_scores = pred[4:]
    scores = cls_scores.max(axis=0)  # the best class of every anchor is only needed for the few kept ones
    keep = np.flatnonzero(scores > conf)
    if not keep.size:
        return Detections.empty()
    if keep.size > MAX_NMS_CANDIDATES:
        keep = keep[np.argsort(-scores[keep], kind="stable")[:MAX_NMS_CANDIDATES]]
    boxes = xywh_to_xyxy(pred[:4, keep].T.astype(np.float32))
    scores, class_id = scores[keep], cls_scores[:, keep].argmax(axis=0)
    ids = np.zeros_like(class_id) if agnostic else class_id
    kept = batched_nms(boxes, scores, ids, iou, max_det)
    return Detections(boxes[kept], scores[kept], class_id[kept].astype(np.int32))


def decode_end2end(pred: np.ndarray, conf: float, max_det: int = 300) -> Detections:
    """One image's end-to-end output (max_det, 6) → detections with ``score > conf`` (in the model's order)."""
    if pred.ndim != 2 or pred.shape[1] < 6:
        raise OutputFormatError(f"decode_end2end: expected (max_det, 6), got {pred.shape}")
    keep = np.flatnonzero(pred[:, 4] > conf)[:max_det]
    rows = pred[keep]
    return Detections(rows[:, :4], rows[:, 4], np.rint(rows[:, 5]).astype(np.int32))


def decode(
    output: np.ndarray,
    conf: float = 0.25,
    iou: float = 0.45,
    max_det: int = 300,
    nc: int | None = None,
    end2end: bool | None = None,
    agnostic: bool = False,
) -> list[Detections]:
    """A batch's raw output → one :class:`Detections` per image, boxes in model-input pixels.

    Args:
        output: (B, 4 + nc, N), (B, N, 4 + nc) or (B, max_det, 6) float array.
        conf: keep scores strictly above this.
        iou: NMS IoU threshold (raw layouts only).
        max_det: at most this many detections per image.
        nc: number of classes (from the model's ``names``); helps to tell layouts apart.
        end2end: the model's ``end2end`` metadata flag, when known.
        agnostic: class-agnostic NMS.

    Raises:
        OutputFormatError: an output layout this decoder does not know.
        ValueError: thresholds outside 0..1.
    """
    if not 0.0 <= conf <= 1.0 or not 0.0 <= iou <= 1.0:
        raise ValueError(f"decode: conf and iou must be in 0..1, got conf={conf}, iou={iou}")
    output = np.asarray(output)
    if output.ndim == 2:
        output = output[None]
    layout = detect_layout(output.shape, nc, end2end)
    if layout is OutputLayout.END2END:
        return [decode_end2end(p, conf, max_det) for p in output]
    if layout is OutputLayout.RAW_TRANSPOSED:
        output = output.transpose(0, 2, 1)
    return [decode_raw(p, conf, iou, max_det, agnostic) for p in output]

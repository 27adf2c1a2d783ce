"""detection.postprocess: layouts, raw decoding (against ultralytics' own NMS), end-to-end outputs."""

from __future__ import annotations

import numpy as np
import pytest

from detection.postprocess import OutputFormatError, OutputLayout, decode, detect_layout


@pytest.mark.parametrize(
    ("shape", "nc", "end2end", "want"),
    [
        ((1, 10, 2100), 6, None, OutputLayout.RAW),
        ((4, 10, 2100), 6, False, OutputLayout.RAW),
        ((1, 2100, 10), 6, None, OutputLayout.RAW_TRANSPOSED),
        ((1, 300, 6), 6, None, OutputLayout.END2END),
        (
            (1, 300, 6),
            6,
            False,
            OutputLayout.END2END,
        ),  # ultralytics writes end2end=False for nms=True exports
        ((1, 300, 6), None, True, OutputLayout.END2END),
        ((1, 84, 8400), None, None, OutputLayout.RAW),
        ((1, 300, 6), None, None, OutputLayout.END2END),
    ],
)
def test_detect_layout(shape, nc, end2end, want) -> None:
    assert detect_layout(shape, nc, end2end) is want


@pytest.mark.parametrize(
    ("shape", "nc", "end2end", "match"),
    [
        ((10, 2100), 6, None, "expected a"),
        ((1, 12, 2100), 6, None, "fits neither"),
        ((1, 300, 4), 6, True, "end2end model output"),
        ((1, 4, 4), None, None, "cannot tell"),
    ],
)
def test_detect_layout_errors(shape, nc, end2end, match) -> None:
    with pytest.raises(OutputFormatError, match=match):
        detect_layout(shape, nc, end2end)


def raw_output(rows: list[tuple[list[float], list[float]]]) -> np.ndarray:
    """Anchors given as (cxcywh, per-class scores) → (1, 4 + nc, N)."""
    return np.array([[*b, *s] for b, s in rows], np.float32).T[None]


def test_decode_raw_hand_computed() -> None:
    out = raw_output(
        [
            ([50, 50, 20, 20], [0.9, 0.1]),  # kept
            ([51, 51, 20, 20], [0.8, 0.2]),  # suppressed by the first (same class, IoU high)
            ([51, 51, 20, 20], [0.1, 0.7]),  # same place, other class: kept
            ([10, 10, 4, 4], [0.2, 0.1]),  # below conf
            ([200, 100, 10, 30], [0.3, 0.6]),  # kept, class 1
        ]
    )
    (d,) = decode(out, conf=0.25, iou=0.45, nc=2)
    assert d.class_id.tolist() == [0, 1, 1]
    assert d.confidence.tolist() == pytest.approx([0.9, 0.7, 0.6])
    assert d.xyxy.tolist() == [[40, 40, 60, 60], [41, 41, 61, 61], [195, 85, 205, 115]]
    (a,) = decode(out, conf=0.25, iou=0.45, nc=2, agnostic=True)
    assert a.class_id.tolist() == [0, 1]
    (m,) = decode(out, conf=0.25, iou=0.45, nc=2, max_det=1)
    assert len(m) == 1
    three = np.concatenate([out, np.zeros((1, 1, out.shape[2]), np.float32)], axis=1)  # (1, 4 + 3, N)
    (t,) = decode(three.transpose(0, 2, 1), conf=0.25, iou=0.45, nc=3)  # (1, N, 4 + 3): transposed export
    assert t.xyxy.tolist() == d.xyxy.tolist()


def test_decode_conf_is_strict_and_empty_batch() -> None:
    out = raw_output([([5, 5, 2, 2], [0.5, 0.0])])
    assert len(decode(out, conf=0.5, nc=2)[0]) == 0 and len(decode(out, conf=0.49, nc=2)[0]) == 1
    assert [len(d) for d in decode(np.zeros((3, 8, 50), np.float32), conf=0.1)] == [0, 0, 0]


def test_decode_end2end() -> None:
    out = np.zeros((2, 5, 6), np.float32)
    out[0, 0] = [1, 2, 3, 4, 0.9, 2]
    out[0, 1] = [5, 6, 7, 8, 0.25, 0]  # at the threshold: dropped (strict >)
    out[1, 0] = [1, 1, 2, 2, 0.2, 1]
    first, second = decode(out, conf=0.25, end2end=True)
    assert first.xyxy.tolist() == [[1, 2, 3, 4]] and first.class_id.tolist() == [2]
    assert len(second) == 0
    assert len(decode(out, conf=0.1, max_det=1)[0]) == 1


@pytest.mark.parametrize(("conf", "iou"), [(-0.1, 0.5), (0.5, 1.2)])
def test_decode_rejects_bad_thresholds(conf, iou) -> None:
    with pytest.raises(ValueError, match=r"must be in 0\.\.1"):
        decode(np.zeros((1, 8, 10), np.float32), conf=conf, iou=iou)


@pytest.mark.parametrize(
    ("nc", "conf", "iou", "seed"), [(1, 0.3, 0.45, 0), (6, 0.25, 0.45, 1), (80, 0.05, 0.7, 2)]
)
def test_decode_matches_ultralytics_nms(nc, conf, iou, seed) -> None:
    """Random raw outputs through our decoder and ultralytics' non_max_suppression give the same detections."""
    torch = pytest.importorskip("torch")
    from ultralytics.utils.nms import non_max_suppression

    rng = np.random.default_rng(seed)
    n = 2100
    xy = rng.uniform(0, 320, (2, n))
    wh = rng.uniform(4, 80, (2, n))
    scores = rng.beta(0.5, 3, (nc, n))
    out = np.concatenate([xy, wh, scores]).astype(np.float32)[None]
    out = np.concatenate([out, out[:, :, ::-1]])  # batch of two different images
    ours = decode(out, conf=conf, iou=iou, max_det=300, nc=nc)
    theirs = non_max_suppression(torch.from_numpy(out.copy()), conf, iou, max_det=300)
    for d, t in zip(ours, theirs, strict=True):
        t = t.numpy()
        assert len(d) == len(t) > 0
        np.testing.assert_allclose(d.xyxy, t[:, :4], atol=1e-3)
        np.testing.assert_allclose(d.confidence, t[:, 4], atol=1e-6)
        assert d.class_id.tolist() == t[:, 5].astype(int).tolist()

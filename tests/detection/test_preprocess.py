"""detection.preprocess: letterbox geometry and pixels identical to ultralytics, round trips on non-square frames."""

from __future__ import annotations

import numpy as np
import pytest

from detection import radiometry
from detection.preprocess import (
    letterbox,
    letterbox_boxes,
    letterbox_params,
    thermal_to_bgr,
    to_model_image,
    to_tensor,
    unletterbox_boxes,
)

FRAMES = [(3000, 4000), (512, 640), (1080, 1920), (4000, 3000), (300, 301), (10, 700)]  # (h, w)
TARGETS = [(640, 640), (384, 640), (640, 384)]


def frame(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (max(2, h // 50), max(2, w // 50), 3), dtype=np.uint8)
    import cv2

    return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)


@pytest.mark.parametrize("shape", FRAMES)
@pytest.mark.parametrize("target", TARGETS)
def test_letterbox_is_bit_identical_to_ultralytics(shape, target) -> None:
    from ultralytics.data.augment import LetterBox

    img = frame(*shape)
    ours, info = letterbox(img, target)
    theirs = LetterBox(target, auto=False, stride=32)(image=img)
    assert ours.shape == (*target, 3) == theirs.shape
    np.testing.assert_array_equal(ours, theirs)
    assert info.input_shape == target and info.orig_shape == shape


@pytest.mark.parametrize("shape", [(3000, 4000), (1080, 1920), (4000, 3000)])
def test_letterbox_auto_pads_to_stride_like_ultralytics(shape) -> None:
    from ultralytics.data.augment import LetterBox

    img = frame(*shape)
    ours, info = letterbox(img, (640, 640), stride=32, auto=True)
    theirs = LetterBox((640, 640), auto=True, stride=32)(image=img)
    np.testing.assert_array_equal(ours, theirs)
    assert info.input_shape[0] % 32 == 0 and info.input_shape[1] % 32 == 0


@pytest.mark.parametrize("shape", FRAMES)
@pytest.mark.parametrize("target", TARGETS)
def test_boxes_round_trip_and_land_on_the_content(shape, target) -> None:
    """A bright rectangle drawn in the frame is found where letterbox_boxes says, and maps back to itself."""
    h, w = shape
    box = np.array([[w * 0.2, h * 0.3, w * 0.7, h * 0.9]]).round()
    img = np.zeros((h, w, 3), np.uint8)
    x1, y1, x2, y2 = box[0].astype(int)
    img[y1:y2, x1:x2] = 255
    out, info = letterbox(img, target, color=0)
    fwd = letterbox_boxes(box, info)
    ys, xs = np.nonzero(out[..., 0] > 127)
    measured = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float32)
    np.testing.assert_allclose(measured, fwd, atol=1.0)  # forward mapping matches the pixels (no h/w swap)
    np.testing.assert_allclose(unletterbox_boxes(fwd, info), box, atol=1e-2)  # exact inverse
    back = unletterbox_boxes(measured, info)  # content found in the input maps back within one input pixel
    assert np.abs(back - box).max() <= 1.0 / info.ratio + 1e-3


@pytest.mark.parametrize(
    ("shape", "target", "resized", "pad"),
    [
        ((3000, 4000), (640, 640), (480, 640), (0, 80)),
        ((3000, 4000), (384, 640), (384, 512), (64, 0)),
        ((4000, 3000), (384, 640), (384, 288), (176, 0)),
        ((1080, 1920), (640, 640), (360, 640), (0, 140)),
        ((512, 640), (384, 640), (384, 480), (80, 0)),
    ],
)
def test_letterbox_params_hand_computed(shape, target, resized, pad) -> None:
    info = letterbox_params(shape, target)
    assert info.resized_shape == resized and (info.pad_x, info.pad_y) == pad and info.input_shape == target


def test_letterbox_into_buffer_and_errors() -> None:
    buf = np.zeros((2, 64, 64, 3), np.uint8)
    _, info = letterbox(frame(32, 64), (64, 64), out=buf[1])
    assert buf[1, 0, 0, 0] == 114 and buf[0].max() == 0 and info.pad_y == 16
    with pytest.raises(ValueError, match=r"out buffer has shape \(64, 64, 3\), expected \(32, 32, 3\)"):
        letterbox(frame(32, 64), (32, 32), out=buf[0])
    with pytest.raises(ValueError, match="empty shape"):
        letterbox_params((0, 10), (64, 64))
    with pytest.raises(ValueError, match=r"expected an \(H, W, C\) image"):
        letterbox(np.zeros((10, 10), np.uint8), (64, 64))


def test_to_tensor_matches_ultralytics_preprocess() -> None:
    torch = pytest.importorskip("torch")
    imgs = [frame(64, 96, seed=s) for s in range(3)]
    ours = to_tensor(imgs)
    theirs = (
        torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).contiguous().flip(1).float().div_(255).numpy()
    )
    assert ours.shape == (3, 3, 64, 96) and ours.dtype == np.float32 and ours.flags.c_contiguous
    np.testing.assert_array_equal(ours, theirs)
    assert ours[0, 0, 0, 0] == np.float32(imgs[0][0, 0, 2]) / np.float32(255)  # channel 0 is R (BGR index 2)
    with pytest.raises(ValueError, match=r"expected \(B, H, W, 3\)"):
        to_tensor(np.zeros((1, 8, 8, 4), np.uint8))


def test_thermal_window_mapping() -> None:
    temps = np.array([[-10.0, 0.0, 25.0], [50.0, 100.0, 140.0]])
    counts = radiometry.celsius_to_counts(temps)
    bgr = thermal_to_bgr(counts, (0.0, 100.0))
    assert bgr.shape == (2, 3, 3) and bgr.dtype == np.uint8
    assert bgr[..., 0].tolist() == [[0, 0, 64], [128, 255, 255]]
    assert np.array_equal(bgr[..., 0], bgr[..., 2])
    narrow = thermal_to_bgr(counts, (20.0, 30.0))
    assert narrow[0, 2, 0] == 128  # 25 °C is mid-window


@pytest.mark.parametrize("window", [(0.0, 100.0), (-20.0, 150.0), (25.5, 26.0), (-273.15, 382.2)])
def test_thermal_lookup_equals_the_float_mapping_for_every_count(window: tuple[float, float]) -> None:
    """counts_to_uint8's table gives exactly what the float window mapping gives, for all 65536 counts."""
    counts = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    expected = radiometry.window_to_uint8(radiometry.counts_to_celsius(counts), window)
    assert np.array_equal(radiometry.counts_to_uint8(counts, window), expected)


@pytest.mark.parametrize("window", [(30.0, 30.0), (40.0, 10.0)])
def test_thermal_lookup_rejects_an_empty_or_reversed_window(window: tuple[float, float]) -> None:
    with pytest.raises(ValueError, match="low < high"):
        radiometry.counts_to_uint8(np.zeros((2, 2), np.uint16), window)


@pytest.mark.parametrize(
    ("image", "kind", "shape", "error"),
    [
        (np.zeros((4, 5, 3), np.uint8), "rgb", (4, 5, 3), None),
        (np.zeros((4, 5), np.uint8), "rgb", (4, 5, 3), None),
        (np.zeros((4, 5, 1), np.uint8), "rgb", (4, 5, 3), None),
        (np.zeros((4, 5, 4), np.uint8), "rgb", (4, 5, 3), None),
        (np.full((4, 5), 30000, np.uint16), "thermal", (4, 5, 3), None),
        (np.full((4, 5), 30000, np.uint16), "rgb", None, "16-bit radiometric"),
        (np.zeros((4, 5), np.float32), "rgb", None, "unsupported image: dtype float32"),
        (np.zeros((4, 5, 2), np.uint8), "rgb", None, "unsupported image shape"),
    ],
)
def test_to_model_image(image, kind, shape, error) -> None:
    if error:
        with pytest.raises(ValueError, match=error):
            to_model_image(image, kind)
    else:
        out = to_model_image(image, kind, (0.0, 100.0))
        assert out.shape == shape and out.dtype == np.uint8


def test_to_model_image_keeps_bgr_without_copy() -> None:
    img = frame(8, 8)
    assert to_model_image(img) is img

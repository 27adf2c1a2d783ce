"""Pre-processing that matches ultralytics exactly: letterbox, BGR→RGB, 0..1 float32 NCHW; thermal windowing.

Shapes are always (height, width) in this module — the order cv2 arrays use — and only cv2 calls that take
(width, height) are given (w, h), right at the call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from detection import radiometry
from detection.boxes import clip_boxes, scale_boxes

PAD_VALUE = 114
"""Grey of the letterbox border (ultralytics' value)."""


@dataclass(frozen=True)
class LetterboxInfo:
    """How an image was letterboxed, so boxes can be mapped back.

    Attributes:
        ratio: the scale factor ``min(new_h / h, new_w / w)``.
        pad_x: pixels of border added on the left.
        pad_y: pixels of border added on the top.
        orig_shape: (height, width) of the original image.
        resized_shape: (height, width) of the image after resizing, before padding (each side rounded).
        input_shape: (height, width) of the letterboxed image.
    """

    ratio: float
    pad_x: int
    pad_y: int
    orig_shape: tuple[int, int]
    resized_shape: tuple[int, int]
    input_shape: tuple[int, int]

    @property
    def gain_x(self) -> float:
        """Exact horizontal scale: resized width / original width (differs from ``ratio`` by rounding)."""
        return self.resized_shape[1] / self.orig_shape[1]

    @property
    def gain_y(self) -> float:
        """Exact vertical scale: resized height / original height."""
        return self.resized_shape[0] / self.orig_shape[0]


def letterbox_params(
    orig_shape: tuple[int, int],
    new_shape: tuple[int, int] | int = (640, 640),
    stride: int = 32,
    auto: bool = False,
    scaleup: bool = True,
) -> LetterboxInfo:
    """The letterbox geometry for an image of ``orig_shape`` (h, w) into ``new_shape`` (h, w), as ultralytics does.

    ``auto=True`` pads only to the next multiple of ``stride`` (a rectangular input for dynamic-shape models).

    Raises:
        ValueError: an empty image or target shape.
    """
    if isinstance(new_shape, int):
        new_shape = (new_shape, new_shape)
    h, w = int(orig_shape[0]), int(orig_shape[1])
    nh, nw = int(new_shape[0]), int(new_shape[1])
    if h <= 0 or w <= 0 or nh <= 0 or nw <= 0:
        raise ValueError(f"letterbox: empty shape: image (h, w)=({h}, {w}) into ({nh}, {nw})")
    r = min(nh / h, nw / w)
    if not scaleup:
        r = min(r, 1.0)
    unpad_w, unpad_h = max(round(w * r), 1), max(round(h * r), 1)
    dw, dh = nw - unpad_w, nh - unpad_h
    if auto:
        dw, dh = dw % stride, dh % stride
    dw, dh = dw / 2, dh / 2
    top, bottom = round(dh - 0.1), round(dh + 0.1)
    left, right = round(dw - 0.1), round(dw + 0.1)
    return LetterboxInfo(
        ratio=r,
        pad_x=left,
        pad_y=top,
        orig_shape=(h, w),
        resized_shape=(unpad_h, unpad_w),
        input_shape=(unpad_h + top + bottom, unpad_w + left + right),
    )


def letterbox(
    image: np.ndarray,
    new_shape: tuple[int, int] | int = (640, 640),
    stride: int = 32,
    auto: bool = False,
    color: int = PAD_VALUE,
    scaleup: bool = True,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, LetterboxInfo]:
    """Resize ``image`` (H, W, C) uint8 keeping its aspect ratio and pad it to ``new_shape`` (h, w).

    Bit-identical to ``ultralytics.data.augment.LetterBox(new_shape, auto, stride=stride)`` (bilinear resize,
    border split ``round(d - 0.1)`` / ``round(d + 0.1)``).

    Args:
        image: (H, W, C) uint8, any channel order (it is not changed).
        new_shape: target (height, width), or one int for a square.
        out: optional (h, w, C) uint8 buffer to write into (e.g. a slice of a batch); must match the output shape.

    Returns:
        The (h, w, C) letterboxed image and its :class:`LetterboxInfo`.
    """
    if image.ndim != 3:
        raise ValueError(f"letterbox: expected an (H, W, C) image, got shape {image.shape}")
    info = letterbox_params(image.shape[:2], new_shape, stride, auto, scaleup)
    rh, rw = info.resized_shape
    resized = (
        image if (rh, rw) == image.shape[:2] else cv2.resize(image, (rw, rh), interpolation=cv2.INTER_LINEAR)
    )
    if resized.ndim == 2:
        resized = resized[..., None]
    c = image.shape[2]
    ih, iw = info.input_shape
    if out is None:
        out = np.empty((ih, iw, c), dtype=image.dtype)
    elif out.shape != (ih, iw, c):
        raise ValueError(f"letterbox: out buffer has shape {out.shape}, expected {(ih, iw, c)}")
    top, left = info.pad_y, info.pad_x
    out[:top] = color
    out[top + rh :] = color
    out[top : top + rh, :left] = color
    out[top : top + rh, left + rw :] = color
    out[top : top + rh, left : left + rw] = resized
    return out, info


def letterbox_boxes(boxes: np.ndarray, info: LetterboxInfo) -> np.ndarray:
    """(N, 4) boxes in original-image pixels → letterboxed-input pixels (float32)."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    gain = np.array([info.gain_x, info.gain_y, info.gain_x, info.gain_y])
    pad = np.array([info.pad_x, info.pad_y, info.pad_x, info.pad_y])
    return (b * gain + pad).astype(np.float32)


def unletterbox_boxes(boxes: np.ndarray, info: LetterboxInfo, clip: bool = True) -> np.ndarray:
    """(N, 4) boxes in letterboxed-input pixels → original-image pixels (float32), clipped to the image."""
    out = scale_boxes(boxes, (info.gain_x, info.gain_y), (info.pad_x, info.pad_y))
    return clip_boxes(out, info.orig_shape) if clip else out


def to_tensor(images: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
    """Letterboxed BGR uint8 images, (B, H, W, 3) or a list of (H, W, 3) → (B, 3, H, W) float32 RGB in 0..1.

    Same arithmetic as ultralytics' predictor (channel flip, ``/ 255`` in float32), so tensors are bit-identical.
    """
    batch = np.stack(images) if not isinstance(images, np.ndarray) else images
    if batch.ndim == 3:
        batch = batch[None]
    if batch.ndim != 4 or batch.shape[3] != 3:
        raise ValueError(f"to_tensor: expected (B, H, W, 3) BGR images, got shape {batch.shape}")
    b, h, w, _ = batch.shape
    out = np.empty((b, 3, h, w), dtype=np.float32)
    for c in range(3):  # BGR → RGB while converting, one plane at a time (no full-size temporaries)
        np.divide(batch[..., 2 - c], np.float32(255.0), out=out[:, c], dtype=np.float32)
    return out


def thermal_to_bgr(
    counts: np.ndarray, window_c: tuple[float, float] = radiometry.DEFAULT_WINDOW_C
) -> np.ndarray:
    """(H, W) uint16 centikelvin → (H, W, 3) uint8 grey through the model's temperature window."""
    if counts.ndim != 2 or counts.dtype != np.uint16:
        raise ValueError(
            f"thermal_to_bgr: expected (H, W) uint16 radiometric counts, got {counts.shape} {counts.dtype}"
        )
    grey = radiometry.counts_to_uint8(counts, window_c)
    return cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)


def to_model_image(
    image: np.ndarray,
    input_kind: str = "rgb",
    thermal_window_c: tuple[float, float] | None = None,
) -> np.ndarray:
    """Any image this project reads → the (H, W, 3) uint8 BGR view a model takes.

    - (H, W) uint16: radiometric thermal (centikelvin), windowed with ``thermal_window_c`` (only for thermal models).
    - (H, W) uint8 grey or (H, W, 1): replicated to three channels.
    - (H, W, 4) BGRA: alpha dropped.
    - (H, W, 3) uint8 BGR: unchanged (no copy). An 8-bit thermal frame is taken as already windowed.

    Raises:
        ValueError: a 16-bit frame for an RGB model, or an unsupported shape / dtype.
    """
    if image.dtype == np.uint16 and image.ndim == 2:
        if input_kind != "thermal":
            raise ValueError(
                "a 16-bit radiometric (thermal) image was given to an RGB model "
                f"(input_kind={input_kind!r}); use the domain's thermal model"
            )
        return thermal_to_bgr(image, thermal_window_c or radiometry.DEFAULT_WINDOW_C)
    if image.dtype != np.uint8:
        raise ValueError(
            f"unsupported image: dtype {image.dtype}, shape {image.shape} (expected uint8 or uint16 (H, W))"
        )
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        return cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    raise ValueError(f"unsupported image shape {image.shape} (expected (H, W), (H, W, 3) or (H, W, 4))")

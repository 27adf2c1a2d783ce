"""Reading images for inference: JPEG/PNG as BGR uint8, 16-bit radiometric TIFF as (H, W) uint16, unchanged.

A JPEG much larger than the model's input can be decoded at 1/2, 1/4 or 1/8 scale (:func:`decode_reduction`,
``decode_image(..., reduce=f)``): libjpeg then skips most of the inverse DCT work, and the letterbox shrinks it the
rest of the way. The cloud pipeline and the on-site runtime both decode this way (:meth:`detection.inference.
Detector.decode_reduction`), so they see the same pixels.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp"})


class ImageReadError(OSError):
    """An image that cannot be read; carries the path and the reason."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"cannot read image {path}: {reason}")
        self.path = Path(path)
        self.reason = reason


REDUCTIONS = (8, 4, 2)
"""Scales libjpeg decodes at natively (1/8, 1/4, 1/2), largest first."""
_REDUCED_FLAGS = {
    (2, 3): cv2.IMREAD_REDUCED_COLOR_2, (4, 3): cv2.IMREAD_REDUCED_COLOR_4, (8, 3): cv2.IMREAD_REDUCED_COLOR_8,
    (2, 1): cv2.IMREAD_REDUCED_GRAYSCALE_2, (4, 1): cv2.IMREAD_REDUCED_GRAYSCALE_4,
    (8, 1): cv2.IMREAD_REDUCED_GRAYSCALE_8,
}  # fmt: skip
_SOF_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


def jpeg_header(data: bytes) -> tuple[int, int, int] | None:
    """(height, width, components) from a JPEG's frame header without decoding it; ``None`` for anything else
    (not a JPEG, or a header this does not understand — callers then decode normally)."""
    if len(data) < 4 or data[0] != 0xFF or data[1] != 0xD8:
        return None
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length field
            i += 2
            continue
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if marker in _SOF_MARKERS:
            if i + 10 > n or length < 8:
                return None
            h = int.from_bytes(data[i + 5 : i + 7], "big")
            w = int.from_bytes(data[i + 7 : i + 9], "big")
            return (h, w, data[i + 9]) if h > 0 and w > 0 else None
        if marker == 0xDA or length < 2:  # start of scan before any frame header
            return None
        i += 2 + length
    return None


def decode_reduction(shape: tuple[int, int], needed: tuple[int, int]) -> int:
    """The largest libjpeg scale divisor (1, 2, 4 or 8) that keeps an image of ``shape`` (h, w) at least
    ``needed`` (h, w) pixels on both sides — the size the letterbox resizes it to."""
    h, w = shape
    for f in REDUCTIONS:
        if -(-h // f) >= needed[0] and -(-w // f) >= needed[1]:
            return f
    return 1


def decode_image(data: bytes, source: str | Path = "<bytes>", reduce: int = 1) -> np.ndarray:
    """Decode encoded image bytes.

    ``reduce`` (2, 4 or 8) decodes a JPEG at that fraction of its size (``ceil(side / reduce)``, libjpeg's DCT
    scaling; EXIF orientation ignored, as in a full decode); other formats and ``reduce=1`` decode at full size.

    Returns:
        (H, W, 3) uint8 BGR for colour images (alpha dropped), (H, W) uint8 for 8-bit greyscale, (H, W) uint16 for
        16-bit single-channel images (radiometric thermal TIFF/PNG) — values unchanged.

    Raises:
        ImageReadError: empty or undecodable data, or an unsupported pixel type.
    """
    if not data:
        raise ImageReadError(source, "the file is empty")
    buf = np.frombuffer(data, dtype=np.uint8)
    if reduce != 1:
        if reduce not in REDUCTIONS:
            raise ValueError(f"{source}: reduce must be 1, 2, 4 or 8, got {reduce}")
        header = jpeg_header(data)
        if header is not None and header[2] in (1, 3):
            img = cv2.imdecode(buf, _REDUCED_FLAGS[reduce, header[2]] | cv2.IMREAD_IGNORE_ORIENTATION)
            if img is None:
                raise ImageReadError(source, "not a decodable image (corrupt or unsupported format)")
            return img
    img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ImageReadError(source, "not a decodable image (corrupt or unsupported format)")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if img.dtype == np.uint16:
        if img.ndim != 2:
            img = cv2.imdecode(buf, cv2.IMREAD_COLOR)  # 16-bit colour: no radiometry, take an 8-bit view
            if img is None:
                raise ImageReadError(source, "16-bit colour image could not be converted to 8 bits")
        return img
    if img.dtype != np.uint8:
        raise ImageReadError(
            source, f"unsupported pixel type {img.dtype} (expected 8-bit, or 16-bit single channel)"
        )
    if img.ndim == 3 and img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    return img


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file (unicode paths work: bytes are read by Python and decoded by cv2.imdecode).

    Returns and raises as :func:`decode_image`; :class:`ImageReadError` also for a missing or unreadable file.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise ImageReadError(p, "no such file") from None
    except IsADirectoryError:
        raise ImageReadError(p, "is a directory") from None
    except OSError as exc:
        raise ImageReadError(p, exc.strerror or str(exc)) from exc
    return decode_image(data, p)

"""Reading images for inference: JPEG/PNG as BGR uint8, 16-bit radiometric TIFF as (H, W) uint16, unchanged."""

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


def decode_image(data: bytes, source: str | Path = "<bytes>") -> np.ndarray:
    """Decode encoded image bytes.

    Returns:
        (H, W, 3) uint8 BGR for colour images (alpha dropped), (H, W) uint8 for 8-bit greyscale, (H, W) uint16 for
        16-bit single-channel images (radiometric thermal TIFF/PNG) — values unchanged.

    Raises:
        ImageReadError: empty or undecodable data, or an unsupported pixel type.
    """
    if not data:
        raise ImageReadError(source, "the file is empty")
    buf = np.frombuffer(data, dtype=np.uint8)
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

"""Frames of a finding as the browser sees them (through the app, never with store credentials) and as the
export writes them for training."""

from __future__ import annotations

import mimetypes
from pathlib import PurePosixPath

import cv2
import numpy as np

from detection.radiometry import DEFAULT_WINDOW_C, counts_to_uint8
from findings.crops import annotated_crop, thermal_to_bgr
from findings.thermal import as_celsius, read_radiometric_tiff

THERMAL_SUFFIXES = frozenset({".tif", ".tiff"})


class ImageError(ValueError):
    """A frame that cannot be decoded; the message names it."""


def is_thermal(rel: str) -> bool:
    return PurePosixPath(rel).suffix.lower() in THERMAL_SUFFIXES


def decode_bgr(data: bytes, rel: str) -> np.ndarray:
    """(H, W, 3) uint8 BGR for display: thermal frames through the inferno palette, others as they are.

    Raises:
        ImageError: the bytes are not a decodable image.
    """
    try:
        if is_thermal(rel):
            return thermal_to_bgr(as_celsius(read_radiometric_tiff(data)))
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except Exception as exc:
        raise ImageError(f"{rel}: cannot decode ({exc})") from exc
    if img is None:
        raise ImageError(f"{rel}: cannot decode as an image")
    return img


def display_image(data: bytes, rel: str) -> tuple[bytes, str]:
    """(bytes, content type) of a frame the browser can show: JPEG/PNG as stored, thermal TIFF as PNG."""
    if is_thermal(rel):
        ok, png = cv2.imencode(".png", decode_bgr(data, rel))
        if not ok:
            raise ImageError(f"{rel}: PNG encoding failed")
        return png.tobytes(), "image/png"
    ctype = mimetypes.guess_type(rel)[0] or "application/octet-stream"
    if not ctype.startswith("image/"):
        raise ImageError(f"{rel}: not an image ({ctype})")
    return data, ctype


def crop_png(
    data: bytes, rel: str, xyxy: list[float], colour_bgr: tuple[int, int, int], size: int = 200
) -> bytes:
    """PNG of the square crop around ``xyxy`` with the box drawn (findings.crops.annotated_crop)."""
    return annotated_crop(decode_bgr(data, rel), xyxy, colour_bgr, size)


def training_image(data: bytes, rel: str) -> tuple[bytes, str, int, int]:
    """(bytes, suffix, width, height) as a training set holds the frame: RGB frames byte for byte, 16-bit thermal
    TIFFs as 8-bit PNG through :data:`~detection.radiometry.DEFAULT_WINDOW_C` (as datasets.build does).

    Raises:
        ImageError: the bytes are not a decodable image.
    """
    if is_thermal(rel):
        try:
            gray = counts_to_uint8(read_radiometric_tiff(data), DEFAULT_WINDOW_C)
        except Exception as exc:
            raise ImageError(f"{rel}: cannot decode thermal frame ({exc})") from exc
        ok, png = cv2.imencode(".png", gray)
        if not ok:
            raise ImageError(f"{rel}: PNG encoding failed")
        return png.tobytes(), ".png", int(gray.shape[1]), int(gray.shape[0])
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ImageError(f"{rel}: cannot decode as an image")
    return data, PurePosixPath(rel).suffix.lower() or ".jpg", int(img.shape[1]), int(img.shape[0])

"""detection.images: real files — JPEG/PNG as BGR, 16-bit TIFF unchanged, unicode paths, clear errors."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from detection.images import ImageReadError, read_image


def bgr(h: int = 12, w: int = 16) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = 200  # blue
    img[:4, :, 2] = 255  # red band on top
    return img


@pytest.mark.parametrize("name", ["frame.png", "frame.jpg", "Überflug_航拍 01.png", "frame.bmp"])
def test_colour_images_are_bgr(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    ok, buf = cv2.imencode(path.suffix, bgr())
    assert ok
    path.write_bytes(buf.tobytes())
    img = read_image(path)
    assert img.shape == (12, 16, 3) and img.dtype == np.uint8
    tol = 0 if path.suffix in (".png", ".bmp") else 12
    assert abs(int(img[8, 8, 0]) - 200) <= tol and abs(int(img[0, 8, 2]) - 255) <= tol  # channel order kept


def test_16bit_tiff_unchanged(tmp_path: Path) -> None:
    tifffile = pytest.importorskip("tifffile")
    counts = (np.arange(20 * 30, dtype=np.uint32).reshape(20, 30) * 97 + 29000).astype(np.uint16)
    path = tmp_path / "thermal.tiff"
    tifffile.imwrite(path, counts)
    img = read_image(path)
    assert img.dtype == np.uint16 and img.shape == (20, 30)
    np.testing.assert_array_equal(img, counts)


def test_png_with_alpha_and_grey(tmp_path: Path) -> None:
    rgba = np.dstack([bgr(), np.full((12, 16), 128, np.uint8)])
    cv2.imwrite(str(tmp_path / "a.png"), rgba)
    assert read_image(tmp_path / "a.png").shape == (12, 16, 3)
    cv2.imwrite(str(tmp_path / "g.png"), np.full((5, 6), 77, np.uint8))
    grey = read_image(tmp_path / "g.png")
    assert grey.shape == (5, 6) and grey[0, 0] == 77


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "no such file"),
        (b"", "the file is empty"),
        (b"\xff\xd8\xff\xe0 this is not really a jpeg", "not a decodable image"),
        (b"plain text", "not a decodable image"),
    ],
)
def test_unreadable_files_raise_with_path_and_reason(tmp_path: Path, content, reason) -> None:
    path = tmp_path / "bad.jpg"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ImageReadError, match=reason) as info:
        read_image(path)
    assert info.value.path == path and str(path) in str(info.value)


def test_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match="is a directory"):
        read_image(tmp_path)

"""detection.images: real files — JPEG/PNG as BGR, 16-bit TIFF unchanged, unicode paths, clear errors."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from detection.images import ImageReadError, decode_image, decode_reduction, jpeg_header, read_image


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


# ------------------------------------------------------------------------------------------ reduced JPEG decode
def textured(h: int, w: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return cv2.GaussianBlur(rng.integers(0, 255, (h, w, 3), dtype=np.uint8), (0, 0), 2)


@pytest.mark.parametrize(
    ("encode", "expected"),
    [
        (lambda: cv2.imencode(".jpg", textured(1080, 1920))[1].tobytes(), (1080, 1920, 3)),
        (
            lambda: cv2.imencode(".jpg", textured(37, 53), [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes(),
            (37, 53, 3),
        ),
        (lambda: cv2.imencode(".jpg", textured(40, 30)[..., 0])[1].tobytes(), (40, 30, 1)),
        (lambda: cv2.imencode(".png", textured(40, 30))[1].tobytes(), None),
        (
            lambda: cv2.imencode(".jpg", textured(40, 30))[1].tobytes()[:3],
            None,
        ),  # truncated before any header
        (lambda: b"", None),
    ],
    ids=["baseline", "progressive", "grey", "png", "truncated", "empty"],
)
def test_jpeg_header_reads_the_frame_size(encode, expected) -> None:
    assert jpeg_header(encode()) == expected


@pytest.mark.parametrize(
    ("shape", "needed", "factor"),
    [
        ((1080, 1920), (360, 640), 2),  # 960×540 still covers 640×360; 480×270 would not
        ((3000, 4000), (480, 640), 4),
        ((3000, 4000), (360, 480), 8),
        ((512, 640), (512, 640), 1),  # the model takes it at full size
        ((480, 640), (360, 480), 1),  # 1/2 would be smaller than the letterbox's 480×360
        ((1081, 1921), (360, 640), 2),  # odd sides: libjpeg rounds up (541×961)
    ],
)
def test_decode_reduction_keeps_at_least_what_the_letterbox_needs(shape, needed, factor) -> None:
    assert decode_reduction(shape, needed) == factor


@pytest.mark.parametrize("factor", [2, 4, 8])
def test_reduced_decode_is_a_downscale_of_the_full_decode(factor: int) -> None:
    img = textured(301, 403)
    data = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
    small = decode_image(data, reduce=factor)
    assert small.shape == (-(-301 // factor), -(-403 // factor), 3) and small.dtype == np.uint8
    full = decode_image(data)
    area = cv2.resize(full, (small.shape[1], small.shape[0]), interpolation=cv2.INTER_AREA)
    assert np.abs(area.astype(int) - small.astype(int)).mean() < 4  # the same picture, smaller


def test_reduced_decode_leaves_other_formats_whole_and_checks_the_factor() -> None:
    png = cv2.imencode(".png", textured(40, 30))[1].tobytes()
    assert decode_image(png, reduce=4).shape == (40, 30, 3)
    grey = cv2.imencode(".jpg", textured(40, 30)[..., 0])[1].tobytes()
    assert decode_image(grey, reduce=2).shape == (20, 15)
    with pytest.raises(ValueError, match="reduce must be 1, 2, 4 or 8"):
        decode_image(png, "frame.png", reduce=3)

"""probe_image: what is read from real JPEG/TIFF bytes, and which files are refused for which reason."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from ingest.metadata import Rejected, _capture_time, parse_xmp, probe_image
from ingest.samples import dji_xmp, drone_jpeg, exif_bytes, insert_app1_xmp, thermal_tiff

BIG = 10**9


def _jpeg(exif: bytes | None = None, size: tuple[int, int] = (40, 30)) -> bytes:
    buffer = io.BytesIO()
    kwargs = {"exif": exif} if exif else {}
    Image.new("RGB", size, (90, 120, 30)).save(buffer, "JPEG", **kwargs)
    return buffer.getvalue()


def _png(size: tuple[int, int] = (40, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (1, 2, 3)).save(buffer, "PNG")
    return buffer.getvalue()


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims width × height but carries almost no data (a decompression bomb's header)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def test_dji_jpeg_metadata_is_read_exactly() -> None:
    data = drone_jpeg(seed=3, lat=52.123456, lon=-4.5, alt=61.25, pitch=-89.5)
    probe = probe_image(data, "DJI_0001.JPG", BIG)
    f = probe.fields
    assert probe.warnings == []
    assert (f["format"], f["content_type"], f["width"], f["height"]) == ("JPEG", "image/jpeg", 64, 48)
    assert (f["bit_depth"], f["channels"], f["radiometric"]) == (8, 3, False)
    assert f["lat"] == pytest.approx(52.123456, abs=1e-7)
    assert f["lon"] == pytest.approx(-4.5, abs=1e-7)
    assert f["alt_m"] == pytest.approx(61.25)
    assert f["gps_source"] == "exif"
    assert (f["make"], f["model"], f["focal_length_mm"]) == ("DJI", "FC6310", pytest.approx(8.8))
    assert f["capture_time"] == "2024-06-01T10:11:12"
    assert f["gimbal_pitch_deg"] == -89.5
    assert (f["gimbal_yaw_deg"], f["gimbal_roll_deg"], f["flight_yaw_deg"]) == (12.5, 0.0, 13.1)
    assert (f["flight_pitch_deg"], f["flight_roll_deg"], f["relative_altitude_m"]) == (-1.5, 0.4, 40.0)
    assert f["calibrated_focal_length_px"] == pytest.approx(3666.67)
    assert (f["optical_center_x_px"], f["optical_center_y_px"]) == (2736.0, 1824.0)
    assert f["dji"]["GpsLatitude"] == pytest.approx(52.123456)
    assert len(f["dji"]) == 13


def test_xmp_gps_is_the_fallback_when_exif_has_none() -> None:
    data = insert_app1_xmp(
        _jpeg(exif_bytes(lat=None, lon=None)),
        dji_xmp(GpsLatitude=47.25, GpsLongtitude=8.5, AbsoluteAltitude=512.0),  # DJI's own misspelling
    )
    f = probe_image(data, "x.jpg", BIG).fields
    assert (f["lat"], f["lon"], f["alt_m"], f["gps_source"]) == (47.25, 8.5, 512.0, "xmp")


@pytest.mark.parametrize(
    ("lat", "lon", "warning"),
    [(95.0, 4.0, "impossible position"), (0.0, 0.0, "no GPS fix"), (None, None, "no GPS position")],
)
def test_missing_or_impossible_gps_is_a_warning_not_a_reject(lat, lon, warning) -> None:
    probe = probe_image(_jpeg(exif_bytes(lat=lat, lon=lon)), "x.jpg", BIG)
    assert probe.fields["lat"] is None and probe.fields["gps_source"] is None
    assert any(warning in w for w in probe.warnings), probe.warnings


@pytest.mark.parametrize(
    "payload",
    [
        b"Exif\x00\x00" + b"\x13" * 40,  # no TIFF header at all
        b"Exif\x00\x00II*\x00\x08\x00\x00\x00\x01\x00\x25\x88\x04\x00\x01\x00\x00\x00\xff\xff\x00\x00",  # GPS IFD off the end
    ],
)
def test_broken_exif_keeps_the_image_with_a_warning(payload: bytes) -> None:
    jpeg = _jpeg()
    data = jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]
    probe = probe_image(data, "x.jpg", BIG)
    assert probe.fields["width"] == 40
    assert any("EXIF" in w for w in probe.warnings), probe.warnings


def test_radiometric_tiff_is_recognised() -> None:
    f = probe_image(thermal_tiff(seed=1, lat=51.5, lon=7.25), "DJI_0001_T.TIFF", BIG).fields
    assert (f["format"], f["bit_depth"], f["channels"], f["radiometric"]) == ("TIFF", 16, 1, True)
    assert "centikelvin" in f["radiometric_note"]
    assert (f["lat"], f["lon"], f["gps_source"], f["gimbal_pitch_deg"]) == (51.5, 7.25, "xmp", -90.0)


def test_eight_bit_tiff_is_not_radiometric() -> None:
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(buffer, "TIFF")
    f = probe_image(buffer.getvalue(), "x.tif", BIG).fields
    assert (f["bit_depth"], f["channels"], f["radiometric"]) == (8, 1, False)


def test_flir_rjpeg_is_flagged_as_unreadable_radiometry() -> None:
    jpeg = _jpeg(exif_bytes(lat=52.0, lon=4.0))
    payload = b"FLIR\x00\x01\x01\x0b" + b"\x00" * 32
    data = jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]
    probe = probe_image(data, "IR_0001.jpg", BIG)
    assert probe.fields["radiometric"] is False
    assert "R-JPEG" in probe.fields["radiometric_note"]
    assert any("R-JPEG" in w for w in probe.warnings)


def test_extension_that_lies_is_a_warning() -> None:
    probe = probe_image(_png(), "photo.jpg", BIG)
    assert probe.fields["format"] == "PNG"
    assert probe.fields["content_type"] == "image/png"
    assert any("content is PNG" in w for w in probe.warnings)


def _gif() -> bytes:
    buffer = io.BytesIO()
    Image.new("P", (8, 8)).save(buffer, "GIF")
    return buffer.getvalue()


def _tiff16() -> bytes:
    return thermal_tiff(seed=2, size=(64, 48))


GOOD_JPEG = drone_jpeg(seed=9, size=(160, 120), noise=True)

REJECTS = [
    ("empty.jpg", b"", BIG, "empty_file"),
    ("notes.jpg", b"these are my flight notes\n" * 5, BIG, "not_an_image"),
    ("half.jpg", GOOD_JPEG[: len(GOOD_JPEG) // 2], BIG, "corrupt"),
    ("no-end.jpg", GOOD_JPEG[:-2], BIG, "corrupt"),
    ("header.jpg", b"\xff\xd8\xff\xe0" + b"\x00\x10JFIF" + b"\x07" * 200, BIG, "corrupt"),
    ("half.png", _png((64, 64))[:-40], BIG, "corrupt"),
    ("half.tiff", _tiff16()[: len(_tiff16()) // 2], BIG, "corrupt"),
    ("anim.jpg", _gif(), BIG, "unsupported_format"),
    ("bomb.png", _png_header_only(100_000, 100_000), BIG, "too_many_pixels"),
    ("big.jpg", GOOD_JPEG, 160 * 120 - 1, "too_many_pixels"),
]


@pytest.mark.parametrize(("name", "data", "max_pixels", "reason"), REJECTS, ids=[r[0] for r in REJECTS])
def test_bad_files_are_rejected_with_a_reason(name: str, data: bytes, max_pixels: int, reason: str) -> None:
    with pytest.raises(Rejected) as err:
        probe_image(data, name, max_pixels)
    assert err.value.reason == reason
    assert err.value.detail


def test_the_pixel_limit_is_inclusive() -> None:
    assert probe_image(GOOD_JPEG, "ok.jpg", 160 * 120).fields["width"] == 160


def test_xmp_element_form_and_numbers() -> None:
    packet = (
        b"junk<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:Description>"
        b"<drone-dji:GimbalPitchDegree>-45.5</drone-dji:GimbalPitchDegree>"
        b"<drone-dji:Version>1.2.3</drone-dji:Version></rdf:Description></x:xmpmeta>junk"
    )
    assert parse_xmp(packet) == {"GimbalPitchDegree": -45.5, "Version": "1.2.3"}
    assert parse_xmp(b"no packet here") == {}


@pytest.mark.parametrize(
    ("when", "offset", "expected"),
    [
        ("2024:06:01 10:11:12", None, "2024-06-01T10:11:12"),
        ("2024:06:01 10:11:12", "+02:00", "2024-06-01T10:11:12+02:00"),
        ("2024-06-01T10:11:12", None, "2024-06-01T10:11:12"),
        ("0000:00:00 00:00:00", None, None),
        (None, None, None),
    ],
)
def test_capture_time(when, offset, expected) -> None:
    assert _capture_time(when, offset) == expected


def _progressive() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (60, 80, 3), dtype=np.uint8)).save(
        buffer, "JPEG", progressive=True
    )
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (GOOD_JPEG, None),
        (_progressive(), None),
        (drone_jpeg(seed=4), None),  # EXIF + XMP segments before the frame
        (GOOD_JPEG[:-1], "cut off"),
        (GOOD_JPEG[: len(GOOD_JPEG) // 2], "cut off"),
        (_progressive()[:-50], "cut off"),
        (drone_jpeg(seed=4)[:300], "runs past the end"),
        (b"\xff\xd8\xff\xd9", "before any image data"),
        (b"GIF89a", "no JPEG start marker"),
    ],
)
def test_jpeg_structure_walk(data: bytes, problem: str | None) -> None:
    from ingest.metadata import jpeg_structure_problem

    found = jpeg_structure_problem(data)
    assert found is None if problem is None else problem in found


@pytest.mark.parametrize("check", ["decode", "structure"])
def test_both_checks_reject_truncated_jpegs_and_record_themselves(check: str) -> None:
    assert probe_image(GOOD_JPEG, "ok.jpg", BIG, check).fields["checked"] == check
    with pytest.raises(Rejected) as err:
        probe_image(GOOD_JPEG[:-300], "cut.jpg", BIG, check)
    assert err.value.reason == "corrupt"
    with pytest.raises(Rejected, match="corrupt"):
        probe_image(_tiff16()[:-500], "cut.tiff", BIG, check)  # TIFFs are always decoded
    assert probe_image(_tiff16(), "ok.tiff", BIG, check).fields["checked"] == "decode"


def test_unknown_check_is_refused() -> None:
    with pytest.raises(ValueError, match="check must be one of"):
        probe_image(GOOD_JPEG, "x.jpg", BIG, "quick")

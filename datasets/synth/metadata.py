"""Drone-like image metadata: EXIF (Make, Model, DateTimeOriginal, focal lengths, GPS) and DJI XMP.

JPEG: an EXIF APP1 segment and an XMP APP1 segment are spliced in right after SOI, so pixels are encoded once
(by OpenCV) and the file stays byte-identical for the same inputs. TIFF: Pillow writes EXIF and GPS sub-IFDs
and the XMP packet in tag 700.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image, TiffImagePlugin

from datasets.synth.geo import CameraModel

DJI_NS = "http://www.dji.com/drone-dji/1.0/"
XMP_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"

_R = TiffImagePlugin.IFDRational


@dataclass(frozen=True)
class ShotMetadata:
    """What a drone records for one shot. Altitudes in metres; angles in degrees (DJI conventions)."""

    lat: float
    lon: float
    abs_alt_m: float
    rel_alt_m: float
    gimbal_yaw: float
    gimbal_pitch: float
    gimbal_roll: float
    flight_yaw: float
    flight_pitch: float
    flight_roll: float
    time: datetime
    image_source: str
    """DJI ``ImageSource``: ``WideCamera``, ``ZoomCamera`` or ``InfraredCamera``."""


def _dms(value: float) -> tuple[_R, _R, _R]:
    value = abs(value)
    deg = int(value)
    minutes_f = (value - deg) * 60.0
    minutes = int(minutes_f)
    seconds = round((minutes_f - minutes) * 60.0 * 100000)
    return _R(deg, 1), _R(minutes, 1), _R(seconds, 100000)


def _rational(value: float, denominator: int = 1000) -> _R:
    frac = Fraction(round(value * denominator), denominator)
    return _R(frac.numerator, frac.denominator)


def _angle(value: float) -> float:
    """Normalise an angle to (-180, 180]."""
    out = (value + 180.0) % 360.0 - 180.0
    return 180.0 if out == -180.0 else out


def xmp_packet(cam: CameraModel, shot: ShotMetadata) -> bytes:
    """The DJI-style XMP packet (``drone-dji`` namespace) for one shot."""
    fields = {
        "AbsoluteAltitude": f"{shot.abs_alt_m:+.3f}",
        "RelativeAltitude": f"{shot.rel_alt_m:+.3f}",
        "GpsLatitude": f"{shot.lat:.9f}",
        "GpsLongitude": f"{shot.lon:.9f}",
        "GimbalYawDegree": f"{_angle(shot.gimbal_yaw):+.3f}",
        "GimbalPitchDegree": f"{shot.gimbal_pitch:+.3f}",
        "GimbalRollDegree": f"{shot.gimbal_roll:+.3f}",
        "FlightYawDegree": f"{_angle(shot.flight_yaw):+.3f}",
        "FlightPitchDegree": f"{shot.flight_pitch:+.3f}",
        "FlightRollDegree": f"{shot.flight_roll:+.3f}",
        "CalibratedFocalLength": f"{cam.focal_px:.6f}",
        "CalibratedOpticalCenterX": f"{cam.cx:.6f}",
        "CalibratedOpticalCenterY": f"{cam.cy:.6f}",
        "ImageSource": shot.image_source,
    }
    attrs = "\n    ".join(f'drone-dji:{k}="{v}"' for k, v in fields.items())
    text = (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
        '  <rdf:Description rdf:about="DJI Meta Data"\n'
        '    xmlns:tiff="http://ns.adobe.com/tiff/1.0/"\n'
        f'    xmlns:drone-dji="{DJI_NS}"\n'
        f'    tiff:Make="{cam.make}"\n    tiff:Model="{cam.model}"\n'
        f"    {attrs}>\n"
        "  </rdf:Description>\n </rdf:RDF>\n</x:xmpmeta>\n"
        '<?xpacket end="w"?>'
    )
    return text.encode("utf-8")


def parse_dji_xmp(data: bytes) -> dict[str, str]:
    """The ``drone-dji:*`` attributes of an XMP packet (or of a whole file's bytes) as strings."""
    text = data.decode("utf-8", errors="replace")
    return dict(re.findall(r'drone-dji:(\w+)="([^"]*)"', text))


def _ifds(cam: CameraModel, shot: ShotMetadata) -> tuple[dict, dict, dict]:
    ifd0 = {0x010F: cam.make, 0x0110: cam.model, 0x0131: "skyinspect-synth"}
    stamp = shot.time.strftime("%Y:%m:%d %H:%M:%S")
    exif = {
        0x9003: stamp,
        0x9004: stamp,
        0x920A: _rational(cam.focal_mm, 100),
        0xA405: cam.focal_35mm,
        0x829D: _rational(cam.f_number, 10),
        0xA002: cam.width,
        0xA003: cam.height,
    }
    gps = {
        0x0000: b"\x02\x03\x00\x00",
        0x0001: "N" if shot.lat >= 0 else "S",
        0x0002: _dms(shot.lat),
        0x0003: "E" if shot.lon >= 0 else "W",
        0x0004: _dms(shot.lon),
        0x0005: b"\x00" if shot.abs_alt_m >= 0 else b"\x01",
        0x0006: _rational(abs(shot.abs_alt_m), 1000),
    }
    return ifd0, exif, gps


def exif_bytes(cam: CameraModel, shot: ShotMetadata) -> bytes:
    """An EXIF block (``Exif\\0\\0`` + TIFF structure) with IFD0, the Exif IFD and the GPS IFD."""
    ifd0, exif, gps = _ifds(cam, shot)
    ex = Image.Exif()
    for k, v in ifd0.items():
        ex[k] = v
    sub = ex.get_ifd(0x8769)
    sub.update(exif)
    g = ex.get_ifd(0x8825)
    g.update({k: (v[0] if k == 5 else v) for k, v in gps.items()})
    return ex.tobytes()


def _app1(payload: bytes) -> bytes:
    if len(payload) + 2 > 0xFFFF:
        raise ValueError(f"APP1 payload of {len(payload)} bytes does not fit a JPEG segment")
    return b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload


def write_jpeg(path: Path, jpeg: bytes, cam: CameraModel, shot: ShotMetadata) -> None:
    """Write encoded JPEG bytes with EXIF and XMP APP1 segments inserted after SOI."""
    if jpeg[:2] != b"\xff\xd8":
        raise ValueError(f"{path}: encoder output is not a JPEG stream")
    segments = _app1(exif_bytes(cam, shot)) + _app1(XMP_HEADER + xmp_packet(cam, shot))
    path.write_bytes(jpeg[:2] + segments + jpeg[2:])


def write_radiometric_tiff(path: Path, counts: np.ndarray, cam: CameraModel, shot: ShotMetadata) -> None:
    """Write (H, W) uint16 centikelvin counts as a single-channel TIFF with EXIF/GPS IFDs and XMP (tag 700)."""
    if counts.dtype != np.uint16 or counts.ndim != 2:
        raise ValueError(
            f"{path}: radiometric frame must be (H, W) uint16, got {counts.dtype} {counts.shape}"
        )
    ifd0, exif, gps = _ifds(cam, shot)
    info = TiffImagePlugin.ImageFileDirectory_v2()
    for k, v in ifd0.items():
        info[k] = v
    info[700] = xmp_packet(cam, shot)
    info[0x8769] = exif
    info[0x8825] = gps
    Image.fromarray(counts).save(path, format="TIFF", tiffinfo=info)


def gps_from_exif(exif: Image.Exif) -> tuple[float, float, float]:
    """(lat, lon, alt) in degrees/metres from a Pillow EXIF object's GPS IFD."""
    g = exif.get_ifd(0x8825)

    def deg(v: tuple) -> float:
        return float(v[0]) + float(v[1]) / 60.0 + float(v[2]) / 3600.0

    lat = deg(g[2]) * (-1 if g[1] == "S" else 1)
    lon = deg(g[4]) * (-1 if g[3] == "W" else 1)
    ref = g.get(5, b"\x00")
    alt = float(g[6]) * (-1 if ref in (1, b"\x01") else 1)
    return lat, lon, alt

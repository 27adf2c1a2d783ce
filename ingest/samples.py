"""Small drone-like images with real EXIF GPS and DJI XMP, for tests and benchmarks of ingest.

Not a simulator (that is ``skyinspect synth``): these are tiny, fast to make, and carry exactly the metadata
a DJI camera writes, so the metadata reader and the ingest can be checked against known values.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
from PIL import Image
from PIL.TiffImagePlugin import IFDRational

XMP_APP1_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"


def dji_xmp(**props: float | str) -> bytes:
    """An XMP packet with ``drone-dji:<name>="<value>"`` attributes (DJI's own layout)."""
    attrs = " ".join(
        f'drone-dji:{k}="{v:+.6f}"' if isinstance(v, float) else f'drone-dji:{k}="{v}"'
        for k, v in props.items()
    )
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        f'<rdf:Description rdf:about="DJI Meta Data" xmlns:drone-dji="http://www.dji.com/drone-dji/1.0/" {attrs}/>'
        '</rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
    ).encode()


def _dms(value: float) -> tuple[IFDRational, IFDRational, IFDRational]:
    value = abs(value)
    degrees = int(value)
    minutes = int((value - degrees) * 60)
    seconds = (value - degrees - minutes / 60) * 3600
    return IFDRational(degrees), IFDRational(minutes), IFDRational(round(seconds * 10000), 10000)


def exif_bytes(
    *,
    lat: float | None,
    lon: float | None,
    alt: float | None = None,
    make: str = "DJI",
    model: str = "FC6310",
    when: str = "2024:06:01 10:11:12",
    focal_mm: float = 8.8,
) -> bytes:
    """EXIF (TIFF-structured) bytes with camera, time and a GPS IFD when ``lat``/``lon`` are given."""
    exif = Image.Exif()
    exif[0x010F] = make
    exif[0x0110] = model
    sub = exif.get_ifd(0x8769)
    sub[0x9003] = when
    sub[0x920A] = IFDRational(round(focal_mm * 100), 100)
    if lat is not None and lon is not None:
        gps = exif.get_ifd(0x8825)
        gps[1] = "N" if lat >= 0 else "S"
        gps[2] = _dms(lat)
        gps[3] = "E" if lon >= 0 else "W"
        gps[4] = _dms(lon)
        if alt is not None:
            gps[5] = b"\x00" if alt >= 0 else b"\x01"
            gps[6] = IFDRational(round(abs(alt) * 100), 100)
    return exif.tobytes()


def insert_app1_xmp(jpeg: bytes, xmp: bytes) -> bytes:
    """``jpeg`` with an XMP APP1 segment inserted right after SOI."""
    payload = XMP_APP1_HEADER + xmp
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


def drone_jpeg(
    *,
    seed: int = 0,
    size: tuple[int, int] = (64, 48),
    lat: float | None = 52.0,
    lon: float | None = 4.0,
    alt: float | None = 60.0,
    pitch: float = -90.0,
    quality: int = 85,
    noise: bool = False,
    xmp_gps: bool = True,
) -> bytes:
    """A JPEG (``size`` = width, height) with EXIF GPS/camera and DJI XMP; distinct bytes per ``seed``.

    ``noise`` fills the frame with random texture (realistic compressed size ~ 1.5 bits/pixel at q85).
    """
    rng = np.random.default_rng(seed)
    width, height = size
    if noise:
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    else:
        base = rng.integers(0, 256, 3, dtype=np.uint8)
        pixels = np.broadcast_to(base, (height, width, 3)).copy()
        pixels[: height // 2, : width // 2] = 255 - base
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(
        buffer, "JPEG", quality=quality, exif=exif_bytes(lat=lat, lon=lon, alt=alt)
    )
    props: dict[str, float | str] = {
        "RelativeAltitude": 40.0,
        "GimbalPitchDegree": float(pitch),
        "GimbalYawDegree": 12.5,
        "GimbalRollDegree": 0.0,
        "FlightYawDegree": 13.1,
        "FlightPitchDegree": -1.5,
        "FlightRollDegree": 0.4,
        "CalibratedFocalLength": 3666.67,
        "CalibratedOpticalCenterX": 2736.0,
        "CalibratedOpticalCenterY": 1824.0,
    }
    if xmp_gps and lat is not None and lon is not None:
        props.update(
            {"GpsLatitude": float(lat), "GpsLongitude": float(lon), "AbsoluteAltitude": float(alt or 0)}
        )
    return insert_app1_xmp(buffer.getvalue(), dji_xmp(**props))


def thermal_tiff(
    *, seed: int = 0, size: tuple[int, int] = (64, 48), lat: float = 52.0, lon: float = 4.0, alt: float = 60.0
) -> bytes:
    """A single-channel uint16 radiometric TIFF (centikelvin, ~20-40 °C) with DJI XMP in tag 700."""
    rng = np.random.default_rng(seed)
    width, height = size
    centikelvin = rng.integers(29315, 31315, (height, width), dtype=np.uint16)
    xmp = dji_xmp(
        GpsLatitude=float(lat), GpsLongitude=float(lon), AbsoluteAltitude=float(alt), GimbalPitchDegree=-90.0
    )
    buffer = io.BytesIO()
    Image.fromarray(centikelvin).save(buffer, "TIFF", tiffinfo={700: xmp})
    return buffer.getvalue()


def write_flight(folder: Path, count: int, *, start_seed: int = 0, **kwargs: object) -> list[Path]:
    """Write ``count`` distinct ``DJI_0001.JPG``... into ``folder``; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"DJI_{i + 1:04d}.JPG"
        lat = 52.0 + i * 1e-4
        path.write_bytes(drone_jpeg(seed=start_seed + i, lat=lat, **kwargs))  # type: ignore[arg-type]
        paths.append(path)
    return paths

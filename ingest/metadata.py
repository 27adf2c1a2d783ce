"""Check one image file and read what a drone wrote into it: EXIF (Pillow) and the DJI XMP packet.

:func:`probe_image` takes the file's bytes and returns an :class:`ImageProbe` (the manifest record fields and
warnings), or raises :class:`Rejected` with a stable ``reason`` code and a sentence for people:

=====================  ===================================================================================
reason                 when
=====================  ===================================================================================
``empty_file``         zero bytes
``not_an_image``       no image decoder recognises the bytes (a text file named ``.jpg``)
``unsupported_format`` a real image, but not JPEG, PNG or TIFF (GIF, BMP, WebP, HEIC, DNG ...)
``too_many_pixels``    width × height above ``settings.max_image_pixels``; checked from the header, before
                       any decoding (decompression-bomb guard)
``corrupt``            truncated or corrupt: the header parses but the pixels do not decode to the end
=====================  ===================================================================================

Broken EXIF, a missing or impossible GPS position and an R-JPEG whose radiometric data cannot be read are
*warnings*: the image is kept and the warning is recorded in its manifest record.

Checks (``check``): ``"decode"`` (default) decodes every image to the end — JPEGs at 1/8 scale, luminance
only (Pillow draft mode), which still entropy-decodes every byte, so truncation *and* corrupt data are caught.
``"structure"`` is the fast path for JPEGs on slow machines: the marker segments are walked and every scan
must run to an EOI marker (:func:`jpeg_structure_problem`), which catches truncated and cut files but not bit
errors inside the compressed data; PNG and TIFF are still decoded. The check used is recorded (``checked``).
"""

from __future__ import annotations

import io
import math
import re
import struct
import threading
import warnings
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from PIL import Image, UnidentifiedImageError

SUPPORTED_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "TIFF": "image/tiff"}
#: (bits per sample, channels) per Pillow mode.
MODE_DEPTH: dict[str, tuple[int, int]] = {
    "1": (1, 1),
    "L": (8, 1),
    "P": (8, 1),
    "LA": (8, 2),
    "RGB": (8, 3),
    "YCbCr": (8, 3),
    "LAB": (8, 3),
    "HSV": (8, 3),
    "RGBA": (8, 4),
    "RGBX": (8, 4),
    "CMYK": (8, 4),
    "I;16": (16, 1),
    "I;16L": (16, 1),
    "I;16B": (16, 1),
    "I;16N": (16, 1),
    "I": (32, 1),
    "F": (32, 1),
}
_XMP_START = b"<x:xmpmeta"
_XMP_END = b"</x:xmpmeta>"
_DJI_ATTR = re.compile(r"drone-dji:(\w+)\s*=\s*\"([^\"]*)\"")
_DJI_ELEM = re.compile(r"<drone-dji:(\w+)>([^<]*)</drone-dji:\1>")
_XMP_DATE = re.compile(r"(?:xmp:CreateDate|exif:DateTimeOriginal)\s*=\s*\"([^\"]+)\"")
_EXIF_LOCK = threading.Lock()
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, struct.error, EOFError, zlib.error, IndexError, TypeError)

# EXIF tag ids
_MAKE, _MODEL, _ORIENTATION, _DATETIME = 0x010F, 0x0110, 0x0112, 0x0132
_EXIF_IFD, _GPS_IFD = 0x8769, 0x8825
_DATETIME_ORIGINAL, _OFFSET_TIME_ORIGINAL = 0x9003, 0x9011
_FOCAL_LENGTH, _FOCAL_35MM = 0x920A, 0xA405
_BITS_PER_SAMPLE, _SAMPLES_PER_PIXEL = 258, 277


class Rejected(Exception):
    """The file cannot be ingested. ``reason`` is a stable code (see module docstring), ``detail`` a sentence."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass
class ImageProbe:
    """What one image tells about itself. ``fields`` are the manifest record's image fields."""

    fields: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


def _num(value: Any) -> float | None:
    """A finite float from an EXIF rational / number / numeric string, else None."""
    try:
        number = float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return number if math.isfinite(number) else None


def _dms(value: Any) -> float | None:
    """Degrees from an EXIF (deg, min, sec) triple."""
    try:
        d, m, s = (_num(v) for v in value)
    except (TypeError, ValueError):
        return None
    if d is None or m is None or s is None:
        return None
    return d + m / 60.0 + s / 3600.0


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    text = str(value).strip("\x00 ").strip()
    return text or None


def parse_xmp(data: bytes) -> dict[str, Any]:
    """The ``drone-dji:*`` properties of the first XMP packet in ``data`` (JPEG APP1 or TIFF tag 700).

    Numeric values become floats (``"+90.00"`` → 90.0); others stay strings. Attribute and element forms are
    both read. Returns ``{}`` when there is no packet.
    """
    start = data.find(_XMP_START)
    if start < 0:
        return {}
    end = data.find(_XMP_END, start)
    packet = data[start : end + len(_XMP_END) if end >= 0 else start + 65536].decode(
        "utf-8", errors="replace"
    )
    out: dict[str, Any] = {}
    for name, raw in [*_DJI_ATTR.findall(packet), *_DJI_ELEM.findall(packet)]:
        number = _num(raw.strip())
        out[name] = number if number is not None else raw.strip()
    date = _XMP_DATE.search(packet)
    if date:
        out.setdefault("_xmp_date", date.group(1))
    return out


def _capture_time(when: str | None, offset: str | None) -> str | None:
    """EXIF ``YYYY:MM:DD HH:MM:SS`` (+ ``±HH:MM``) or an XMP ISO date → ISO 8601 (naive = camera local time)."""
    if not when:
        return None
    text = when.strip()
    for fmt in ("%Y:%m:%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f"):
        try:
            stamp = datetime.strptime(text[: 26 if "." in text else 19], fmt)
            break
        except ValueError:
            continue
    else:
        try:
            return datetime.fromisoformat(text).isoformat()
        except ValueError:
            return None
    iso = stamp.isoformat()
    if offset and re.fullmatch(r"[+-]\d\d:\d\d", offset.strip()):
        iso += offset.strip()
    return iso


def _valid_position(lat: float | None, lon: float | None) -> tuple[bool, str]:
    if lat is None or lon is None:
        return False, "missing"
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        return False, f"impossible position lat={lat:.6f}, lon={lon:.6f}"
    if lat == 0.0 and lon == 0.0:
        return False, "position 0,0 (no GPS fix)"
    return True, ""


def _read_exif(
    image: Image.Image, fields: dict[str, Any], warn: list[str], earlier: list[str]
) -> dict[str, Any]:
    """Fill camera, time and orientation fields from EXIF; return the GPS IFD (may be empty)."""
    try:
        with _EXIF_LOCK, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            exif = image.getexif()
            exif_ifd = dict(exif.get_ifd(_EXIF_IFD)) if _EXIF_IFD in exif else {}
            gps = dict(exif.get_ifd(_GPS_IFD)) if _GPS_IFD in exif else {}
    except Exception as exc:  # Pillow raises many types on broken EXIF; the image itself may be fine
        warn.append(f"EXIF unreadable ({type(exc).__name__}: {exc}); camera, time and GPS from EXIF missing")
        return {}
    problems = sorted(
        {*earlier, *(str(w.message).strip() for w in caught if issubclass(w.category, UserWarning))}
    )
    if problems:
        warn.append(f"EXIF damaged: {'; '.join(problems)}")
    raw = image.info.get("exif") if image.format == "JPEG" else None
    if raw and len(exif) == 0 and not problems:
        warn.append(
            f"EXIF segment present ({len(raw)} bytes) but unreadable; camera, time and GPS from EXIF missing"
        )
    fields["make"] = _text(exif.get(_MAKE))
    fields["model"] = _text(exif.get(_MODEL))
    orientation = exif.get(_ORIENTATION)
    fields["orientation"] = int(orientation) if isinstance(orientation, int) else None
    fields["focal_length_mm"] = _num(exif_ifd.get(_FOCAL_LENGTH))
    focal35 = _num(exif_ifd.get(_FOCAL_35MM))
    fields["focal_length_35mm"] = focal35
    when = _text(exif_ifd.get(_DATETIME_ORIGINAL)) or _text(exif.get(_DATETIME))
    fields["capture_time"] = _capture_time(when, _text(exif_ifd.get(_OFFSET_TIME_ORIGINAL)))
    if when and fields["capture_time"] is None:
        warn.append(f"EXIF capture time {when!r} is not a date")
    if image.format == "TIFF":
        bits = exif.get(_BITS_PER_SAMPLE)
        if isinstance(bits, tuple | list) and bits:
            bits = bits[0]
        if isinstance(bits, int):
            fields["bit_depth"] = bits
    return gps


def _gps_from_exif(gps: dict[int, Any]) -> tuple[float | None, float | None, float | None]:
    lat = _dms(gps.get(2)) if gps.get(2) is not None else None
    lon = _dms(gps.get(4)) if gps.get(4) is not None else None
    if lat is not None and _text(gps.get(1)) in {"S", "s"}:
        lat = -lat
    if lon is not None and _text(gps.get(3)) in {"W", "w"}:
        lon = -lon
    alt = _num(gps.get(6))
    if alt is not None and gps.get(5) in (1, b"\x01"):
        alt = -alt
    return lat, lon, alt


def _is_rjpeg(image: Image.Image, dji: dict[str, Any]) -> bool:
    """FLIR R-JPEG (APP1 "FLIR" segment) or DJI R-JPEG (XMP ImageSource=InfraredCamera)."""
    for marker, payload in getattr(image, "applist", []):
        if marker == "APP1" and payload.startswith(b"FLIR\x00"):
            return True
    return str(dji.get("ImageSource", "")).lower() == "infraredcamera"


CHECKS = ("decode", "structure")
_SCAN_END = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})


def jpeg_structure_problem(data: bytes) -> str | None:
    """Walk a JPEG's marker segments; None when it is well formed up to its EOI marker, else what is wrong.

    Each segment length must fit in the file and every entropy-coded scan must end at a marker (searched in
    C by a regex, so a 10 MB file takes milliseconds). Does not detect bit errors inside the scan data.
    """
    size = len(data)
    if data[:2] != b"\xff\xd8":
        return "no JPEG start marker"
    i = 2
    scans = 0
    while i < size:
        if data[i] != 0xFF:
            return f"expected a marker at byte {i}"
        while i < size and data[i] == 0xFF:  # fill bytes
            i += 1
        if i >= size:
            break
        marker = data[i]
        i += 1
        if marker == 0xD9:
            return None if scans else "end marker before any image data"
        if marker in _STANDALONE:
            continue
        if i + 2 > size:
            break
        length = int.from_bytes(data[i : i + 2], "big")
        if length < 2 or i + length > size:
            return f"segment 0x{marker:02X} at byte {i - 2} runs past the end of the file"
        i += length
        if marker == 0xDA:  # start of scan: entropy-coded data follows up to the next real marker
            scans += 1
            found = _SCAN_END.search(data, i)
            if found is None:
                return "the compressed image data is cut off (no end marker)"
            i = found.start()
    return "the file ends before the JPEG end marker"


def probe_image(data: bytes, name: str, max_pixels: int, check: str = "decode") -> ImageProbe:
    """Validate and describe one image file.

    Args:
        data: the whole file.
        name: its relative path (for messages and the extension check).
        max_pixels: width × height above which the file is refused before decoding.
        check: ``"decode"`` or ``"structure"`` (JPEG only; see the module docstring).

    Raises:
        Rejected: see the module docstring for the reasons.
        ValueError: an unknown ``check``.
    """
    if check not in CHECKS:
        raise ValueError(f"check must be one of {', '.join(CHECKS)}, got {check!r}")
    if not data:
        raise Rejected("empty_file", "the file is empty (0 bytes)")
    warn: list[str] = []
    try:
        # Pillow reports damaged EXIF through warnings.warn; catch_warnings is process-global, hence the lock.
        with _EXIF_LOCK, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise Rejected("too_many_pixels", f"{exc} (header checked before decoding)") from exc
    except (UnidentifiedImageError, ImportError) as exc:
        # ImportError: ultralytics' replacement of Image.open, when imported without detection.offline, tries to
        # import pi-heif for files Pillow cannot identify: the same verdict as UnidentifiedImageError.
        looks = (
            data[:3] == b"\xff\xd8\xff"
            or data[:8] == b"\x89PNG\r\n\x1a\n"
            or data[:4] in (b"II*\x00", b"MM\x00*")
        )
        if looks:
            raise Rejected("corrupt", "the header is damaged: no decoder can read it") from exc
        raise Rejected("not_an_image", "not an image: no decoder recognises its bytes") from exc
    except _DECODE_ERRORS as exc:
        raise Rejected("corrupt", f"the header cannot be read ({type(exc).__name__}: {exc})") from exc

    with image:
        fmt = image.format or "?"
        if fmt not in SUPPORTED_FORMATS:
            raise Rejected("unsupported_format", f"{fmt} images are not supported; use JPEG, PNG or TIFF")
        width, height = image.size
        if width <= 0 or height <= 0:
            raise Rejected("corrupt", f"the header gives an empty size {width}x{height}")
        if width * height > max_pixels:
            raise Rejected(
                "too_many_pixels",
                f"{width}x{height} = {width * height:,} pixels is above max_image_pixels={max_pixels:,} "
                "(checked from the header, before decoding)",
            )
        ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
        expected = {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "tif": "TIFF", "tiff": "TIFF"}.get(ext)
        if expected and expected != fmt:
            warn.append(f"extension .{ext} but the content is {fmt}")
        mode = image.mode
        bit_depth, channels = MODE_DEPTH.get(mode, (8, len(image.getbands())))
        fields: dict[str, Any] = {
            "format": fmt,
            "content_type": SUPPORTED_FORMATS[fmt],
            "width": width,
            "height": height,
            "mode": mode,
            "bit_depth": bit_depth,
            "channels": channels,
        }
        open_problems = [
            str(w.message).strip()
            for w in caught
            if not issubclass(w.category, Image.DecompressionBombWarning)
        ]
        gps_ifd = _read_exif(image, fields, warn, open_problems)
        dji = parse_xmp(data)
        xmp_date = dji.pop("_xmp_date", None)
        if fields.get("capture_time") is None and xmp_date:
            fields["capture_time"] = _capture_time(xmp_date, None)
        frames = getattr(image, "n_frames", 1)
        if frames > 1:
            warn.append(f"{frames} frames/pages: only the first is used")
        is_rjpeg = fmt == "JPEG" and _is_rjpeg(image, dji)

        # -- decode to the end (catches truncation and corrupt data), or walk a JPEG's structure
        if fmt == "JPEG" and check == "structure":
            problem = jpeg_structure_problem(data)
            if problem is not None:
                raise Rejected("corrupt", f"truncated or corrupt JPEG: {problem}")
        else:
            try:
                if fmt == "JPEG":
                    # 1/8 scale, luminance only: every block is still entropy-decoded (the check), ~30 % less CPU
                    target = "L" if image.mode in ("RGB", "YCbCr", "L") else image.mode
                    image.draft(target, (max(1, width // 8), max(1, height // 8)))
                image.load()
            except Image.DecompressionBombError as exc:
                raise Rejected("too_many_pixels", str(exc)) from exc
            except _DECODE_ERRORS as exc:
                detail = f"truncated or corrupt pixel data ({type(exc).__name__}: {exc})"
                raise Rejected("corrupt", detail) from exc
        if fmt == "JPEG" and not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
            warn.append("JPEG end marker missing after the image data (trailing bytes)")

    # -- position: EXIF GPS first, XMP as fallback
    lat, lon, alt = _gps_from_exif(gps_ifd)
    source = "exif"
    ok, why = _valid_position(lat, lon)
    if not ok:
        xlat = _num(dji.get("GpsLatitude"))
        xlon = _num(dji.get("GpsLongitude", dji.get("GpsLongtitude")))  # DJI firmware misspells it
        xok, xwhy = _valid_position(xlat, xlon)
        if xok:
            lat, lon, alt, source = xlat, xlon, _num(dji.get("AbsoluteAltitude")), "xmp"
            if why != "missing":
                warn.append(f"EXIF GPS {why}; position taken from the DJI XMP")
        else:
            if why == "missing" and xwhy == "missing":
                warn.append("no GPS position (neither EXIF GPS nor DJI XMP)")
            else:
                warn.append(f"GPS position unusable: EXIF {why}, XMP {xwhy}")
            lat = lon = alt = None
            source = None
    if alt is None and source is not None:
        alt = _num(dji.get("AbsoluteAltitude"))

    radiometric = fmt == "TIFF" and fields["bit_depth"] == 16 and fields["channels"] == 1
    note = None
    if radiometric:
        note = "16-bit single-channel TIFF: radiometric, centikelvin (detection.radiometry)"
    elif is_rjpeg:
        note = "thermal R-JPEG (FLIR/DJI): no installed library decodes its radiometric data; kept as 8-bit"
        warn.append(note)
    fields.update(
        {
            "checked": check if fmt == "JPEG" else "decode",
            "radiometric": radiometric,
            "radiometric_note": note,
            "lat": lat,
            "lon": lon,
            "alt_m": alt,
            "gps_source": source,
            "relative_altitude_m": _num(dji.get("RelativeAltitude")),
            "gimbal_yaw_deg": _num(dji.get("GimbalYawDegree")),
            "gimbal_pitch_deg": _num(dji.get("GimbalPitchDegree")),
            "gimbal_roll_deg": _num(dji.get("GimbalRollDegree")),
            "flight_yaw_deg": _num(dji.get("FlightYawDegree")),
            "flight_pitch_deg": _num(dji.get("FlightPitchDegree")),
            "flight_roll_deg": _num(dji.get("FlightRollDegree")),
            "calibrated_focal_length_px": _num(dji.get("CalibratedFocalLength")),
            "optical_center_x_px": _num(dji.get("CalibratedOpticalCenterX")),
            "optical_center_y_px": _num(dji.get("CalibratedOpticalCenterY")),
            "dji": dji,
        }
    )
    for key in ("make", "model", "orientation", "focal_length_mm", "focal_length_35mm", "capture_time"):
        fields.setdefault(key, None)
    return ImageProbe(fields=fields, warnings=warn)

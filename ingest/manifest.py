"""The flight manifest: one JSON object per flight at ``raw/{site}/{flight}/manifest.json``.

It is written by ``skyinspect ingest`` last, in a single PUT of the complete document, so a reader sees the
previous manifest or the new one, never half of one. Schema (``schema_version`` "1")::

    {
      "schema_version": "1",
      "site": str, "flight": str,
      "kind": "pv-thermal" | "pv-rgb" | "wind-rgb" | "unknown",
      "kind_decision": {"method": "given" | "radiometric" | "gimbal_pitch" | "undecided", "detail": str},
      "created": ISO-8601 UTC (first ingest), "updated": ISO-8601 UTC (this ingest),
      "source": {"path": str (the folder ingested, as given), "host": str},
      "counts": {"images", "names", "rejected", "skipped", "warnings", "bytes"},
      "conditions": {irradiance_w_m2, ambient_temp_c, wind_speed_m_s, cloud_cover_okta} | null,
      "images": [ImageRecord, ...]        (sorted by path),
      "rejected": [{"path", "reason", "detail", "quarantine_key"}, ...],
      "skipped": [{"path", "reason"}, ...]
    }

ImageRecord (one per distinct content; identical bytes under several names are stored once)::

    key                         object key of the image (raw/{site}/{flight}/images/{path})
    path                        relative path the object was stored under ("/"-separated, NFC)
    paths                       every relative path with these bytes (sorted; includes ``path``)
    size, sha256                bytes and their SHA-256 (hex); also in the object's x-amz-meta-sha256
    format, content_type        "JPEG" | "PNG" | "TIFF", its MIME type
    width, height, mode         pixels, Pillow mode ("RGB", "L", "I;16" ...)
    bit_depth, channels         bits per sample, samples per pixel
    radiometric, radiometric_note
                                True for 16-bit single-channel TIFFs (centikelvin, detection.radiometry)
    capture_time                ISO-8601 (with offset when the camera wrote one; else camera local time)
    lat, lon, alt_m, gps_source WGS-84 degrees, metres above sea level, "exif" | "xmp" | null
    relative_altitude_m         height above take-off (DJI XMP RelativeAltitude)
    make, model, orientation, focal_length_mm, focal_length_35mm
    gimbal_yaw_deg, gimbal_pitch_deg, gimbal_roll_deg, flight_yaw_deg, flight_pitch_deg, flight_roll_deg
    calibrated_focal_length_px, optical_center_x_px, optical_center_y_px
    dji                         every drone-dji:* XMP property (numbers as floats)
    warnings                    [str]: broken EXIF, missing/impossible GPS, unreadable R-JPEG ...

Kind decision (``--kind auto``): when more than half of the images are radiometric, ``pv-thermal``; otherwise the
median gimbal pitch of the images decides: at or below :data:`NADIR_PITCH_DEG` (camera looking down) ``pv-rgb``,
above it (looking at a tower or blade) ``wind-rgb``; without any pitch the kind is ``unknown``.
"""

from __future__ import annotations

import json
import math
import statistics
from typing import Any

from detection.taxonomy import Domain

SCHEMA_VERSION = "1"
NADIR_PITCH_DEG = -60.0
KINDS = tuple(d.value for d in Domain)
UNKNOWN_KIND = "unknown"
CONDITIONS_FILE = "conditions.json"
#: field -> (minimum, maximum, integer?)
CONDITION_FIELDS: dict[str, tuple[float, float, bool]] = {
    "irradiance_w_m2": (0.0, 1500.0, False),
    "ambient_temp_c": (-60.0, 60.0, False),
    "wind_speed_m_s": (0.0, 75.0, False),
    "cloud_cover_okta": (0.0, 8.0, True),
}


class ManifestError(ValueError):
    """A manifest or a sidecar that does not follow the schema; the message names the field."""


def parse_conditions(data: bytes, name: str = CONDITIONS_FILE) -> dict[str, float | int]:
    """Validate a ``conditions.json`` sidecar.

    Raises:
        ManifestError: not JSON, not an object, a field missing, not a number, or out of range.
    """
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{name}: not valid JSON ({exc})") from exc
    if not isinstance(obj, dict):
        raise ManifestError(f"{name}: expected a JSON object with {', '.join(CONDITION_FIELDS)}")
    out: dict[str, float | int] = {}
    for key, (low, high, integer) in CONDITION_FIELDS.items():
        if key not in obj:
            raise ManifestError(f"{name}: field {key!r} is missing")
        value = obj[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ManifestError(f"{name}: field {key!r} must be a number, got {value!r}")
        if integer and value != int(value):
            raise ManifestError(f"{name}: field {key!r} must be a whole number (okta), got {value!r}")
        if not low <= value <= high:
            raise ManifestError(f"{name}: field {key!r}={value!r} is outside [{low:g}, {high:g}]")
        out[key] = int(value) if integer else float(value)
    return out


def decide_kind(records: list[dict[str, Any]], given: str = "auto") -> tuple[str, dict[str, str]]:
    """The flight kind and how it was decided (see the module docstring).

    Raises:
        ManifestError: ``given`` is not "auto" or a known kind.
    """
    if given != "auto":
        if given not in KINDS:
            raise ManifestError(f"kind {given!r} is not one of auto, {', '.join(KINDS)}")
        return given, {"method": "given", "detail": "given by the caller (--kind)"}
    if not records:
        return UNKNOWN_KIND, {"method": "undecided", "detail": "no usable images; pass --kind"}
    radiometric = sum(1 for r in records if r.get("radiometric"))
    if radiometric * 2 > len(records):
        return Domain.PV_THERMAL.value, {
            "method": "radiometric",
            "detail": f"{radiometric} of {len(records)} images are 16-bit single-channel radiometric TIFFs",
        }
    pitches = [r["gimbal_pitch_deg"] for r in records if r.get("gimbal_pitch_deg") is not None]
    if not pitches:
        return UNKNOWN_KIND, {
            "method": "undecided",
            "detail": "no radiometric majority and no gimbal pitch in the XMP; pass --kind",
        }
    median = statistics.median(pitches)
    kind = Domain.PV_RGB if median <= NADIR_PITCH_DEG else Domain.WIND
    view = "nadir (looking down)" if kind is Domain.PV_RGB else "oblique/horizontal"
    return kind.value, {
        "method": "gimbal_pitch",
        "detail": f"median gimbal pitch {median:.1f}° over {len(pitches)} images: {view}; "
        f"threshold {NADIR_PITCH_DEG:.0f}°",
    }


def validate_manifest(obj: Any, where: str = "manifest") -> dict[str, Any]:
    """Check the shape a reader relies on and return the manifest.

    Raises:
        ManifestError: wrong schema version or a missing top-level field.
    """
    if not isinstance(obj, dict):
        raise ManifestError(f"{where}: expected a JSON object")
    version = obj.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ManifestError(f"{where}: schema_version {version!r}, this code reads {SCHEMA_VERSION!r}")
    for key in ("site", "flight", "kind", "images", "rejected", "skipped", "counts"):
        if key not in obj:
            raise ManifestError(f"{where}: field {key!r} is missing")
    return obj


def read_manifest(store: Any, site: str, flight: str) -> dict[str, Any]:
    """Load and validate a flight's manifest from an :class:`objectstore.client.ObjectStore`.

    Raises:
        objectstore.client.ObjectNotFound: the flight was never ingested.
        ManifestError: the manifest does not follow the schema.
    """
    from objectstore.keys import manifest_key

    key = manifest_key(site, flight)
    return validate_manifest(store.get_json(key), where=store.url(key))

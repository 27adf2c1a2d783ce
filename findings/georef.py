"""Georeferencing: from a frame's metadata and a pixel to a ground point (PV) or a point on a blade (wind).

Convention (the one the synthetic generator renders with, :mod:`datasets.synth.geo`; DJI semantics):

* Local frame: East-North-Up metres about an origin (lat0, lon0), the ground at ``u = 0``; WGS84 ↔ local by the
  tangent-plane approximation with the WGS84 radii of curvature at lat0 (error < 1 cm over 1 km).
* Camera: pinhole without distortion. ``f`` = XMP CalibratedFocalLength (px), principal point = XMP
  CalibratedOpticalCenterX/Y; without them ``f`` = focal length (mm) / pixel pitch (mm) from a known camera, or
  from the 35 mm-equivalent focal length (``f = f35 * diagonal_px / 43.27``), principal point = image centre.
  Pixel centres are at integer coordinates; a box ``[x1, y1, x2, y2)`` has pixel edges, so its centre pixel
  coordinate is ``((x1 + x2) / 2 - 0.5, (y1 + y2) / 2 - 0.5)``.
* Pose: camera centre = GPS (XMP GpsLatitude/GpsLongitude, preferred for their 9 decimals, else EXIF), height
  above the ground = RelativeAltitude. Attitude = GimbalYaw (heading of the optical axis, clockwise from north;
  for a nadir frame the heading of the image's up direction), GimbalPitch (-90 = nadir), GimbalRoll (about the
  optical axis, positive turns image-up toward image-right). The full pitch and roll are used, so small tilts
  of a nominally nadir frame are corrected exactly. Flight* angles (the aircraft body) do not move the image.
* A pixel's ray is ``d = R [(u - cx) / f, (v - cy) / f, 1]`` with ``R``'s columns image right, image down and
  optical axis in ENU; PV: intersected with the ground plane ``u = 0``; wind: with the blade side's plane.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

WGS84_A = 6378137.0
WGS84_E2 = 6.69437999014e-3
FULL_FRAME_DIAGONAL_MM = 43.2666

#: model → pixel pitch in µm at the native resolution (width in px), for frames without calibrated intrinsics.
KNOWN_CAMERAS: dict[str, tuple[float, int]] = {
    "ZH20T": (12.0, 640),
    "ZH20": (3.3, 4000),
    "M3E": (3.3, 4000),
    "M3T": (12.0, 640),
    "XT2": (17.0, 640),
}


class GeorefError(ValueError):
    """A frame that cannot be georeferenced; the message says which field is missing or unusable."""


@dataclass(frozen=True)
class LocalFrame:
    """A local East-North-Up tangent plane about (lat0, lon0)."""

    lat0: float
    lon0: float

    def metres_per_degree(self) -> tuple[float, float]:
        """(metres per degree of latitude, metres per degree of longitude) at the origin."""
        phi = math.radians(self.lat0)
        w = 1.0 - WGS84_E2 * math.sin(phi) ** 2
        m = WGS84_A * (1.0 - WGS84_E2) / w**1.5
        n = WGS84_A / math.sqrt(w)
        return m * math.pi / 180.0, n * math.cos(phi) * math.pi / 180.0

    def to_local(self, lat: Any, lon: Any) -> tuple[np.ndarray, np.ndarray]:
        """(lat, lon) degrees (scalars or arrays) → (east, north) metres."""
        mlat, mlon = self.metres_per_degree()
        return (np.asarray(lon, float) - self.lon0) * mlon, (np.asarray(lat, float) - self.lat0) * mlat

    def to_wgs84(self, e: Any, n: Any) -> tuple[np.ndarray, np.ndarray]:
        """(east, north) metres → (lat, lon) degrees."""
        mlat, mlon = self.metres_per_degree()
        return self.lat0 + np.asarray(n, float) / mlat, self.lon0 + np.asarray(e, float) / mlon


def rotation(yaw_deg: float, pitch_deg: float, roll_deg: float) -> np.ndarray:
    """(3, 3) matrix whose columns are the image right, image down and optical axis in ENU (DJI angles)."""
    y, p, r = (math.radians(a) for a in (yaw_deg, pitch_deg, roll_deg))
    h = np.array([math.sin(y), math.cos(y), 0.0])
    z = np.array([0.0, 0.0, 1.0])
    axis = math.cos(p) * h + math.sin(p) * z
    down = math.sin(p) * h - math.cos(p) * z
    right = np.cross(down, axis)
    cr, sr = math.cos(r), math.sin(r)
    return np.stack([cr * right + sr * down, -sr * right + cr * down, axis], axis=1)


@dataclass(frozen=True)
class FrameCamera:
    """One frame's camera: intrinsics, pose in a local frame, and how the intrinsics were obtained."""

    width: int
    height: int
    f_px: float
    cx: float
    cy: float
    e: float
    n: float
    u: float
    yaw_deg: float
    pitch_deg: float
    roll_deg: float
    intrinsics_source: str

    @property
    def centre(self) -> np.ndarray:
        return np.array([self.e, self.n, self.u])

    def R(self) -> np.ndarray:
        """(3, 3) rotation (columns: image right, image down, optical axis in ENU); computed once."""
        return self._R

    @cached_property
    def _R(self) -> np.ndarray:
        return rotation(self.yaw_deg, self.pitch_deg, self.roll_deg)

    def rays(self, uv: np.ndarray) -> np.ndarray:
        """(N, 2) pixel-centre coordinates → (N, 3) ENU ray directions with unit depth along the optical axis."""
        uv = np.asarray(uv, float).reshape(-1, 2)
        cam = np.stack(
            [(uv[:, 0] - self.cx) / self.f_px, (uv[:, 1] - self.cy) / self.f_px, np.ones(len(uv))], 1
        )
        return cam @ self.R().T

    def pixel_to_ground(self, uv: np.ndarray, ground_u: float = 0.0) -> np.ndarray:
        """(N, 2) pixels → (N, 2) ground (e, n) metres on the plane ``u = ground_u``; NaN where the ray misses."""
        d = self.rays(uv)
        with np.errstate(divide="ignore", invalid="ignore"):
            lam = (ground_u - self.u) / d[:, 2]
        lam = np.where(lam > 0, lam, np.nan)
        return self.centre[None, :2] + lam[:, None] * d[:, :2]

    def ground_to_pixel(self, en: np.ndarray, ground_u: float = 0.0) -> np.ndarray:
        """(N, 2) ground (e, n) metres → (N, 2) pixel-centre coordinates (NaN behind the camera)."""
        en = np.asarray(en, float).reshape(-1, 2)
        pts = np.concatenate([en, np.full((len(en), 1), ground_u)], 1)
        return self.world_to_pixel(pts)

    def world_to_pixel(self, pts: np.ndarray) -> np.ndarray:
        """(N, 3) ENU points → (N, 2) pixels (NaN for points behind the camera)."""
        rel = (np.asarray(pts, float).reshape(-1, 3) - self.centre) @ self.R()
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = rel[:, :2] / rel[:, 2:3] * self.f_px + np.array([self.cx, self.cy])
        uv[rel[:, 2] <= 0] = np.nan
        return uv

    def gsd_at(self, depth_m: float) -> float:
        """Metres per pixel at ``depth_m`` along the optical axis."""
        return depth_m / self.f_px


def box_centre_px(xyxy: list[float] | np.ndarray) -> np.ndarray:
    """A box ``[x1, y1, x2, y2)`` in pixel edges → (2,) its centre in pixel-centre coordinates."""
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    return np.array([(x1 + x2) / 2 - 0.5, (y1 + y2) / 2 - 0.5])


def box_corners_px(xyxy: list[float] | np.ndarray) -> np.ndarray:
    """(4, 2) corners of a box in pixel-centre coordinates (outer pixel edges), clockwise from top-left."""
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    return np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]]) - 0.5


def _num(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def intrinsics(record: dict[str, Any], width: int, height: int) -> tuple[float, float, float, str]:
    """(f_px, cx, cy, source) of a manifest image record for a frame of ``width`` x ``height`` pixels.

    Raises:
        GeorefError: no calibrated focal length, no known camera and no 35 mm-equivalent focal length.
    """
    dji = record.get("dji") or {}
    f = _num(record.get("calibrated_focal_length_px")) or _num(dji.get("CalibratedFocalLength"))
    cx = _num(record.get("optical_center_x_px")) or _num(dji.get("CalibratedOpticalCenterX"))
    cy = _num(record.get("optical_center_y_px")) or _num(dji.get("CalibratedOpticalCenterY"))
    rec_w = int(record.get("width") or width)
    scale = width / rec_w if rec_w else 1.0
    centre = ((width - 1) / 2.0, (height - 1) / 2.0)
    if f:
        if cx is None or cy is None:
            cx, cy = (centre[0] / scale, centre[1] / scale)
        return f * scale, cx * scale, cy * scale, "xmp-calibrated"
    fmm = _num(record.get("focal_length_mm"))
    model = str(record.get("model") or "")
    if fmm and model in KNOWN_CAMERAS:
        pitch_um, native_w = KNOWN_CAMERAS[model]
        pitch_mm = pitch_um / 1000.0 * native_w / width
        return fmm / pitch_mm, centre[0], centre[1], f"focal {fmm} mm / pixel pitch of known camera {model}"
    f35 = _num(record.get("focal_length_35mm"))
    if f35:
        return (
            f35 * math.hypot(width, height) / FULL_FRAME_DIAGONAL_MM,
            centre[0],
            centre[1],
            "35mm-equivalent",
        )
    raise GeorefError(
        f"image {record.get('path')!r}: no CalibratedFocalLength in the XMP, camera model {model!r} unknown and "
        "no FocalLengthIn35mmFilm: cannot compute the focal length in pixels"
    )


def frame_camera(
    record: dict[str, Any],
    local: LocalFrame,
    width: int | None = None,
    height: int | None = None,
    ground_alt_m: float | None = None,
) -> FrameCamera:
    """The camera of one manifest image record in ``local`` (see the module docstring for the convention).

    Args:
        record: a manifest ImageRecord (ingest.manifest).
        local: the local frame to express the pose in.
        width, height: the frame size the detections refer to (default: the record's).
        ground_alt_m: ground altitude AMSL, used only when RelativeAltitude is missing.

    Raises:
        GeorefError: no GPS position, no height above ground, no gimbal attitude or no usable intrinsics.
    """
    dji = record.get("dji") or {}
    path = record.get("path")
    lat = _num(dji.get("GpsLatitude")) or _num(record.get("lat"))
    lon = _num(dji.get("GpsLongitude")) or _num(dji.get("GpsLongtitude")) or _num(record.get("lon"))
    if lat is None or lon is None or (lat == 0.0 and lon == 0.0):
        raise GeorefError(f"image {path!r}: no GPS position (neither EXIF GPS nor DJI XMP)")
    rel = _num(record.get("relative_altitude_m"))
    if rel is None:
        rel = _num(dji.get("RelativeAltitude"))
    if rel is None:
        alt = _num(record.get("alt_m"))
        if alt is None or ground_alt_m is None:
            raise GeorefError(
                f"image {path!r}: no RelativeAltitude in the XMP and no ground altitude to subtract from the "
                "GPS altitude: height above ground unknown"
            )
        rel = alt - ground_alt_m
    yaw = _num(record.get("gimbal_yaw_deg"))
    pitch = _num(record.get("gimbal_pitch_deg"))
    roll = _num(record.get("gimbal_roll_deg")) or 0.0
    if yaw is None:
        yaw = _num(record.get("flight_yaw_deg"))
    if yaw is None or pitch is None:
        raise GeorefError(f"image {path!r}: no gimbal yaw/pitch in the XMP: camera orientation unknown")
    w = int(width or record.get("width") or 0)
    h = int(height or record.get("height") or 0)
    if w <= 0 or h <= 0:
        raise GeorefError(f"image {path!r}: image size unknown")
    f, cx, cy, source = intrinsics(record, w, h)
    e, n = local.to_local(lat, lon)
    return FrameCamera(w, h, f, cx, cy, float(e), float(n), float(rel), yaw, pitch, roll, source)

"""Geodesy and camera geometry of the synthetic generator (the projection convention every stage relies on).

Local frame
    A site has a WGS84 origin (``lat0``, ``lon0``) and a ground altitude ``alt0`` (metres above mean sea level).
    Positions are metres in a local East-North-Up frame (``e``, ``n``, ``u``) with the ground at ``u = 0``.
    Conversion to WGS84 is the local tangent-plane approximation with the WGS84 radii of curvature at ``lat0``::

        lat = lat0 + n / M(lat0) * 180/pi          M = a (1 - e²) / (1 - e² sin² lat0) ** 1.5
        lon = lon0 + e / (N(lat0) cos lat0) * 180/pi   N = a / sqrt(1 - e² sin² lat0)

    (error below 1 cm over a 1 km site).

Camera (pinhole, no lens distortion)
    Intrinsics ``K = [[f, 0, cx], [0, f, cy], [0, 0, 1]]`` with ``f = focal_mm / pixel_pitch_mm`` (pixels) and the
    principal point at the image centre ``cx = (W - 1) / 2``, ``cy = (H - 1) / 2`` (pixel centres at integers).
    Orientation is DJI-style: ``yaw`` = heading of the optical axis' horizontal direction, clockwise from north
    (for a nadir camera: the heading of the image's *up* direction); ``pitch`` = elevation of the optical axis
    (-90 = nadir, 0 = horizontal); ``roll`` = rotation about the optical axis, positive turning the image's up
    direction toward its right. With ``h = (sin yaw, cos yaw, 0)``, ``r = (cos yaw, -sin yaw, 0)``, ``z = (0,0,1)``:

    * pitch -90, roll 0: image right = ``r``, image down = ``-h``, optical axis = ``-z``;
    * in general the optical axis is ``cos(p) h + sin(p) z`` and image down is ``sin(p) h - cos(p) z``
      (both rotated about the axis by ``roll``), image right = down x axis.

    A world point ``P`` projects to ``(u, v) = (cx + f X/Z, cy + f Y/Z)`` with ``(X, Y, Z) = R^T (P - C)``, ``R``
    the matrix whose columns are image right, image down and optical axis in ENU. The metadata of every frame
    (GPS = camera centre ``C``, RelativeAltitude = ``C.u``, Gimbal yaw/pitch/roll = the orientation above) is
    exactly what the frame was rendered with, so a later stage can invert this projection onto the ground plane.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

WGS84_A = 6378137.0
WGS84_E2 = 6.69437999014e-3


@dataclass(frozen=True)
class GeoOrigin:
    """A site's WGS84 origin and ground altitude (metres AMSL)."""

    lat: float
    lon: float
    alt_m: float

    def metres_per_degree(self) -> tuple[float, float]:
        """(metres per degree of latitude, metres per degree of longitude) at the origin."""
        phi = math.radians(self.lat)
        w = 1.0 - WGS84_E2 * math.sin(phi) ** 2
        m = WGS84_A * (1.0 - WGS84_E2) / w**1.5
        n = WGS84_A / math.sqrt(w)
        return m * math.pi / 180.0, n * math.cos(phi) * math.pi / 180.0

    def to_wgs84(self, e: float | np.ndarray, n: float | np.ndarray) -> tuple:
        """Local east/north metres → (lat, lon) degrees (scalars or arrays of the same shape)."""
        mlat, mlon = self.metres_per_degree()
        return self.lat + np.asarray(n) / mlat, self.lon + np.asarray(e) / mlon

    def to_local(self, lat: float | np.ndarray, lon: float | np.ndarray) -> tuple:
        """(lat, lon) degrees → local (east, north) metres."""
        mlat, mlon = self.metres_per_degree()
        return (np.asarray(lon) - self.lon) * mlon, (np.asarray(lat) - self.lat) * mlat


@dataclass(frozen=True)
class CameraModel:
    """A camera's intrinsics and identity, as written to EXIF."""

    make: str
    model: str
    width: int
    height: int
    focal_mm: float
    pixel_pitch_um: float
    f_number: float = 2.8

    @property
    def focal_px(self) -> float:
        return self.focal_mm * 1000.0 / self.pixel_pitch_um

    @property
    def cx(self) -> float:
        return (self.width - 1) / 2.0

    @property
    def cy(self) -> float:
        return (self.height - 1) / 2.0

    @property
    def focal_35mm(self) -> int:
        """35 mm-equivalent focal length (diagonal crop factor), as EXIF FocalLengthIn35mmFilm."""
        diag_mm = math.hypot(self.width, self.height) * self.pixel_pitch_um / 1000.0
        return round(self.focal_mm * math.hypot(36.0, 24.0) / diag_mm)

    def K(self) -> np.ndarray:
        """(3, 3) float64 intrinsic matrix."""
        return np.array([[self.focal_px, 0, self.cx], [0, self.focal_px, self.cy], [0, 0, 1.0]])

    def resized(self, width: int, height: int) -> CameraModel:
        """The same sensor and lens read out at another resolution (same field of view, coarser pixels)."""
        if width <= 0 or height <= 0:
            raise ValueError(f"image size must be positive, got {width}x{height}")
        return CameraModel(
            self.make,
            self.model,
            width,
            height,
            self.focal_mm,
            self.pixel_pitch_um * self.width / width,
            self.f_number,
        )

    def to_dict(self) -> dict:
        return {
            "make": self.make,
            "model": self.model,
            "width": self.width,
            "height": self.height,
            "focal_mm": self.focal_mm,
            "pixel_pitch_um": round(self.pixel_pitch_um, 6),
            "focal_px": round(self.focal_px, 6),
            "cx": self.cx,
            "cy": self.cy,
            "focal_35mm": self.focal_35mm,
        }


@dataclass(frozen=True)
class Pose:
    """A camera's position (local ENU metres; ``u`` = height above the site's ground) and DJI-style attitude."""

    e: float
    n: float
    u: float
    yaw_deg: float
    pitch_deg: float = -90.0
    roll_deg: float = 0.0

    def rotation(self) -> np.ndarray:
        """(3, 3) matrix whose columns are the image right, image down and optical axis in ENU."""
        y, p, r = (math.radians(a) for a in (self.yaw_deg, self.pitch_deg, self.roll_deg))
        h = np.array([math.sin(y), math.cos(y), 0.0])
        z = np.array([0.0, 0.0, 1.0])
        axis = math.cos(p) * h + math.sin(p) * z
        down = math.sin(p) * h - math.cos(p) * z
        right = np.cross(down, axis)
        # roll: rotate the image axes about the optical axis (up turns toward right for positive roll)
        cr, sr = math.cos(r), math.sin(r)
        right2 = cr * right + sr * down
        down2 = -sr * right + cr * down
        return np.stack([right2, down2, axis], axis=1)

    def centre(self) -> np.ndarray:
        return np.array([self.e, self.n, self.u])


def project(cam: CameraModel, pose: Pose, points_enu: np.ndarray) -> np.ndarray:
    """(N, 3) ENU points → (N, 2) pixel coordinates (points behind the camera give nonsense; callers avoid them)."""
    rel = (np.asarray(points_enu, dtype=np.float64) - pose.centre()) @ pose.rotation()
    uv = rel[:, :2] / rel[:, 2:3]
    return uv * cam.focal_px + np.array([cam.cx, cam.cy])


def ground_to_image(cam: CameraModel, pose: Pose) -> np.ndarray:
    """(3, 3) homography from ground-plane (e, n, 1) metres to image pixels (u, v, 1)."""
    rt = pose.rotation().T
    m = np.array([[1.0, 0.0, -pose.e], [0.0, 1.0, -pose.n], [0.0, 0.0, -pose.u]])
    return cam.K() @ rt @ m


def plane_to_image(
    cam: CameraModel, pose: Pose, origin: np.ndarray, ax_s: np.ndarray, ax_t: np.ndarray
) -> np.ndarray:
    """(3, 3) homography from plane coordinates (s, t, 1) to pixels, for the 3-D plane ``origin + s ax_s + t ax_t``."""
    rt = pose.rotation().T
    m = np.stack([ax_s, ax_t, np.asarray(origin, dtype=np.float64) - pose.centre()], axis=1)
    return cam.K() @ rt @ m


def image_to_ground(cam: CameraModel, pose: Pose, uv: np.ndarray) -> np.ndarray:
    """(N, 2) pixels → (N, 2) ground (e, n) metres, the inverse of :func:`ground_to_image`."""
    h = np.linalg.inv(ground_to_image(cam, pose))
    pts = np.concatenate([np.asarray(uv, dtype=np.float64), np.ones((len(uv), 1))], axis=1) @ h.T
    return pts[:, :2] / pts[:, 2:3]

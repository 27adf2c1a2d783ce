"""Georeferencing inverts the synthetic generator's projection exactly; intrinsics fallbacks; missing fields."""

from __future__ import annotations

import numpy as np
import pytest

from datasets.synth.geo import CameraModel, GeoOrigin, Pose, project
from findings.georef import GeorefError, LocalFrame, frame_camera, intrinsics

CAM = CameraModel("DJI", "ZH20T", 640, 512, 13.0, 12.0)
ORIGIN = GeoOrigin(47.3, 8.5, 410.0)


def _record(pose: Pose, cam: CameraModel = CAM) -> dict:
    lat, lon = ORIGIN.to_wgs84(pose.e, pose.n)
    return {
        "path": "DJI_0001_T.TIFF",
        "width": cam.width,
        "height": cam.height,
        "lat": float(lat),
        "lon": float(lon),
        "relative_altitude_m": pose.u,
        "gimbal_yaw_deg": pose.yaw_deg,
        "gimbal_pitch_deg": pose.pitch_deg,
        "gimbal_roll_deg": pose.roll_deg,
        "calibrated_focal_length_px": cam.focal_px,
        "optical_center_x_px": cam.cx,
        "optical_center_y_px": cam.cy,
        "dji": {"GpsLatitude": float(lat), "GpsLongitude": float(lon)},
        "model": cam.model,
        "focal_length_mm": cam.focal_mm,
        "focal_length_35mm": cam.focal_35mm,
    }


@pytest.mark.parametrize(
    "pose",
    [
        Pose(0.0, 0.0, 30.0, 0.0),
        Pose(12.0, -7.0, 30.0, 90.0, -89.3, 0.8),
        Pose(-5.0, 3.0, 45.0, 271.5, -90.6, -0.7),
        Pose(1.0, 2.0, 25.0, 180.0, -75.0, 2.0),  # oblique: pitch is honoured, not assumed nadir
    ],
)
def test_pixel_to_ground_inverts_the_synthetic_projection(pose: Pose) -> None:
    rng = np.random.default_rng(0)
    cam = frame_camera(_record(pose), LocalFrame(ORIGIN.lat, ORIGIN.lon))
    ground = np.column_stack([pose.e + rng.uniform(-8, 8, 50), pose.n + rng.uniform(-6, 6, 50), np.zeros(50)])
    uv = project(CAM, pose, ground)
    back = cam.pixel_to_ground(uv)
    assert np.max(np.hypot(*(back - ground[:, :2]).T)) < 0.005  # < 5 mm (GPS written with 9 decimals)
    np.testing.assert_allclose(cam.ground_to_pixel(ground[:, :2]), uv, atol=0.05)


def test_local_frame_round_trip() -> None:
    lf = LocalFrame(52.0, 10.0)
    e, n = lf.to_local(*lf.to_wgs84(np.array([120.0, -33.0]), np.array([-80.0, 500.0])))
    np.testing.assert_allclose(e, [120.0, -33.0], atol=1e-6)
    np.testing.assert_allclose(n, [-80.0, 500.0], atol=1e-6)


@pytest.mark.parametrize(
    ("drop", "source", "f_expected"),
    [
        ((), "xmp-calibrated", CAM.focal_px),
        (
            ("calibrated_focal_length_px", "optical_center_x_px", "optical_center_y_px"),
            "known camera",
            CAM.focal_px,
        ),
        (("calibrated_focal_length_px", "model"), "35mm-equivalent", CAM.focal_px),
    ],
)
def test_intrinsics_fallbacks(drop: tuple[str, ...], source: str, f_expected: float) -> None:
    rec = _record(Pose(0, 0, 30, 0))
    for k in drop:
        rec.pop(k)
    f, cx, cy, how = intrinsics(rec, CAM.width, CAM.height)
    assert source in how
    assert f == pytest.approx(f_expected, rel=0.02)  # the 35 mm equivalent is rounded to whole mm
    assert (cx, cy) == pytest.approx((CAM.cx, CAM.cy))


def test_intrinsics_scale_with_a_resized_frame() -> None:
    f, cx, cy, _ = intrinsics(_record(Pose(0, 0, 30, 0)), 320, 256)
    assert f == pytest.approx(CAM.focal_px / 2)
    assert (cx, cy) == pytest.approx((CAM.cx / 2, CAM.cy / 2))


@pytest.mark.parametrize(
    ("remove", "message"),
    [
        (("lat", "lon", "dji"), "no GPS position"),
        (("relative_altitude_m",), "no RelativeAltitude"),
        (("gimbal_pitch_deg",), "no gimbal yaw/pitch"),
        (("calibrated_focal_length_px", "model", "focal_length_35mm"), "cannot compute the focal length"),
    ],
)
def test_missing_fields_raise_a_clear_error(remove: tuple[str, ...], message: str) -> None:
    rec = _record(Pose(0, 0, 30, 0))
    for k in remove:
        rec[k] = None if k != "dji" else {}
    with pytest.raises(GeorefError, match=message):
        frame_camera(rec, LocalFrame(ORIGIN.lat, ORIGIN.lon))


def test_relative_altitude_from_gps_altitude_and_ground() -> None:
    rec = _record(Pose(0, 0, 30, 0))
    rec["relative_altitude_m"] = None
    rec["alt_m"] = ORIGIN.alt_m + 30.0
    cam = frame_camera(rec, LocalFrame(ORIGIN.lat, ORIGIN.lon), ground_alt_m=ORIGIN.alt_m)
    assert cam.u == pytest.approx(30.0)

from __future__ import annotations

import numpy as np
import pytest

from datasets.synth.geo import CameraModel, GeoOrigin, Pose, ground_to_image, image_to_ground, project

CAM = CameraModel("DJI", "TEST", 640, 512, 13.0, 12.0)


@pytest.mark.parametrize(
    ("lat", "m_lat", "m_lon"),
    [(0.0, 110574.3, 111319.5), (45.0, 111132.9, 78846.8), (60.0, 111412.3, 55800.0)],
)
def test_metres_per_degree_match_wgs84(lat: float, m_lat: float, m_lon: float) -> None:
    got_lat, got_lon = GeoOrigin(lat, 10.0, 0.0).metres_per_degree()
    assert got_lat == pytest.approx(m_lat, rel=2e-4)
    assert got_lon == pytest.approx(m_lon, rel=2e-4)


def test_local_wgs84_round_trip() -> None:
    o = GeoOrigin(47.3, 8.5, 400.0)
    e, n = np.array([-250.0, 0.0, 731.5]), np.array([12.0, -999.0, 0.5])
    lat, lon = o.to_wgs84(e, n)
    e2, n2 = o.to_local(lat, lon)
    np.testing.assert_allclose(e2, e, atol=1e-6)
    np.testing.assert_allclose(n2, n, atol=1e-6)


@pytest.mark.parametrize(
    ("yaw", "ground_offset", "expected_direction"),
    [
        (0.0, (0.0, 5.0), (0, -1)),  # heading north: a point north of the camera is up in the image
        (90.0, (5.0, 0.0), (0, -1)),  # heading east: east is up
        (90.0, (0.0, -5.0), (1, 0)),  # heading east: south is to the right
        (180.0, (5.0, 0.0), (-1, 0)),  # heading south: east is to the left
        (270.0, (0.0, 5.0), (1, 0)),  # heading west: north is to the right
    ],
)
def test_nadir_yaw_is_heading_of_image_up(yaw, ground_offset, expected_direction) -> None:
    pose = Pose(10.0, 20.0, 30.0, yaw)
    uv = project(CAM, pose, np.array([[10.0 + ground_offset[0], 20.0 + ground_offset[1], 0.0]]))[0]
    d = uv - np.array([CAM.cx, CAM.cy])
    d /= np.linalg.norm(d)
    np.testing.assert_allclose(d, expected_direction, atol=1e-9)


def test_nadir_gsd_is_altitude_over_focal_length() -> None:
    pose = Pose(0.0, 0.0, 50.0, 0.0)
    uv = project(CAM, pose, np.array([[1.0, 0.0, 0.0]]))[0]
    assert uv[0] - CAM.cx == pytest.approx(CAM.focal_px / 50.0)


@pytest.mark.parametrize("pose", [Pose(3, 4, 40, 93.0, -89.2, 0.6), Pose(-7, 2, 25, 271.5, -90.8, -0.9)])
def test_ground_homography_inverts(pose: Pose) -> None:
    uv = np.array([[0.0, 0.0], [639.0, 0.0], [320.0, 256.0], [17.0, 500.0]])
    en = image_to_ground(CAM, pose, uv)
    back = project(CAM, pose, np.c_[en, np.zeros(len(en))])
    np.testing.assert_allclose(back, uv, atol=1e-6)
    h = ground_to_image(CAM, pose)
    p = np.c_[en, np.ones(len(en))] @ h.T
    np.testing.assert_allclose(p[:, :2] / p[:, 2:], uv, atol=1e-6)


def test_positive_roll_turns_image_up_toward_right() -> None:
    straight = Pose(0, 0, 30, 0.0, -90.0, 0.0)
    rolled = Pose(0, 0, 30, 0.0, -90.0, 5.0)
    north = np.array([[0.0, 5.0, 0.0]])
    a = project(CAM, straight, north)[0]
    b = project(CAM, rolled, north)[0]
    assert a[0] == pytest.approx(CAM.cx)
    # the scene rotates opposite to the camera: north moves to the left when image-up turns right
    assert b[0] < a[0] - 1


def test_resized_camera_keeps_field_of_view() -> None:
    big = CameraModel("DJI", "X", 4000, 3000, 12.0, 3.3)
    small = big.resized(1000, 750)
    assert small.focal_px == pytest.approx(big.focal_px / 4)
    assert small.focal_35mm == big.focal_35mm
    with pytest.raises(ValueError, match="image size"):
        big.resized(0, 10)

"""Image metadata read back with Pillow, and its consistency with the rendering (projection of known defects)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from datasets.synth.geo import CameraModel, GeoOrigin, Pose, project
from datasets.synth.metadata import gps_from_exif, parse_dji_xmp

REQUIRED_XMP = {
    "RelativeAltitude",
    "AbsoluteAltitude",
    "GpsLatitude",
    "GpsLongitude",
    "GimbalYawDegree",
    "GimbalPitchDegree",
    "GimbalRollDegree",
    "FlightYawDegree",
    "FlightPitchDegree",
    "FlightRollDegree",
    "CalibratedFocalLength",
    "CalibratedOpticalCenterX",
    "CalibratedOpticalCenterY",
}


def _read(path: Path) -> tuple[Image.Image, dict[str, str]]:
    img = Image.open(path)
    raw = img.info.get("xmp") if path.suffix == ".JPG" else img.tag_v2.get(700)
    assert raw, f"{path.name}: no XMP packet"
    return img, parse_dji_xmp(raw if isinstance(raw, bytes) else raw.encode())


def _angle_diff(a: float, b: float) -> float:
    return abs((a - b + 180.0) % 360.0 - 180.0)


@pytest.mark.parametrize("kind", ["pv-thermal", "pv-rgb", "wind-rgb"])
def test_exif_and_xmp_read_back(kind: str, flight_dir) -> None:
    root = flight_dir(kind)
    cams = json.loads((root / "truth" / "cameras.json").read_text())
    synth = json.loads((root / "synth.json").read_text())
    for name, cam in cams.items():
        img, xmp = _read(root / "flight" / name)
        assert REQUIRED_XMP <= set(xmp), f"{name}: missing {REQUIRED_XMP - set(xmp)}"
        exif = img.getexif()
        assert exif[0x010F] == synth["camera"]["make"] and exif[0x0110] == synth["camera"]["model"]
        sub = exif.get_ifd(0x8769)
        assert datetime.strptime(sub[0x9003], "%Y:%m:%d %H:%M:%S").isoformat() == cam["time"]
        assert float(sub[0x920A]) == pytest.approx(synth["camera"]["focal_mm"], abs=0.01)
        assert sub[0xA405] == synth["camera"]["focal_35mm"]
        lat, lon, alt = gps_from_exif(exif)
        assert abs(lat - cam["lat"]) < 1e-6 and abs(lon - cam["lon"]) < 1e-6
        assert abs(float(xmp["GpsLatitude"]) - cam["lat"]) < 1e-6
        assert abs(float(xmp["GpsLongitude"]) - cam["lon"]) < 1e-6
        assert float(xmp["RelativeAltitude"]) == pytest.approx(cam["u_m"], abs=2e-3)
        assert alt == pytest.approx(float(xmp["AbsoluteAltitude"]), abs=2e-3)
        assert alt - float(xmp["RelativeAltitude"]) == pytest.approx(synth["origin"]["alt_m"], abs=3e-3)
        assert _angle_diff(float(xmp["GimbalYawDegree"]), cam["yaw_deg"]) < 2e-3
        assert float(xmp["GimbalPitchDegree"]) == pytest.approx(cam["pitch_deg"], abs=2e-3)
        assert float(xmp["GimbalRollDegree"]) == pytest.approx(cam["roll_deg"], abs=2e-3)
        assert float(xmp["CalibratedFocalLength"]) == pytest.approx(synth["camera"]["focal_px"], abs=1e-4)
        assert img.size == (synth["camera"]["width"], synth["camera"]["height"])


def test_thermal_tiff_is_single_channel_uint16(flight_dir) -> None:
    root = flight_dir("pv-thermal")
    for path in sorted((root / "flight").glob("*_T.TIFF")):
        arr = np.asarray(Image.open(path))
        assert arr.dtype == np.uint16 and arr.ndim == 2 and arr.shape == (512, 640)
        temp = arr.astype(np.float64) / 100.0 - 273.15
        assert -20 < np.median(temp) < 90
        assert (root / "previews" / (path.stem + ".png")).exists()


def _camera_from_xmp(xmp: dict[str, str], size: tuple[int, int]) -> tuple[CameraModel, Pose, GeoOrigin]:
    """What a downstream stage knows: only the file's metadata. Local frame centred on the camera."""
    f = float(xmp["CalibratedFocalLength"])
    cam = CameraModel("?", "?", size[0], size[1], f * 0.001, 1.0)  # focal_px = f
    assert cam.focal_px == pytest.approx(f)
    assert cam.cx == pytest.approx(float(xmp["CalibratedOpticalCenterX"]))
    ground = float(xmp["AbsoluteAltitude"]) - float(xmp["RelativeAltitude"])
    origin = GeoOrigin(float(xmp["GpsLatitude"]), float(xmp["GpsLongitude"]), ground)
    pose = Pose(
        0.0,
        0.0,
        float(xmp["RelativeAltitude"]),
        float(xmp["GimbalYawDegree"]),
        float(xmp["GimbalPitchDegree"]),
        float(xmp["GimbalRollDegree"]),
    )
    return cam, pose, origin


@pytest.mark.parametrize("kind", ["pv-thermal", "pv-rgb", "wind-rgb"])
def test_defect_positions_project_into_their_boxes(kind: str, flight_dir) -> None:
    """Projecting a registry defect's lat/lon(/alt) with the frame's metadata lands in that frame's label box."""
    root = flight_dir(kind)
    frames = json.loads((root / "truth" / "frames.json").read_text())
    registry = {d["defect_id"]: d for d in json.loads((root / "truth" / "defects.json").read_text())}
    checked = 0
    for name, rows in frames.items():
        img, xmp = _read(root / "flight" / name)
        cam, pose, origin = _camera_from_xmp(xmp, img.size)
        for r in rows:
            if r["visibility"] < 0.999:
                continue
            d = registry[r["defect_id"]]
            e, n = origin.to_local(d["lat"], d["lon"])
            u = d["alt_m"] - origin.alt_m if "alt_m" in d else 0.0
            uv = project(cam, pose, np.array([[float(e), float(n), u]]))[0]
            x0, y0, x1, y1 = r["xyxy"]
            slack = 3 + 0.05 * max(x1 - x0, y1 - y0)
            assert x0 - slack <= uv[0] <= x1 + slack and y0 - slack <= uv[1] <= y1 + slack, (name, r, uv)
            checked += 1
    assert checked > 0

"""The render shortcuts (quarter-turn before the warp, blob bounding box, in-place effects) change no pixels."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from datasets.synth.effects import CameraEffects
from datasets.synth.pv_flight import upright_rotation
from datasets.synth.pv_render import _blob


def _homography(yaw_deg: float, h: int, w: int, out_w: int, out_h: int) -> np.ndarray:
    """(3, 3) source → frame: rotate an (h, w) source by ``yaw_deg`` about its centre onto the frame centre."""
    a = math.radians(yaw_deg)
    c, s = math.cos(a), math.sin(a)
    to_origin = np.array([[1, 0, -(w - 1) / 2], [0, 1, -(h - 1) / 2], [0, 0, 1.0]])
    rot = np.array([[c, -s, 0], [s, c, 0], [0.0002, -0.0001, 1.0]])  # a little perspective, as from a tilt
    to_frame = np.array([[1, 0, (out_w - 1) / 2], [0, 1, (out_h - 1) / 2], [0, 0, 1.0]])
    return to_frame @ rot @ to_origin


@pytest.mark.parametrize(
    ("yaw", "code"),
    [
        (1.3, None),
        (88.7, cv2.ROTATE_90_CLOCKWISE),  # source x runs down the frame: turned, it runs across again
        (181.0, cv2.ROTATE_180),
        (-91.5, cv2.ROTATE_90_COUNTERCLOCKWISE),
        (268.0, cv2.ROTATE_90_COUNTERCLOCKWISE),
    ],
)
def test_quarter_turn_before_warp_gives_the_same_frame(yaw: float, code: int | None) -> None:
    rng = np.random.default_rng(7)
    h, w, out_w, out_h = 150, 110, 90, 70
    src = cv2.GaussianBlur(rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8), (0, 0), 1.0)
    hmat = _homography(yaw, h, w, out_w, out_h)
    got_code, rot = upright_rotation(hmat, h, w)
    assert got_code == code
    turned = cv2.rotate(src, got_code) if got_code is not None else src
    ref = cv2.warpPerspective(src, hmat, (out_w, out_h), flags=cv2.INTER_LINEAR)
    out = cv2.warpPerspective(turned, hmat @ rot, (out_w, out_h), flags=cv2.INTER_LINEAR)
    assert np.abs(ref.astype(int) - out).max() <= 1


def _blob_everywhere(rng, shape, cy, cx, r, rough):
    """The blob evaluated on every pixel (the formula before the bounding-box shortcut)."""
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    ang = np.arctan2(yy - cy, xx - cx)
    k = rng.normal(0, rough / 2, size=5)
    ph = rng.uniform(0, 2 * np.pi, size=5)
    rr = r * (1 + sum(k[i] * np.sin((i + 2) * ang + ph[i]) for i in range(5)))
    d = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2) / np.maximum(rr, 0.5)
    return np.clip((1.15 - d) / 0.3, 0, 1).astype(np.float32)


@pytest.mark.parametrize(
    ("cy", "cx", "r", "rough"),
    [
        (40.0, 50.0, 12.0, 0.35),
        (2.0, 97.0, 20.0, 0.7),  # clipped by two borders
        (-15.0, 30.0, 10.0, 0.6),  # centre outside the sprite
        (60.0, 60.0, 0.3, 0.5),  # sub-pixel radius: the 0.5 px floor
        (300.0, 300.0, 5.0, 0.4),  # wholly outside
    ],
)
def test_blob_bounding_box_matches_full_evaluation(cy: float, cx: float, r: float, rough: float) -> None:
    shape = (80, 100)
    for seed in range(20):
        ref = _blob_everywhere(np.random.default_rng(seed), shape, cy, cx, r, rough)
        got = _blob(np.random.default_rng(seed), shape, cy, cx, r, rough)
        assert got.dtype == np.float32
        assert np.array_equal(got, ref)


@pytest.mark.parametrize("motion_px", [0.0, 1.2])
def test_inplace_camera_effects_match(motion_px: float) -> None:
    fx = CameraEffects(64, 48, np.random.default_rng(1), noise_sigma=2.2, vignetting=0.22)
    img = np.random.default_rng(2).integers(0, 256, size=(48, 64, 3), dtype=np.uint8)
    ref = fx.apply_rgb(img.copy(), np.random.default_rng(3), exposure=1.02, motion_px=motion_px)
    work = img.copy()
    got = fx.apply_rgb(work, np.random.default_rng(3), exposure=1.02, motion_px=motion_px, inplace=True)
    assert np.array_equal(got, ref)
    assert not np.array_equal(ref, img)

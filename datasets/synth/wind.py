"""Wind-farm blade inspection: turbines, blade sweeps (per blade, per side, root to tip) and blade rendering.

Geometry. A turbine stands at local (e, n) with its hub at height ``hub_height_m``; the rotor faces
``rotor_yaw_deg`` (heading of the upwind direction) and is parked with blade A at ``azimuth_deg`` (0 = pointing
up, clockwise seen from upwind), blades B and C at +120° and +240°. Blade axis ``b``; in-plane tangent ``t``
(direction of rotation, i.e. toward the leading edge); rotor normal ``f`` (upwind). A side is photographed
looking along: pressure side ``-f`` (camera upwind), suction side ``+f``, leading edge ``-t``, trailing edge
``+t``. A frame at radius ``r`` has its camera at ``hub + r b - D v`` (``D`` = standoff) looking along ``v``
with zero roll (plus small jitter), so the blade runs through the image centre. The visible side is modelled as
the plane through the blade axis spanned by ``b`` and ``c = v x b``; plane coordinates (s, t) are metres along
the span from the hub centre and across the visible width. A defect's position is the 3-D point ``hub + s b +
t c`` (its lat/lon/alt are written to defects.json). ``radius_m`` in an asset is measured from the hub centre; the
blade root is at ``ROOT_R`` = 1.6 m (``distance_from_root_m = radius_m - 1.6``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from datasets.synth import textures
from datasets.synth.effects import CameraEffects
from datasets.synth.geo import CameraModel, GeoOrigin, Pose, plane_to_image
from datasets.synth.pv_flight import MIN_BOX_PX, MIN_VISIBILITY, FrameTruth
from detection.taxonomy import Domain, by_name, classes

SIDES = ("leading_edge", "pressure_side", "trailing_edge", "suction_side")
BLADES = ("A", "B", "C")
ROOT_R = 1.6
WIDTH_M = 4.6
"""Raster height of a blade side (metres across); the widest chord fits."""


@dataclass
class Turbine:
    turbine_id: str
    e: float
    n: float
    hub_height_m: float
    blade_length_m: float
    rotor_yaw_deg: float
    azimuth_deg: float

    def hub(self) -> np.ndarray:
        return np.array([self.e, self.n, self.hub_height_m])

    def axes(self, blade: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(b, t, f): blade axis, tangent toward the leading edge, rotor normal (upwind), unit ENU vectors."""
        y = math.radians(self.rotor_yaw_deg)
        f = np.array([math.sin(y), math.cos(y), 0.0])
        lat = np.array([-math.cos(y), math.sin(y), 0.0])  # to the right, seen from upwind
        a = math.radians(self.azimuth_deg + 120.0 * blade)
        up = np.array([0.0, 0.0, 1.0])
        b = math.cos(a) * up + math.sin(a) * lat
        t = -math.sin(a) * up + math.cos(a) * lat
        return b, t, f


def view_dir(tb: Turbine, blade: int, side: str) -> np.ndarray:
    _, t, f = tb.axes(blade)
    return {"pressure_side": -f, "suction_side": f, "leading_edge": -t, "trailing_edge": t}[side]


def width_profile(side: str, s: np.ndarray, length: float) -> tuple[np.ndarray, np.ndarray]:
    """Visible extent (t_min, t_max) in metres across the blade at span positions ``s`` (from the hub centre)."""
    r = np.clip((s - ROOT_R) / max(length - ROOT_R, 1.0), 0.0, 1.0)
    root_d = 2.4
    chord = np.where(
        r < 0.22,
        root_d + (3.9 - root_d) * np.sin(np.pi / 2 * r / 0.22) ** 2,
        3.9 - (3.9 - 0.55) * (np.clip(r - 0.22, 0, None) / 0.78) ** 0.9,
    )
    thick = np.where(
        r < 0.22, root_d - (root_d - 0.36 * 3.9) * (r / 0.22) ** 1.5, chord * (0.36 - 0.2 * (r - 0.22))
    )
    tip = np.sqrt(np.clip((1.0 - r) / 0.025, 0.0, 1.0))  # rounded tip
    if side in ("pressure_side", "suction_side"):
        w = chord * tip
        sign = 1.0 if side == "pressure_side" else -1.0
        le, te = -0.3 * w, 0.7 * w  # straight-ish leading edge, curved trailing edge
        lo, hi = (le, te) if sign > 0 else (-te, -le)
        shift = -0.2 * w * sign
        return lo + shift, hi + shift
    w = thick * tip
    return -w / 2, w / 2


@dataclass
class WindDefect:
    index: int
    cls: str
    turbine: int
    blade: int
    side: str
    s: float
    t: float
    size_m: float
    patch_rgba: np.ndarray | None = None
    """(h, w, 4) float32: BGR + alpha, in the side's raster at (patch_i0, patch_j0)."""
    patch_i0: int = 0
    patch_j0: int = 0
    mask: np.ndarray | None = None
    """(h, w) uint8 0/255."""


@dataclass
class WindScene:
    turbines: list[Turbine]
    origin: GeoOrigin
    q: float
    """Raster resolution of blade surfaces (metres per pixel)."""
    rng_seed: int
    defects: list[WindDefect] = field(default_factory=list)
    paint: np.ndarray = field(default_factory=lambda: np.array([0.83, 0.84, 0.84], np.float32))
    tip_bands: bool = False
    noise_tex: np.ndarray | None = None
    sky_tex: np.ndarray | None = None
    ground_tex: np.ndarray | None = None

    # raster of a side: col j ↔ s = j * q (s from hub centre), row i ↔ t = i * q - WIDTH_M / 2

    def raster_to_plane(self) -> np.ndarray:
        """(3, 3) affine from raster pixel (x, y, 1) to plane (s, t, 1) metres."""
        return np.array([[self.q, 0, 0], [0, self.q, -WIDTH_M / 2], [0, 0, 1.0]])

    def side_window(
        self, tb: int, blade: int, side: str, j0: int, j1: int, with_labels: bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, int]:
        """The blade side's surface raster for columns [j0, j1), cropped to the rows the blade covers.

        Returns ((h, w, 3) uint8 BGR, (h, w) uint8 alpha, (h, w) int32 labels or None, first row index).
        """
        q = self.q
        t = self.turbines[tb]
        hgt = int(np.rint(WIDTH_M / q))
        w = j1 - j0
        s = (np.arange(j0, j1, dtype=np.float32) + 0.5) * q
        lo, hi = width_profile(side, s, t.blade_length_m)
        r0 = max(0, math.floor((float(lo.min()) + WIDTH_M / 2) / q) - 2)
        r1 = min(hgt, math.ceil((float(hi.max()) + WIDTH_M / 2) / q) + 2)
        hgt = max(1, r1 - r0)
        tt = (np.arange(r0, r0 + hgt, dtype=np.float32)[:, None] + 0.5) * q - WIDTH_M / 2
        alpha = np.clip(np.minimum(tt - lo[None, :], hi[None, :] - tt) / q + 0.5, 0.0, 1.0)
        alpha[:, s > t.blade_length_m] = 0.0
        # shading across the visible width is smooth: evaluate it on a 4x coarser grid and upsample
        k = 4
        sh, sw = max(2, hgt // k), max(2, w // k)
        lo_s, hi_s = cv2.resize(lo[None, :], (sw, 1))[0], cv2.resize(hi[None, :], (sw, 1))[0]
        tt_s = (np.arange(sh, dtype=np.float32)[:, None] + 0.5) * (hgt / sh) * q + r0 * q - WIDTH_M / 2
        u = np.clip((tt_s - (lo_s + hi_s)[None, :] / 2) / np.maximum((hi_s - lo_s)[None, :] / 2, 1e-3), -1, 1)
        # rounded edges fall off, the leading-edge nose catches light
        if side in ("leading_edge", "trailing_edge"):
            shade = 0.62 + 0.38 * np.sqrt(np.clip(1 - u**2, 0, 1))
            if side == "leading_edge":
                shade += 0.08 * np.exp(-((u / 0.18) ** 2))
        else:
            nose = -1.0 if side == "pressure_side" else 1.0
            shade = 0.9 + 0.06 * u * nose - 0.25 * np.clip(np.abs(u) - 0.8, 0, 1) / 0.2
            shade += 0.07 * np.exp(-(((u - nose * 0.85) / 0.08) ** 2))
        side_light = {"pressure_side": 1.0, "suction_side": 0.8, "leading_edge": 0.95, "trailing_edge": 0.85}[
            side
        ]
        shade = cv2.resize((shade * side_light).astype(np.float32), (w, hgt), interpolation=cv2.INTER_LINEAR)
        tex = textures.window_of(
            self.noise_tex, r0, j0 + 977 * (blade + 3 * tb) + 331 * SIDES.index(side), hgt, w
        )
        lum = shade * (np.float32(1.0) + np.float32(0.012) * tex)
        lum8 = cv2.convertScaleAbs(lum, alpha=255.0)
        lut = np.clip(np.arange(256, dtype=np.float32)[:, None] * self.paint[None, :], 0, 255).astype(
            np.uint8
        )
        img = cv2.LUT(cv2.cvtColor(lum8, cv2.COLOR_GRAY2BGR), lut[None])  # grey → paint colour
        if self.tip_bands:
            for kk in range(2):
                a0 = t.blade_length_m - 2.0 - kk * 4.0
                band = np.flatnonzero((s > a0 - 2.0) & (s < a0))
                if len(band):
                    sl = slice(band[0], band[-1] + 1)
                    img[:, sl] = (lum[:, sl, None] * (255 * np.array([0.16, 0.2, 0.75], np.float32))).astype(
                        np.uint8
                    )
        labels = np.zeros((hgt, w), np.int32) if with_labels else None
        for d in self.defects:
            if (d.turbine, d.blade, d.side) != (tb, blade, side):
                continue
            ph, pw = d.mask.shape
            a, b = d.patch_i0 - r0, d.patch_j0 - j0
            xa, xb = max(b, 0), min(b + pw, w)
            ya, yb = max(a, 0), min(a + ph, hgt)
            if xa >= xb or ya >= yb:
                continue
            src = (slice(ya - a, yb - a), slice(xa - b, xb - b))
            dst = (slice(ya, yb), slice(xa, xb))
            pa = d.patch_rgba[src][..., 3:4]
            under = img[dst].astype(np.float32) / 255.0
            over = d.patch_rgba[src][..., :3] * lum[dst][..., None] ** 0.3
            img[dst] = np.clip((under * (1 - pa) + over * pa) * 255.0, 0, 255).astype(np.uint8)
            if labels is not None:
                labels[dst][d.mask[src] > 0] = d.index + 1
        if side == "suction_side":
            self._vortex_generators(img, tb, blade, s, lo, hi, r0)
        return img, cv2.convertScaleAbs(alpha, alpha=255.0), labels, r0

    def vg_range(self, tb: int) -> tuple[float, float]:
        length = self.turbines[tb].blade_length_m
        return ROOT_R + 0.08 * length, ROOT_R + 0.3 * length

    def _vortex_generators(self, img, tb, blade, s, lo, hi, r0) -> None:
        """A row of fin pairs at 20 % chord on the suction side, with gaps where teeth are missing."""
        vg0, vg1 = self.vg_range(tb)
        pitch = 0.12
        q = self.q
        missing = [
            (d.s - d.size_m / 2, d.s + d.size_m / 2)
            for d in self.defects
            if (d.turbine, d.blade, d.cls) == (tb, blade, "vortex_generator_missing")
        ]
        for jj in np.flatnonzero((s > vg0) & (s < vg1)):
            sv = float(s[jj])
            if abs((sv / pitch) - round(sv / pitch)) * pitch > q * 1.2:
                continue
            if any(a <= sv <= b for a, b in missing):
                continue
            tv = lo[jj] + 0.8 * (hi[jj] - lo[jj])
            i_c = int((tv + WIDTH_M / 2) / q) - r0
            half = max(1, int(0.03 / q))
            for dj in range(-1, 2):
                col = jj + dj
                if 0 <= col < img.shape[1]:
                    seg = img[max(0, i_c - half) : i_c + half, col]
                    seg[:] = (seg * 0.55).astype(np.uint8)


def _overlaps(a: WindDefect, b: WindDefect, margin: int = 2) -> bool:
    """Whether two defects' patches on the same blade side overlap (with a margin in raster pixels)."""
    if (a.turbine, a.blade, a.side) != (b.turbine, b.blade, b.side):
        return False
    ah, aw = a.mask.shape
    bh, bw = b.mask.shape
    return not (
        a.patch_j0 + aw + margin <= b.patch_j0
        or b.patch_j0 + bw + margin <= a.patch_j0
        or a.patch_i0 + ah + margin <= b.patch_i0
        or b.patch_i0 + bh + margin <= a.patch_i0
    )


def _draw_wind_defect(d: WindDefect, q: float, rng: np.random.Generator, lo: float, hi: float) -> None:
    """Render a defect's (h, w, 4) BGR+alpha patch and its mask, in the side raster (q metres per pixel)."""
    size_px = max(4, int(np.rint(d.size_m / q)))
    cls = d.cls
    if cls == "vortex_generator_missing":
        ph, pw = max(6, int(0.08 / q)), size_px
    elif cls in ("leading_edge_erosion",):
        ph, pw = max(6, int(rng.uniform(0.06, 0.25) / q)), size_px
    elif cls == "crack":
        ph, pw = (size_px, max(6, size_px // 6)) if rng.random() < 0.6 else (max(6, size_px // 6), size_px)
    else:
        ph, pw = size_px, max(4, int(size_px * rng.uniform(0.5, 1.0)))
    ph = min(ph, int((hi - lo) / q * 0.9))
    ph = max(ph, 4)
    yy, xx = np.mgrid[0:ph, 0:pw].astype(np.float32)
    ny, nx = (yy + 0.5) / ph * 2 - 1, (xx + 0.5) / pw * 2 - 1
    r = np.sqrt(nx**2 + ny**2)
    noise = cv2.GaussianBlur(
        rng.standard_normal((ph, pw)).astype(np.float32), (0, 0), max(1.0, min(ph, pw) / 10)
    )
    noise /= noise.std() + 1e-6
    fine = rng.standard_normal((ph, pw)).astype(np.float32)
    col = np.zeros((ph, pw, 3), np.float32)
    alpha = np.zeros((ph, pw), np.float32)
    if cls == "leading_edge_erosion":
        m = np.clip((0.75 - np.maximum(np.abs(ny) * 1.1, np.abs(nx) ** 4) + 0.35 * noise) * 3, 0, 1)
        pits = (fine > 1.2).astype(np.float32)
        alpha = np.clip(m * (0.75 + 0.25 * pits), 0, 1)
        col[:] = np.array([0.55, 0.6, 0.64]) * (0.8 + 0.1 * noise[..., None]) - pits[..., None] * 0.3
    elif cls == "crack":
        canvas = np.zeros((ph * 2, pw * 2), np.float32)
        vertical = ph >= pw
        n = 14
        pts = []
        for k in range(n + 1):
            f = k / n
            jit = float(np.clip(rng.normal(0, 0.25), -0.8, 0.8))
            x = (0.5 + jit * 0.5) * pw * 2 if vertical else f * pw * 2
            y = f * ph * 2 if vertical else (0.5 + jit * 0.5) * ph * 2
            pts.append((int(x), int(y)))
        cv2.polylines(canvas, [np.array(pts, np.int32)], False, 1.0, max(2, int(0.004 / q * 2)))
        for _ in range(int(rng.integers(0, 4))):  # branches
            a = pts[int(rng.integers(1, n))]
            b = (int(a[0] + rng.normal(0, pw * 0.4)), int(a[1] + rng.normal(0, ph * 0.3)))
            cv2.line(canvas, a, b, 0.8, max(1, int(0.003 / q * 2)))
        line = cv2.resize(canvas, (pw, ph), interpolation=cv2.INTER_AREA)
        halo = cv2.GaussianBlur(line, (0, 0), 2.0)
        alpha = np.clip(line * 1.4 + halo * 0.5, 0, 1)
        dark = np.clip(line * 1.6, 0, 1)[..., None]
        col[:] = np.array([0.95, 0.97, 0.97]) * (1 - dark) + np.array([0.12, 0.13, 0.15]) * dark
    elif cls == "lightning_damage":
        m = np.clip((0.9 - r + 0.3 * noise) * 4, 0, 1)
        streak = np.clip((0.9 - np.abs(ny) * 2.5 + 0.5 * noise) * (1 - np.abs(nx)) * 2, 0, 1) * 0.6
        alpha = np.maximum(m, streak)
        core = np.clip((0.45 - r + 0.2 * noise) * 5, 0, 1)[..., None]
        col[:] = np.array([0.1, 0.11, 0.13]) * (1 - core) + np.array([0.05, 0.06, 0.09]) * core
        col += fine[..., None] * 0.03
    elif cls == "surface_damage":
        for _ in range(int(rng.integers(2, 7))):
            cy, cx = rng.uniform(0.2, 0.8) * ph, rng.uniform(0.2, 0.8) * pw
            rad = rng.uniform(0.12, 0.35) * min(ph, pw)
            blob = (((yy - cy) / rad) ** 2 + ((xx - cx) / (rad * rng.uniform(0.6, 1.6))) ** 2) < (
                1 + 0.35 * noise
            )
            alpha = np.maximum(alpha, blob.astype(np.float32))
        inner = cv2.erode(alpha, np.ones((3, 3), np.uint8))
        laminate = np.array([0.55, 0.72, 0.74]) if rng.random() < 0.6 else np.array([0.6, 0.62, 0.62])
        col[:] = laminate * (0.9 + 0.06 * noise[..., None])
        col[(alpha > 0) & (inner == 0)] = np.array([0.45, 0.47, 0.5])  # chipped rim
    elif cls == "contamination":
        m = np.clip((0.8 - r + 0.45 * noise) * 2.5, 0, 1)
        specks = np.clip(fine - 0.8, 0, 1)
        streak = np.clip(1 - np.abs(nx) * 1.5, 0, 1) * np.clip(noise * 0.5 + 0.5, 0, 1)
        alpha = np.clip(m * (0.45 + 0.3 * streak) + specks * m, 0, 0.95)
        col[:] = np.array([0.28, 0.38, 0.45]) * (0.9 + 0.1 * noise[..., None])
    elif cls == "vortex_generator_missing":
        alpha[:] = 0.35  # glue footprints where the fins were
        col[:] = np.array([0.7, 0.72, 0.72])
        feet = (np.abs(((xx * q) % 0.12) - 0.06) < 0.012).astype(np.float32)
        alpha = alpha * feet + 0.05
        d.patch_rgba = np.dstack([col, alpha]).astype(np.float32)
        d.mask = np.full((ph, pw), 255, np.uint8)
        return
    else:
        raise ValueError(f"no wind renderer for class {cls!r}")
    # fade out toward the patch border so no shape is ever cut by its rectangle
    alpha = alpha * np.clip((1.0 - np.maximum(np.abs(nx), np.abs(ny))) * 6.0, 0.0, 1.0)
    d.patch_rgba = np.dstack([col, alpha]).astype(np.float32)
    d.mask = np.where(alpha > 0.3, 255, 0).astype(np.uint8)
    if cls == "crack":  # a hairline: its label region is the line plus the stress-whitened rim around it
        d.mask = cv2.dilate(d.mask, np.ones((5, 5), np.uint8))


class WindRenderer:
    def __init__(self, scene: WindScene, cam: CameraModel, rng: np.random.Generator) -> None:
        self.scene, self.cam = scene, cam
        self.fx = CameraEffects(cam.width, cam.height, rng, noise_sigma=2.0, vignetting=0.18, channels=3)

    def background(self, pose: Pose, rng: np.random.Generator) -> np.ndarray:
        """(H, W, 3) uint8: sky (gradient, clouds) above the horizon, hazy fields below; out of focus.

        Rendered at 1/8 resolution and upsampled: the background is far behind the focused blade.
        """
        cam = self.cam
        h, w = cam.height, cam.width
        sh, sw = max(6, h // 8), max(8, w // 8)
        v = (np.arange(sh, dtype=np.float32) + 0.5) * (h / sh) - 0.5
        elev = np.degrees(np.arctan2((cam.cy - v), cam.focal_px)) + pose.pitch_deg  # per row, roll ~ 0
        zen = np.array([185, 125, 70], np.float32)
        hor = np.array([238, 220, 205], np.float32)
        k = np.clip(elev / 50.0, 0, 1)[:, None]
        sky = hor * (1 - k) + zen * k
        oy, ox = (int(x) for x in rng.integers(0, 1024, size=2))
        tex = textures.window_of(self.scene.sky_tex, oy, ox, sh, sw)
        cloud = np.clip((tex - 0.45) * 2.0, 0, 1)[..., None]
        sky_img = sky[:, None, :] * (1 - 0.85 * cloud) + np.array([240, 240, 242], np.float32) * 0.85 * cloud
        # fields: a patchwork of crops and meadows, squeezed toward the horizon, hazy in the distance
        depth = 1.0 / np.maximum(np.tan(np.radians(np.clip(-elev, 0.3, 90))), 1e-3)
        rows = (np.cumsum(1.0 / depth) * 3.0 % 1024).astype(int)
        cols = (np.arange(sw) + ox) % 1024
        patch = self.scene.sky_tex[rows[:, None], cols[None, :]]
        palette = np.array(
            [[70, 115, 85], [95, 128, 130], [62, 100, 72], [88, 122, 112], [75, 108, 95]], np.float32
        )
        x = np.clip(patch * 4.0, 0, 3.999)
        lo_i = x.astype(int)
        frac = np.clip((x - lo_i - 0.35) / 0.3, 0, 1)[..., None]  # soft field boundaries
        land = palette[lo_i] * (1 - frac) + palette[lo_i + 1] * frac
        haze = np.exp(-np.clip(-elev, 0, 90) / 5.0)[:, None, None]
        land = land * (1 - haze) + hor * haze
        img = np.where((elev >= 0)[:, None, None], sky_img, land)
        img = cv2.GaussianBlur(img.astype(np.float32), (0, 0), 1.0)
        return cv2.resize(np.clip(img, 0, 255).astype(np.uint8), (w, h), interpolation=cv2.INTER_LINEAR)

    def render(
        self, frame: dict, rng: np.random.Generator, with_masks: bool = False
    ) -> tuple[np.ndarray, FrameTruth]:
        scene, cam = self.scene, self.cam
        pose: Pose = frame["pose"]
        tb, blade, side = frame["turbine"], frame["blade"], frame["side"]
        turb = scene.turbines[tb]
        b, _, _ = turb.axes(blade)
        v = view_dir(turb, blade, side)
        c = np.cross(v, b)
        c /= np.linalg.norm(c)
        hp = plane_to_image(cam, pose, turb.hub(), b, c)
        hr = hp @ scene.raster_to_plane()
        # columns of the raster visible in the frame
        inv = np.linalg.inv(hr)
        corners = np.array([[0, 0, 1], [cam.width, 0, 1], [cam.width, cam.height, 1], [0, cam.height, 1.0]])
        pc = corners @ inv.T
        xs = pc[:, 0] / pc[:, 2]
        j0 = max(0, math.floor(xs.min()) - 4)
        j1 = min(math.ceil((turb.blade_length_m + 0.5) / scene.q), math.ceil(xs.max()) + 4)
        size = (cam.width, cam.height)
        img = self.background(pose, rng)
        truth = FrameTruth(boxes=[])
        if j1 > j0:
            surf, alpha, labels, r0 = scene.side_window(tb, blade, side, j0, j1, with_masks)
            hw = hr @ np.array([[1, 0, j0], [0, 1, r0], [0, 0, 1.0]])
            warped = cv2.warpPerspective(surf, hw, size, flags=cv2.INTER_LINEAR)
            a = cv2.warpPerspective(alpha, hw, size, flags=cv2.INTER_LINEAR).astype(np.float32) / np.float32(
                255
            )
            img = cv2.blendLinear(warped, img, a, np.float32(1.0) - a)
            truth.boxes = self._boxes(hr, tb, blade, side)
            if with_masks:
                lab = cv2.warpPerspective(labels, hw, size, flags=cv2.INTER_NEAREST)
                truth.masks = {bx["defect_index"]: lab == bx["defect_index"] + 1 for bx in truth.boxes}
                truth.label_map = lab
        motion = float(rng.uniform(0.0, 1.2))
        out = self.fx.apply_rgb(img, rng, exposure=float(rng.uniform(0.92, 1.05)), motion_px=motion)
        return out, truth

    def _boxes(self, hr: np.ndarray, tb: int, blade: int, side: str) -> list[dict]:
        cam = self.cam
        out = []
        for d in self.scene.defects:
            if (d.turbine, d.blade, d.side) != (tb, blade, side):
                continue
            ph, pw = d.mask.shape
            hpch = hr @ np.array([[1, 0, d.patch_j0], [0, 1, d.patch_i0], [0, 0, 1.0]])
            corners = np.array(
                [[-0.5, -0.5, 1], [pw - 0.5, -0.5, 1], [pw - 0.5, ph - 0.5, 1], [-0.5, ph - 0.5, 1]]
            )
            pc = corners @ hpch.T
            pc = pc[:, :2] / pc[:, 2:3]
            x0, y0 = (int(v) - 1 for v in np.floor(pc.min(0)))
            x1, y1 = (int(v) + 1 for v in np.ceil(pc.max(0)))
            if x1 < 0 or y1 < 0 or x0 >= cam.width or y0 >= cam.height:
                continue
            shift = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1.0]])
            canvas = cv2.warpPerspective(d.mask, shift @ hpch, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR)
            full = canvas >= 128
            total = int(full.sum())
            cy0, cx0 = max(0, -y0), max(0, -x0)
            cy1, cx1 = min(full.shape[0], cam.height - y0), min(full.shape[1], cam.width - x0)
            if total == 0 or cy1 <= cy0 or cx1 <= cx0:
                continue
            vis = full[cy0:cy1, cx0:cx1]
            if not vis.any():
                continue
            ys, xs = np.nonzero(vis)
            box = [
                int(xs.min()) + cx0 + x0,
                int(ys.min()) + cy0 + y0,
                int(xs.max()) + cx0 + x0 + 1,
                int(ys.max()) + cy0 + y0 + 1,
            ]
            visibility = int(vis.sum()) / total
            if visibility < MIN_VISIBILITY or box[2] - box[0] < MIN_BOX_PX or box[3] - box[1] < MIN_BOX_PX:
                continue
            out.append({"defect_index": d.index, "xyxy": box, "visibility": round(visibility, 4)})
        return out


def plan_sweeps(
    cam: CameraModel,
    turbines: list[Turbine],
    n_images: int,
    standoff: float,
    overlap: float,
    rng: np.random.Generator,
) -> list[dict]:
    """Frames turbine by turbine, blade by blade, side by side, root to tip, until ``n_images``."""
    frames: list[dict] = []
    for ti, tb in enumerate(turbines):
        for bi in range(3):
            for side in SIDES:
                b, _, _ = tb.axes(bi)
                # span covered by a frame along the blade's direction in the image
                pose0 = _pose_for(tb, bi, side, tb.blade_length_m / 2, standoff, rng=None)
                rt = pose0.rotation().T
                d_img = rt @ b
                ang = math.atan2(d_img[1], d_img[0])
                span_px = min(
                    cam.width / max(abs(math.cos(ang)), 1e-3), cam.height / max(abs(math.sin(ang)), 1e-3)
                )
                span = span_px * standoff / cam.focal_px
                step = span * (1 - overlap)
                r = ROOT_R + span * 0.35
                while r < tb.blade_length_m - span * 0.1 + step:
                    if len(frames) == n_images:
                        return frames
                    rr = min(r, tb.blade_length_m - span * 0.3)
                    frames.append(
                        {
                            "turbine": ti,
                            "blade": bi,
                            "side": side,
                            "radius_m": rr,
                            "pose": _pose_for(tb, bi, side, rr, standoff, rng),
                        }
                    )
                    r += step
    return frames


def _pose_for(
    tb: Turbine, blade: int, side: str, r: float, standoff: float, rng: np.random.Generator | None
) -> Pose:
    b, _, _ = tb.axes(blade)
    v = view_dir(tb, blade, side)
    jit = (lambda s: float(rng.normal(0, s))) if rng is not None else (lambda s: 0.0)
    target = tb.hub() + r * b
    cpos = target - (standoff + jit(0.4)) * v + np.array([jit(0.15), jit(0.15), jit(0.15)])
    yaw = math.degrees(math.atan2(v[0], v[1])) if abs(v[2]) < 0.999 else tb.rotor_yaw_deg
    pitch = math.degrees(math.asin(float(np.clip(v[2], -1, 1))))
    return Pose(float(cpos[0]), float(cpos[1]), float(cpos[2]), yaw + jit(0.8), pitch + jit(0.8), jit(0.6))


def build_wind_flight(dom, cam, images, seed, standoff, overlap, rate, origin, conditions, common):
    from datasets.synth.generate import (
        STREAM_EFFECTS,
        STREAM_PLAN,
        STREAM_SCENE,
        STREAM_SITE,
        SynthFlight,
        _times,
        rng_for,
    )

    site_rng = rng_for(seed, STREAM_SITE)
    per_turbine_guess = 3 * 4 * 8
    n_turb = max(1, math.ceil(images / per_turbine_guess) + 1)
    turbines = []
    wind_dir = float(site_rng.uniform(0, 360))
    for k in range(n_turb):
        turbines.append(
            Turbine(
                turbine_id=f"WTG{k + 1:02d}",
                e=float(k * site_rng.uniform(350, 500)),
                n=float(site_rng.normal(0, 60)),
                hub_height_m=round(float(site_rng.uniform(80, 120)), 1),
                blade_length_m=round(float(site_rng.uniform(40, 60)), 1),
                rotor_yaw_deg=round((wind_dir + float(site_rng.normal(0, 5))) % 360, 2),
                azimuth_deg=round(180.0 + float(site_rng.uniform(-20, 20)), 2),
            )
        )
    gsd = standoff / cam.focal_px
    scene = WindScene(turbines, origin, q=gsd, rng_seed=seed)
    srng = rng_for(seed, STREAM_SCENE)
    scene.tip_bands = bool(srng.random() < 0.4)
    scene.paint = (np.array([0.83, 0.84, 0.84]) * srng.uniform(0.95, 1.05, size=3)).astype(np.float32)
    # surface texture streaked along the span (raster columns): stretch a tileable noise 4x along x
    scene.noise_tex = cv2.resize(textures.periodic_noise(srng, 512, 12.0, 3), (2048, 512))
    scene.sky_tex = (textures.periodic_noise(srng, 1024, 60.0, 4) * 0.35 + 0.5).astype(np.float32)
    frames = plan_sweeps(cam, turbines, images, standoff, overlap, rng_for(seed, STREAM_PLAN))
    # defects on the blade sides this flight photographs
    swept = sorted(
        {(f["turbine"], f["blade"], f["side"]) for f in frames}, key=lambda x: (x[0], x[1], SIDES.index(x[2]))
    )
    reach: dict[tuple, float] = {}
    for f in frames:
        key = (f["turbine"], f["blade"], f["side"])
        reach[key] = max(reach.get(key, 0.0), f["radius_m"])
    names = [c.name for c in classes(Domain.WIND)]
    for tb, bl, side in swept:
        turb = turbines[tb]
        r_max = min(turb.blade_length_m - 0.5, reach[(tb, bl, side)] + 3.0)
        n_def = int(srng.poisson(rate * max(r_max - ROOT_R, 0) / 10.0))
        for _ in range(n_def):
            cls = str(srng.choice(names))
            if cls == "vortex_generator_missing" and side != "suction_side":
                cls = "contamination"
            if cls == "leading_edge_erosion" and side == "trailing_edge":
                cls = "crack"
            dc = by_name(Domain.WIND, cls)
            size = float(srng.uniform(*dc.size_m))
            if cls == "lightning_damage":
                s = float(srng.uniform(0.8, 0.97)) * turb.blade_length_m
            elif cls == "vortex_generator_missing":
                a, b = scene.vg_range(tb)
                s = float(srng.uniform(a + size / 2, b - size / 2))
            else:
                s = float(srng.uniform(ROOT_R + 2.0, r_max))
            lo, hi = (float(x[0]) for x in width_profile(side, np.array([s]), turb.blade_length_m))
            if hi - lo < 0.1:
                continue
            if cls == "leading_edge_erosion" and side != "leading_edge":
                tpos = lo + 0.08 * (hi - lo) if side == "pressure_side" else hi - 0.08 * (hi - lo)
            elif cls == "vortex_generator_missing":
                tpos = lo + 0.8 * (hi - lo)
            else:
                tpos = float(srng.uniform(lo + 0.25 * (hi - lo), hi - 0.25 * (hi - lo)))
            d = WindDefect(len(scene.defects), cls, tb, bl, side, s, tpos, size)
            _draw_wind_defect(d, scene.q, srng, lo, hi)
            ph, pw = d.mask.shape
            d.patch_j0 = int(np.rint(s / scene.q)) - pw // 2
            d.patch_i0 = int(np.rint((tpos + WIDTH_M / 2) / scene.q)) - ph // 2
            d.patch_i0 = int(np.clip(d.patch_i0, 0, int(WIDTH_M / scene.q) - ph))
            # keep only the part on the blade
            jj = (np.arange(pw) + d.patch_j0 + 0.5) * scene.q
            l2, h2 = width_profile(side, jj, turb.blade_length_m)
            ti = (np.arange(ph)[:, None] + d.patch_i0 + 0.5) * scene.q - WIDTH_M / 2
            on = (ti > l2[None, :] + scene.q) & (ti < h2[None, :] - scene.q)
            d.mask[~on] = 0
            d.patch_rgba[..., 3][~on] = 0
            if d.mask.sum() == 0 or any(_overlaps(d, o) for o in scene.defects):
                continue  # one defect per surface spot: label maps and boxes stay unambiguous
            scene.defects.append(d)
    renderer = WindRenderer(scene, cam, rng_for(seed, STREAM_EFFECTS))
    names_img = [f"DJI_{i + 1:04d}.JPG" for i in range(len(frames))]
    gaps = [
        3.0 if i + 1 < len(frames) and frames[i + 1]["side"] == frames[i]["side"] else 25.0
        for i in range(len(frames))
    ]
    params = dict(
        common,
        images=len(frames),
        standoff_m=standoff,
        gsd_m=gsd,
        raster_res_m=scene.q,
        turbines=len(turbines),
        overlap_along_blade=overlap,
    )
    params.pop("side_overlap", None)

    def render_fn(i, rng, with_masks):
        return renderer.render(frames[i], rng, with_masks)

    def registry_fn(idx):
        d = scene.defects[idx]
        turb = turbines[d.turbine]
        b, _, _ = turb.axes(d.blade)
        v = view_dir(turb, d.blade, d.side)
        c = np.cross(v, b)
        c /= np.linalg.norm(c)
        ys, xs = np.nonzero(d.mask)
        s = (xs.mean() + d.patch_j0 + 0.5) * scene.q
        t = (ys.mean() + d.patch_i0 + 0.5) * scene.q - WIDTH_M / 2
        p = turb.hub() + s * b + t * c
        lat, lon = origin.to_wgs84(p[0], p[1])
        ext = max(np.ptp(xs) + 1, np.ptp(ys) + 1) * scene.q
        return {
            "class": d.cls,
            "asset": {
                "turbine_id": turb.turbine_id,
                "blade": BLADES[d.blade],
                "side": d.side,
                "radius_m": round(float(s), 3),
                "distance_from_root_m": round(float(s) - ROOT_R, 3),
            },
            "lat": round(float(lat), 9),
            "lon": round(float(lon), 9),
            "alt_m": round(origin.alt_m + p[2], 3),
            "size_m": round(float(ext), 3),
            "delta_t_k": None,
        }

    def write_site(path: Path) -> None:
        feats = []
        for tb in turbines:
            lat, lon = origin.to_wgs84(tb.e, tb.n)
            feats.append(
                {
                    "type": "Feature",
                    "geometry": {
                        "type": "Point",
                        "coordinates": [round(float(lon), 9), round(float(lat), 9)],
                    },
                    "properties": {
                        "turbine_id": tb.turbine_id,
                        "hub_height_m": tb.hub_height_m,
                        "blade_length_m": tb.blade_length_m,
                        "rotor_yaw_deg": tb.rotor_yaw_deg,
                        "azimuth_deg": tb.azimuth_deg,
                        "blades": list(BLADES),
                    },
                }
            )
        gj = {
            "type": "FeatureCollection",
            "properties": {
                "kind": "wind-farm",
                "origin": {"lat": origin.lat, "lon": origin.lon, "alt_m": origin.alt_m},
            },
            "features": feats,
        }
        path.write_text(json.dumps(gj, indent=1), encoding="utf-8")

    poses = [f["pose"] for f in frames]
    flight = SynthFlight(
        dom,
        seed,
        cam,
        origin,
        poses,
        _times(seed, len(frames), gaps),
        names_img,
        conditions,
        params,
        render_fn,
        registry_fn,
        write_site,
    )
    flight.frames = frames
    return flight

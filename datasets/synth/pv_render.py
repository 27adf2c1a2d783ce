"""PV rendering: module sprites, defect sprites with their masks, and ground windows in the site's mosaic grid.

The site is rendered on a north-up mosaic grid of ``res`` metres per pixel: pixel ``(x, y)`` (OpenCV pixel-centre
coordinates) is the ground point ``e = E0 + (x + 0.5) res``, ``n = N0 - (y + 0.5) res``. The mosaic is never held
whole: a frame asks for the window under its footprint, assembled from cached pieces (tileable ground textures,
one sprite per module variant, one sprite per defective module), so the same defect looks the same in every
frame that sees it. Thermal windows hold temperatures in °C (float32); RGB windows hold BGR uint8.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from datasets.synth import textures
from datasets.synth.pv_site import PVSite
from detection.taxonomy import Domain, by_name

FRAME_M = 0.035
CELL_GAP_M = 0.003


@dataclass
class PVDefect:
    """One unique defect on the plant (before we know which frames see it)."""

    index: int
    cls: str
    modules: list[int]
    delta_t_k: float | None
    patch_i0: int = 0
    patch_j0: int = 0
    patch: np.ndarray | None = None
    """(h, w) uint8 0/255 mask in the mosaic grid at (patch_i0, patch_j0)."""
    defect_id: str = ""


@dataclass
class ModuleGeom:
    """Sprite-pixel geometry of a module: (th, tw) pixels, the long axis (0 = rows, 1 = cols), cell boxes."""

    th: int
    tw: int
    long_axis: int
    n_long: int
    n_short: int
    res: float

    def cell_box(self, il: int, is_: int) -> tuple[int, int, int, int]:
        """(r0, r1, c0, c1) sprite pixels of cell (il along the long axis, is_ across)."""
        fr = FRAME_M / self.res
        inner_h, inner_w = self.th - 2 * fr, self.tw - 2 * fr
        nr, nc = (self.n_long, self.n_short) if self.long_axis == 0 else (self.n_short, self.n_long)
        r, c = (il, is_) if self.long_axis == 0 else (is_, il)
        r0 = fr + r * inner_h / nr
        c0 = fr + c * inner_w / nc
        return (
            int(np.rint(r0)),
            int(np.rint(r0 + inner_h / nr)),
            int(np.rint(c0)),
            int(np.rint(c0 + inner_w / nc)),
        )

    def cells_rect(self, il0: int, il1: int, is0: int, is1: int) -> tuple[int, int, int, int]:
        a = self.cell_box(il0, is0)
        b = self.cell_box(il1, is1)
        return min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3])


def module_template(geom: ModuleGeom, style: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A module's look: ((th, tw, 3) float32 BGR 0..1 reflectance, (th, tw) float32 thermal offsets in K)."""
    ss = 4
    h, w = geom.th * ss, geom.tw * ss
    res = geom.res / ss
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    y_m, x_m = (yy + 0.5) * res, (xx + 0.5) * res
    hm, wm = h * res, w * res
    inner = (x_m > FRAME_M) & (x_m < wm - FRAME_M) & (y_m > FRAME_M) & (y_m < hm - FRAME_M)
    nr, nc = (geom.n_long, geom.n_short) if geom.long_axis == 0 else (geom.n_short, geom.n_long)
    cw, ch = (wm - 2 * FRAME_M) / nc, (hm - 2 * FRAME_M) / nr
    fx, fy = (x_m - FRAME_M) / cw, (y_m - FRAME_M) / ch
    ci, ri = np.floor(fx), np.floor(fy)
    ux, uy = (fx - ci) * cw, (fy - ri) * ch  # metres inside the cell
    gap = (ux < CELL_GAP_M) | (ux > cw - CELL_GAP_M) | (uy < CELL_GAP_M) | (uy > ch - CELL_GAP_M)
    if style == "mono":  # pseudo-square cells: cut corners show the backsheet
        cut = 0.022
        gap |= (np.minimum(ux, cw - ux) + np.minimum(uy, ch - uy)) < cut
    cell_var = rng.normal(0.0, 0.035, size=(nr + 1, nc + 1)).astype(np.float32)
    ri_c = np.clip(ri.astype(int), 0, nr)
    ci_c = np.clip(ci.astype(int), 0, nc)
    var = cell_var[ri_c, ci_c]
    if style == "poly":
        cell = np.array([0.62, 0.34, 0.17], np.float32)
        grain = textures.periodic_noise(rng, 1 << (max(h, w) - 1).bit_length(), 0.01 / res, 2)[:h, :w]
        tex = 1.0 + 0.12 * grain
    else:
        cell = np.array([0.30, 0.20, 0.15], np.float32) if style == "mono" else np.array([0.34, 0.24, 0.19])
        tex = np.ones((h, w), np.float32)
    img = np.empty((h, w, 3), np.float32)
    img[:] = np.array([0.72, 0.72, 0.70], np.float32)  # aluminium frame
    body = inner & ~gap
    img[inner & gap] = np.array([0.86, 0.87, 0.87], np.float32)
    img[body] = cell[None, :] * ((1.0 + var) * tex)[body][:, None]
    # busbars run along the long axis
    n_bus = 5 if style != "poly" else 3
    along = ux if geom.long_axis == 0 else uy
    span = cw if geom.long_axis == 0 else ch
    pos = (along / span) * (n_bus + 1)
    bus = (
        body
        & (np.abs(pos - np.rint(pos)) * span / (n_bus + 1) < 0.0008)
        & (np.rint(pos) >= 1)
        & (np.rint(pos) <= n_bus)
    )
    img[bus] = np.array([0.62, 0.62, 0.63], np.float32)
    if style == "halfcut":  # the module's two halves are separated by a wider gap across the long axis
        mid = (y_m if geom.long_axis == 0 else x_m) - (hm if geom.long_axis == 0 else wm) / 2
        img[inner & (np.abs(mid) < 0.012)] = np.array([0.86, 0.87, 0.87], np.float32)
    rgb = cv2.resize(img, (geom.tw, geom.th), interpolation=cv2.INTER_AREA)

    # thermal offsets (K) relative to the module's nominal temperature
    th = np.zeros((h, w), np.float32)
    th[body] = (rng.normal(0.0, 0.12, size=(nr + 1, nc + 1)).astype(np.float32)[ri_c, ci_c])[body]
    th[inner & gap] = -0.6
    th[~inner] = -3.5
    long_pos = (y_m / hm) if geom.long_axis == 0 else (x_m / wm)
    th += (0.5 - long_pos).astype(np.float32) * 0.5
    jb_y, jb_x = (0.12 * hm, 0.5 * wm) if geom.long_axis == 0 else (0.5 * hm, 0.12 * wm)
    th += 1.0 * np.exp(-((x_m - jb_x) ** 2 + (y_m - jb_y) ** 2) / (2 * 0.06**2)).astype(np.float32)
    thermal = cv2.resize(th, (geom.tw, geom.th), interpolation=cv2.INTER_AREA)
    return rgb, thermal


# ---------------------------------------------------------------------------------------------------------------
# Defect drawing: each function edits one module sprite in place and returns its (th, tw) bool mask.


def _disc(shape: tuple[int, int], cy: float, cx: float, r: float) -> np.ndarray:
    yy, xx = np.ogrid[0 : shape[0], 0 : shape[1]]
    return ((yy - cy) ** 2 + (xx - cx) ** 2) <= r * r


def _blob(
    rng: np.random.Generator, shape: tuple[int, int], cy: float, cx: float, r: float, rough: float = 0.35
) -> np.ndarray:
    """(h, w) float32 0..1 soft irregular blob (radius ``r`` px) at (cy, cx).

    Only the blob's bounding box is evaluated: outside ``1.15 * max(r (1 + sum|k|), 0.5)`` the value is 0.
    """
    k = rng.normal(0, rough / 2, size=5)
    ph = rng.uniform(0, 2 * np.pi, size=5)
    out = np.zeros(shape, np.float32)
    reach = 1.15 * max(r * (1 + float(np.abs(k).sum())), 0.5) + 1.0
    y0, y1 = max(0, math.floor(cy - reach)), min(shape[0], math.ceil(cy + reach) + 1)
    x0, x1 = max(0, math.floor(cx - reach)), min(shape[1], math.ceil(cx + reach) + 1)
    if y0 >= y1 or x0 >= x1:
        return out
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    ang = np.arctan2(yy - cy, xx - cx)
    rr = r * (1 + sum(k[i] * np.sin((i + 2) * ang + ph[i]) for i in range(5)))
    d = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2) / np.maximum(rr, 0.5)
    out[y0:y1, x0:x1] = np.clip((1.15 - d) / 0.3, 0, 1)
    return out


def _thermal_defect(
    cls: str, geom: ModuleGeom, spr: np.ndarray, rng: np.random.Generator, dt: float
) -> np.ndarray:
    """Raise a thermal sprite's offsets for ``cls`` by ``dt`` K on its plateau; returns the defect mask."""
    mask = np.zeros(spr.shape, bool)
    if cls in ("module_offline", "string_offline"):
        spr += dt
        mask[:] = True
        return mask
    if cls == "bypass_diode":
        sub = int(rng.integers(0, 3))
        r0, r1, c0, c1 = geom.cells_rect(0, geom.n_long - 1, 2 * sub, 2 * sub + 1)
        spr[r0:r1, c0:c1] += dt
        mask[r0:r1, c0:c1] = True
        return mask
    if cls == "junction_box":
        r = max(1.2, rng.uniform(0.06, 0.1) / geom.res)
        cy, cx = (0.12 * geom.th, 0.5 * geom.tw) if geom.long_axis == 0 else (0.5 * geom.th, 0.12 * geom.tw)
        halo = _disc(spr.shape, cy, cx, r * 2.2)
        yy, xx = np.mgrid[0 : spr.shape[0], 0 : spr.shape[1]]
        dist = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2)
        spr[halo] = np.maximum(
            spr[halo], (dt * 0.5 * np.exp(-(((dist[halo] - r) / r) ** 2))).astype(np.float32)
        )
        mask = _disc(spr.shape, cy, cx, r)
        spr[mask] = np.maximum(spr[mask], dt)
        return mask
    if cls in ("hotspot_single_cell", "hotspot_multi_cell"):
        il, is_ = int(rng.integers(0, geom.n_long)), int(rng.integers(0, geom.n_short))
        cells = [(il, is_, 1.0)]
        if cls == "hotspot_multi_cell":
            for _ in range(int(rng.integers(2, 6))):
                bl, bs, _w = cells[int(rng.integers(0, len(cells)))]
                dl, ds = [(0, 1), (1, 0), (0, -1), (-1, 0)][int(rng.integers(0, 4))]
                nl, ns = int(np.clip(bl + dl, 0, geom.n_long - 1)), int(np.clip(bs + ds, 0, geom.n_short - 1))
                if all((nl, ns) != (c[0], c[1]) for c in cells):
                    cells.append((nl, ns, float(rng.uniform(0.7, 1.0))))
        field = np.zeros(spr.shape, np.float32)
        for cl, cs, wgt in cells:
            r0, r1, c0, c1 = geom.cell_box(cl, cs)
            field[r0:r1, c0:c1] = np.maximum(field[r0:r1, c0:c1], dt * wgt)
            mask[r0:r1, c0:c1] = True
        halo = cv2.GaussianBlur(field, (0, 0), max(1.0, 0.08 / geom.res)) * 0.6
        spr[:] = np.maximum(spr, np.where(mask, field, halo))
        return mask
    if cls == "pid":
        # warm cells concentrated along the frame edges (cells next to the grounded frame degrade first)
        for il in range(geom.n_long):
            for is_ in range(geom.n_short):
                edge = min(il, geom.n_long - 1 - il, is_, geom.n_short - 1 - is_)
                p = [0.95, 0.55, 0.2][min(edge, 2)]
                if rng.random() < p:
                    r0, r1, c0, c1 = geom.cell_box(il, is_)
                    w = rng.uniform(0.85, 1.0) if edge == 0 else rng.uniform(0.3, 0.8)
                    spr[r0:r1, c0:c1] += dt * w
        r0, r1, c0, c1 = geom.cell_box(0, 0)
        spr[r0:r1, c0:c1] = np.maximum(spr[r0:r1, c0:c1], dt)
        mask[:] = True
        return mask
    raise ValueError(f"no thermal renderer for class {cls!r}")


def _rgb_defect(
    cls: str, geom: ModuleGeom, spr: np.ndarray, rng: np.random.Generator, size_m: float
) -> np.ndarray:
    """Paint an RGB defect of ``cls`` (about ``size_m`` long) on a (th, tw, 3) float sprite; returns its mask."""
    th, tw = geom.th, geom.tw
    rpx = max(1.5, size_m / geom.res / 2)
    cy, cx = (
        rng.uniform(rpx * 0.6, max(rpx * 0.6 + 1, th - rpx * 0.6)),
        rng.uniform(rpx * 0.6, max(rpx * 0.6 + 1, tw - rpx * 0.6)),
    )
    alpha = np.zeros((th, tw), np.float32)
    colour = np.zeros((th, tw, 3), np.float32)
    if cls == "soiling":
        if rng.random() < 0.5:  # bird droppings: white splats with grey rims
            for _ in range(int(rng.integers(1, 5))):
                r = rpx * rng.uniform(0.25, 0.6)
                oy, ox = cy + rng.normal(0, rpx * 0.4), cx + rng.normal(0, rpx * 0.4)
                b = _blob(rng, (th, tw), oy, ox, r, 0.6)
                core = _blob(rng, (th, tw), oy, ox, r * 0.6, 0.5)
                alpha = np.maximum(alpha, b)
                colour += (b - core)[..., None] * np.array([0.55, 0.58, 0.6]) + core[..., None] * np.array(
                    [0.93, 0.95, 0.95]
                )
            colour /= np.maximum(alpha, 1e-3)[..., None]
        else:  # dust/dirt band collecting at the module's lower (south) edge
            dy = th - rng.uniform(0.3, 0.9) * rpx
            b = _blob(rng, (th, tw), dy, cx, rpx, 0.4)
            alpha = b * rng.uniform(0.75, 0.95)
            colour[:] = np.array([0.45, 0.6, 0.7]) * rng.uniform(0.85, 1.1)
            noise = cv2.GaussianBlur(rng.standard_normal((th, tw)).astype(np.float32), (0, 0), 1.5)
            alpha = np.clip(alpha * (1 + 0.6 * noise), 0, 1)
    elif cls == "glass_breakage":
        lines = np.zeros((th * 2, tw * 2), np.float32)
        c = (int(cx * 2), int(cy * 2))
        for _ in range(int(rng.integers(8, 20))):
            ang = rng.uniform(0, 2 * np.pi)
            length = rpx * 2 * rng.uniform(0.5, 1.0)
            pts = [c]
            for k in range(1, 6):
                ang += rng.normal(0, 0.2)
                pts.append(
                    (int(c[0] + np.cos(ang) * length * k / 5), int(c[1] + np.sin(ang) * length * k / 5))
                )
            cv2.polylines(lines, [np.array(pts, np.int32)], False, 1.0, 1)
        for _ in range(int(rng.integers(1, 4))):
            rad = int(rpx * 2 * rng.uniform(0.2, 0.8))
            cv2.ellipse(
                lines,
                c,
                (rad, int(rad * rng.uniform(0.7, 1.1))),
                rng.uniform(0, 180),
                0,
                int(rng.uniform(120, 360)),
                1.0,
                1,
            )
        cv2.circle(lines, c, max(2, int(rpx * 0.25)), 1.0, -1)
        alpha = cv2.resize(lines, (tw, th), interpolation=cv2.INTER_AREA)
        alpha = np.clip(alpha * 1.6, 0, 1) * rng.uniform(0.7, 0.95)
        colour[:] = np.array([0.85, 0.86, 0.86])
    elif cls == "vegetation_shading":
        base_y = th - 1 if rng.random() < 0.7 else rng.uniform(0, th)
        shadow = np.zeros((th, tw), np.float32)
        for _ in range(int(rng.integers(6, 16))):
            r = rpx * rng.uniform(0.15, 0.4)
            oy = base_y - abs(rng.normal(0, rpx * 0.7))
            ox = cx + rng.normal(0, rpx * 0.6)
            b = _blob(rng, (th, tw), oy, ox, r, 0.7)
            g = rng.uniform(0.6, 1.2)
            colour += b[..., None] * np.array([0.18, 0.42, 0.25]) * g
            alpha = np.maximum(alpha, b)
            shadow = np.maximum(shadow, _blob(rng, (th, tw), oy - r * 0.8, ox - r * 0.5, r * 1.2, 0.5))
        colour /= np.maximum(alpha, 1e-3)[..., None] * 1.0 + 1e-3
        sh = np.clip(shadow - alpha, 0, 1) * 0.6
        spr *= (1 - sh)[..., None]
        alpha = np.maximum(alpha, 0.0)
        mask_extra = sh > 0.25
        spr[:] = spr * (1 - alpha[..., None]) + colour * alpha[..., None]
        return (alpha > 0.3) | mask_extra
    elif cls == "snail_trail":
        n_lines = int(rng.integers(3, 9))
        lines = np.zeros((th * 2, tw * 2), np.float32)
        for _ in range(n_lines):
            y0 = rng.uniform(cy - rpx, cy + rpx) * 2
            x0 = rng.uniform(cx - rpx, cx + rpx) * 2
            ang = rng.uniform(0, np.pi)
            pts = []
            for _ in range(12):
                ang += rng.normal(0, 0.35)
                y0 += np.sin(ang) * rpx * 0.3
                x0 += np.cos(ang) * rpx * 0.3
                pts.append((int(x0), int(y0)))
            cv2.polylines(lines, [np.array(pts, np.int32)], False, 1.0, max(1, int(0.006 / geom.res * 2)))
        alpha = cv2.resize(lines, (tw, th), interpolation=cv2.INTER_AREA) * 1.5
        alpha = np.clip(alpha, 0, 1) * 0.95
        colour[:] = np.array([0.38, 0.5, 0.62]) if rng.random() < 0.5 else np.array([0.12, 0.16, 0.2])
    elif cls == "delamination":
        b = _blob(rng, (th, tw), cy, cx, rpx, 0.5)
        noise = cv2.GaussianBlur(rng.standard_normal((th, tw)).astype(np.float32), (0, 0), 2.0)
        alpha = np.clip(b * (0.8 + 0.35 * noise), 0, 0.95)
        colour[:] = np.array([0.35, 0.68, 0.85]) * rng.uniform(0.85, 1.1)  # yellow-brown (BGR)
        for _ in range(int(rng.integers(3, 12))):  # bubbles
            by, bx = cy + rng.normal(0, rpx * 0.5), cx + rng.normal(0, rpx * 0.5)
            d = _disc((th, tw), by, bx, max(1.0, rpx * rng.uniform(0.05, 0.15)))
            colour[d] = np.array([0.8, 0.88, 0.9])
            alpha[d] = np.maximum(alpha[d], 0.8 * b[d])
    elif cls == "missing_module":
        return np.ones((th, tw), bool)  # drawn by the window (rails over ground)
    else:
        raise ValueError(f"no RGB renderer for class {cls!r}")
    spr[:] = spr * (1 - alpha[..., None]) + colour * alpha[..., None]
    return alpha > 0.3


# ---------------------------------------------------------------------------------------------------------------


class PVScene:
    """Everything needed to render any window of a PV site's mosaic (thermal or RGB)."""

    def __init__(
        self,
        site: PVSite,
        res: float,
        thermal: bool,
        rng: np.random.Generator,
        conditions: dict,
        defect_rate: float,
        flight_area: tuple[float, float, float, float],
    ) -> None:
        self.site, self.res, self.thermal = site, res, thermal
        self.domain = Domain.PV_THERMAL if thermal else Domain.PV_RGB
        e_min, n_min, e_max, n_max = site.extent
        self.E0, self.N0 = e_min, n_max
        self.width = math.ceil((e_max - e_min) / res)
        self.height = math.ceil((n_max - n_min) / res)
        long_axis = 0 if site.orientation == "portrait" else 1
        th = int(np.rint(site.module_n_m / res))
        tw = int(np.rint(site.module_e_m / res))
        self.geom = ModuleGeom(th, tw, long_axis, site.cells_long, site.cells_short, res)
        self.mi = np.rint((self.N0 - site.n1) / res).astype(np.int64)
        self.mj = np.rint((site.e0 - self.E0) / res).astype(np.int64)

        # appearance: module variants, ground textures
        self.variants_rgb: list[np.ndarray] = []
        self.variants_th: list[np.ndarray] = []
        base_rgb, base_th = module_template(self.geom, site.cell_style, rng)
        for _ in range(6):
            tint = rng.normal(1.0, 0.03, size=3).astype(np.float32) * rng.uniform(0.92, 1.08)
            self.variants_rgb.append(base_rgb * tint)
            self.variants_th.append(base_th + rng.normal(0, 0.1, size=base_th.shape).astype(np.float32) * 0.5)
        self.variant = rng.integers(0, 6, size=len(site))
        amb = float(conditions["ambient_temp_c"])
        irr = float(conditions["irradiance_w_m2"])
        self.ambient = amb
        rise = irr / 1000.0 * rng.uniform(25.0, 31.0) - 0.4 * float(conditions["wind_speed_m_s"])
        self.module_temp = (amb + rise + rng.normal(0.0, 0.25, size=len(site))).astype(np.float32)
        self.tex = 2048 if not thermal else 512
        self.dryness = float(rng.uniform(0.1, 0.8))
        grass = textures.grass_texture(rng, self.tex, res, self.dryness)
        gravel = textures.gravel_texture(rng, self.tex, res)
        if thermal:
            g = cv2.GaussianBlur(cv2.cvtColor(grass, cv2.COLOR_BGR2GRAY).astype(np.float32), (0, 0), 1.2)
            gv = cv2.GaussianBlur(cv2.cvtColor(gravel, cv2.COLOR_BGR2GRAY).astype(np.float32), (0, 0), 1.2)
            ground_rise = irr / 1000.0 * rng.uniform(6.0, 12.0)
            self.grass_sheet = (amb + ground_rise + (g - g.mean()) * 0.06).astype(np.float32)
            self.gravel_sheet = (amb + ground_rise * 1.6 + (gv - gv.mean()) * 0.05).astype(np.float32)
            self.shadow_drop = ground_rise * 0.8
        else:
            self.grass_sheet, self.gravel_sheet = grass, gravel
        self.variants_u8 = [np.clip(v * 255.0, 0, 255).astype(np.uint8) for v in self.variants_rgb]
        self.coarse = 64
        cshape = (self.height // self.coarse + 4, self.width // self.coarse + 4)
        self.lowfreq = rng.normal(0.0, 1.0, size=cshape).astype(np.float32)
        self.lowfreq = cv2.GaussianBlur(self.lowfreq, (0, 0), 1.5)
        self.lowfreq /= self.lowfreq.std() + 1e-6
        lf3 = np.stack(
            [self.lowfreq, cv2.GaussianBlur(rng.normal(0, 1, cshape).astype(np.float32), (0, 0), 2.0)],
            axis=-1,
        )
        gain = 1.0 + 0.13 * lf3[..., 0:1] + 0.06 * lf3[..., 1:2] * np.array([-1.0, 0.3, 1.0], np.float32)
        self.lowfreq_rgb = np.clip(gain * 128.0, 0, 255).astype(np.uint8)
        self.road_px = [self._rect_px(r) for r in site.roads]
        sun_dx, sun_dy = rng.uniform(-0.6, 0.6), rng.uniform(0.8, 1.8)  # metres east, north
        self.shadow_px = [
            self._rect_px((t[0] + sun_dx, t[1] + sun_dy, t[2] + sun_dx, t[3] + sun_dy)) for t in site.tables
        ]
        self.defects = self._place_defects(rng, defect_rate, flight_area)

    # -----------------------------------------------------------------------------------------------------------
    def _rect_px(self, rect) -> tuple[int, int, int, int]:
        e0, n0, e1, n1 = rect
        return (
            int(np.rint((self.N0 - n1) / self.res)),
            int(np.rint((self.N0 - n0) / self.res)),
            int(np.rint((e0 - self.E0) / self.res)),
            int(np.rint((e1 - self.E0) / self.res)),
        )

    def enu_of_px(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mosaic pixel-centre coordinates → (e, n) metres."""
        return self.E0 + (np.asarray(x) + 0.5) * self.res, self.N0 - (np.asarray(y) + 0.5) * self.res

    def mosaic_to_enu(self) -> np.ndarray:
        """(3, 3) affine from mosaic pixel coordinates (x, y, 1) to ground (e, n, 1)."""
        r = self.res
        return np.array([[r, 0, self.E0 + 0.5 * r], [0, -r, self.N0 - 0.5 * r], [0, 0, 1.0]])

    def _place_defects(self, rng: np.random.Generator, rate: float, area) -> list[PVDefect]:
        site = self.site
        cx = (site.e0 + site.e1) / 2
        cy = (site.n0 + site.n1) / 2
        inside = np.flatnonzero((cx > area[0]) & (cx < area[2]) & (cy > area[1]) & (cy < area[3]))
        n_def = int(rng.binomial(len(inside), min(1.0, rate))) if len(inside) else 0
        classes = [c.name for c in _domain_classes(self.domain)]
        weights = np.array([0.5 if c == "string_offline" else 1.0 for c in classes])
        weights /= weights.sum()
        used = np.zeros(len(site), bool)
        out: list[PVDefect] = []
        self.sprites: dict[int, np.ndarray] = {}
        self.sprite_masks: dict[int, tuple[int, np.ndarray]] = {}
        self.missing: set[int] = set()
        for _ in range(n_def):
            cls = str(rng.choice(classes, p=weights))
            for _try in range(20):
                m = int(inside[int(rng.integers(0, len(inside)))])
                mods = (
                    [int(x) for x in site.string_modules[int(site.string_index[m])]]
                    if cls == "string_offline"
                    else [m]
                )
                if not used[mods].any():
                    break
            else:
                continue
            used[mods] = True
            dc = by_name(self.domain, cls)
            dt = float(rng.uniform(*dc.delta_t_range)) if self.thermal and dc.delta_t_range else None
            size = float(rng.uniform(*dc.size_m))
            d = PVDefect(
                index=len(out), cls=cls, modules=mods, delta_t_k=None if dt is None else round(dt, 2)
            )
            for mm in mods:
                if self.thermal:
                    spr = self.variants_th[self.variant[mm]].copy()
                    mask = _thermal_defect(cls, self.geom, spr, rng, float(d.delta_t_k))
                else:
                    spr = self.variants_rgb[self.variant[mm]].copy()
                    mask = _rgb_defect(cls, self.geom, spr, rng, size)
                    if cls == "missing_module":
                        self.missing.add(mm)
                self.sprites[mm] = spr if self.thermal else np.clip(spr * 255.0, 0, 255).astype(np.uint8)
                self.sprite_masks[mm] = (d.index, mask)
            i0 = min(int(self.mi[mm]) for mm in mods)
            j0 = min(int(self.mj[mm]) for mm in mods)
            i1 = max(int(self.mi[mm]) + self.geom.th for mm in mods)
            j1 = max(int(self.mj[mm]) + self.geom.tw for mm in mods)
            patch = np.zeros((i1 - i0, j1 - j0), np.uint8)
            for mm in mods:
                a, b = int(self.mi[mm]) - i0, int(self.mj[mm]) - j0
                patch[a : a + self.geom.th, b : b + self.geom.tw][self.sprite_masks[mm][1]] = 255
            d.patch_i0, d.patch_j0, d.patch = i0, j0, patch
            out.append(d)
        return out

    # -----------------------------------------------------------------------------------------------------------
    def _lowfreq_window(self, i0: int, j0: int, h: int, w: int) -> np.ndarray:
        c = self.coarse
        ci0, cj0 = i0 // c - 1, j0 // c - 1
        nh, nw = h // c + 4, w // c + 4
        pad = np.pad(self.lowfreq, ((8, 8 + nh), (8, 8 + nw)), mode="reflect")
        crop = pad[ci0 + 8 : ci0 + 8 + nh, cj0 + 8 : cj0 + 8 + nw]
        up = cv2.resize(crop, (nw * c, nh * c), interpolation=cv2.INTER_LINEAR)
        oi, oj = i0 - ci0 * c - c // 2, j0 - cj0 * c - c // 2
        return up[oi : oi + h, oj : oj + w]

    def _lowfreq_gain(self, i0: int, j0: int, h: int, w: int) -> np.ndarray:
        """(h, w, 3) uint8 gain (128 = 1.0): slow brightness and hue variation of the ground."""
        c = self.coarse
        ci0, cj0 = i0 // c - 1, j0 // c - 1
        nh, nw = h // c + 4, w // c + 4
        pad = np.pad(self.lowfreq_rgb, ((8, 8 + nh), (8, 8 + nw), (0, 0)), mode="reflect")
        crop = pad[ci0 + 8 : ci0 + 8 + nh, cj0 + 8 : cj0 + 8 + nw]
        oi, oj = i0 - ci0 * c - c // 2, j0 - cj0 * c - c // 2
        up = cv2.resize(crop, (nw * c, nh * c), interpolation=cv2.INTER_LINEAR)
        return up[oi : oi + h, oj : oj + w]

    def window(
        self, i0: int, j0: int, h: int, w: int, with_labels: bool = False
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """The mosaic window at (i0, j0) of (h, w) pixels.

        Returns ``(image, glass, labels)``: image (h, w, 3) uint8 BGR or (h, w) float32 °C; glass (h, w) uint8
        (255 on modules) or float32 0/1 (thermal); labels (h, w) int32 defect index + 1 (0 = none) or None.
        """
        img = textures.window_of(self.grass_sheet, i0, j0, h, w)
        if self.thermal:
            img += self._lowfreq_window(i0, j0, h, w) * 1.2
        else:
            cv2.multiply(img, self._lowfreq_gain(i0, j0, h, w), dst=img, scale=1.0 / 128.0)
        for r0, r1, c0, c1 in self.road_px:
            a0, a1, b0, b1 = max(r0, i0), min(r1, i0 + h), max(c0, j0), min(c1, j0 + w)
            if a0 < a1 and b0 < b1:
                img[a0 - i0 : a1 - i0, b0 - j0 : b1 - j0] = textures.window_of(
                    self.gravel_sheet, a0, b0, a1 - a0, b1 - b0
                )
        for r0, r1, c0, c1 in self.shadow_px:
            a0, a1, b0, b1 = max(r0, i0), min(r1, i0 + h), max(c0, j0), min(c1, j0 + w)
            if a0 < a1 and b0 < b1:
                sl = (slice(a0 - i0, a1 - i0), slice(b0 - j0, b1 - j0))
                if self.thermal:
                    img[sl] -= self.shadow_drop
                else:
                    img[sl] = (img[sl].astype(np.uint16) * 110 >> 8).astype(np.uint8)
        glass = np.zeros((h, w), np.float32 if self.thermal else np.uint8)
        labels = np.zeros((h, w), np.int32) if with_labels else None
        g = self.geom
        sel = np.flatnonzero(
            (self.mi < i0 + h) & (self.mi + g.th > i0) & (self.mj < j0 + w) & (self.mj + g.tw > j0)
        )
        for m in sel:
            a, b = int(self.mi[m]) - i0, int(self.mj[m]) - j0
            ya, yb, xa, xb = max(a, 0), min(a + g.th, h), max(b, 0), min(b + g.tw, w)
            src = (slice(ya - a, yb - a), slice(xa - b, xb - b))
            dst = (slice(ya, yb), slice(xa, xb))
            if m in self.missing:
                self._rails(img, dst, src)
            else:
                spr = self.sprites.get(m)
                if self.thermal:
                    base = spr if spr is not None else self.variants_th[self.variant[m]]
                    img[dst] = base[src] + self.module_temp[m]
                    glass[dst] = 1.0
                else:
                    base = spr if spr is not None else self.variants_u8[self.variant[m]]
                    img[dst] = base[src]
                    glass[dst] = 255
            if labels is not None and m in self.sprite_masks:
                idx, mask = self.sprite_masks[m]
                labels[dst][mask[src]] = idx + 1
        return img, glass, labels

    def _rails(self, img: np.ndarray, dst: tuple, src: tuple) -> None:
        """Mounting rails seen through the gap of a missing module (two east-west profiles)."""
        g = self.geom
        rows = np.arange(g.th)[src[0]]
        for frac in (0.25, 0.75):
            rr = int(frac * g.th)
            half = max(1, int(0.02 / self.res))
            hit = np.flatnonzero(np.abs(rows - rr) <= half)
            if len(hit):
                img[dst][hit] = np.array([170, 172, 175], np.uint8)


def _domain_classes(domain: Domain):
    from detection.taxonomy import classes

    return classes(domain)

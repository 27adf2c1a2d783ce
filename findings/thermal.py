"""ΔT from radiometric frames: the defect's maximum against the normal module temperature around it.

* Defect temperature: the maximum of the 3×3 median-filtered temperatures inside the box (the median filter
  removes single-pixel noise; a hot cell of a few pixels keeps its plateau).
* Reference ("module's normal median"): the median of the module pixels around the box — the as-built module
  polygons projected back into the frame (eroded by one pixel so frame edges and gaps do not count) — excluding
  every detection box of the frame (dilated by 2 px). The region grows from 2 m to 8 m around the box until
  it holds at least :data:`MIN_REFERENCE_PX` pixels.
* Without a layout (or a georeferenced frame) the reference is the median of an annulus of the frame around the
  box (method ``annulus``): less accurate, since it may include ground between the rows.
* Area ΔT (``area_delta_t_k``): the median of the box's own module pixels (all box pixels without module
  polygons) against the same reference — how much warmer the pattern's area is as a whole. Area patterns
  (module or string offline, a bypassed substring) warm their whole area, so their area ΔT is about their ΔT;
  a healthy module under a box has an area ΔT near 0 even when its warmest cell makes the maximum stand out.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from detection import radiometry
from findings.georef import FrameCamera, box_corners_px
from findings.layout import SiteLayout

MIN_REFERENCE_PX = 150

ThermalReader = Callable[[str], np.ndarray]


def as_celsius(frame: np.ndarray) -> np.ndarray:
    """(H, W) uint16 centikelvin counts or float °C → (H, W) float32 °C."""
    arr = np.asarray(frame)
    if arr.ndim != 2:
        raise ValueError(f"a radiometric frame must be (H, W), got shape {arr.shape}")
    if arr.dtype == np.uint16:
        return radiometry.counts_to_celsius(arr)
    return arr.astype(np.float32)


def read_radiometric_tiff(data: bytes | str | Path) -> np.ndarray:
    """(H, W) uint16 counts of a single-channel 16-bit TIFF (bytes or a path).

    Raises:
        ValueError: not a 16-bit single-channel image.
    """
    import io

    import tifffile

    src = io.BytesIO(data) if isinstance(data, bytes | bytearray) else str(data)
    arr = tifffile.imread(src)
    if arr.dtype != np.uint16 or arr.ndim != 2:
        raise ValueError(f"not a radiometric frame: expected (H, W) uint16, got {arr.dtype} {arr.shape}")
    return arr


def folder_reader(root: str | Path) -> ThermalReader:
    """A thermal reader for frames in a local folder (relative path → counts)."""
    base = Path(root)
    return lambda rel: read_radiometric_tiff(base / rel)


def _clip_box(xyxy, w: int, h: int, pad: float = 0.0) -> tuple[int, int, int, int]:
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    return (
        max(0, int(np.floor(x1 - pad))),
        max(0, int(np.floor(y1 - pad))),
        min(w, int(np.ceil(x2 + pad))),
        min(h, int(np.ceil(y2 + pad))),
    )


class ModuleProjection:
    """Every module polygon of a layout projected into one frame, computed once and shared by all its boxes.

    ``polys(idx, x0, y0)`` gives the fillPoly vertices (2 fractional bits) of modules ``idx`` relative to an ROI
    origin — the same values :func:`module_mask` computed per box before (modules with a vertex behind the
    camera are left out).
    """

    def __init__(self, camera: FrameCamera, layout: SiteLayout) -> None:
        rings = [m.ring for m in layout.modules]
        self.offsets = np.cumsum([0, *(len(r) for r in rings)])
        self.px = camera.ground_to_pixel(np.concatenate(rings)) if rings else np.empty((0, 2), float)
        finite = np.isfinite(self.px).all(axis=1)
        self.finite = np.logical_and.reduceat(finite, self.offsets[:-1]) if rings else np.empty(0, bool)
        k = {len(r) for r in rings}
        self.px3 = self.px.reshape(len(rings), k.pop(), 2) if len(k) == 1 else None
        """(M, K, 2) view of ``px`` when every module has K vertices."""

    def polys(self, idx: list[int] | np.ndarray, x0: int, y0: int) -> list[np.ndarray] | np.ndarray:
        """int32 vertices (pixel × 4, relative to (x0, y0)) of the modules ``idx`` in front of the camera: a
        (P, K, 2) array when all have K vertices, else a list of (K_i, 2) arrays (both fillPoly inputs)."""
        origin = np.array([x0, y0])
        idx = np.asarray(idx, np.intp)
        if self.px3 is not None:
            keep = idx[self.finite[idx]]
            return np.rint((self.px3[keep] - origin) * 4).astype(np.int32)
        return [
            np.rint((self.px[self.offsets[i] : self.offsets[i + 1]] - origin) * 4).astype(np.int32)
            for i in idx
            if self.finite[i]
        ]


def exclusion_mask(shape: tuple[int, int], boxes: list[list[float]], pad: float = 2) -> np.ndarray:
    """(H, W) bool: the union of ``boxes`` (each grown by ``pad`` px and clipped to the frame)."""
    h, w = shape
    excl = np.zeros((h, w), bool)
    for b in boxes:
        e = _clip_box(b, w, h, pad=pad)
        excl[e[1] : e[3], e[0] : e[2]] = True
    return excl


def module_mask(
    camera: FrameCamera,
    layout: SiteLayout,
    roi: tuple[int, int, int, int],
    projection: ModuleProjection | None = None,
) -> np.ndarray:
    """(h, w) bool mask of module pixels (eroded by one pixel) inside ``roi`` = (x0, y0, x1, y1) of the frame.

    ``projection``: the frame's :class:`ModuleProjection` (computed here when not given).
    """
    x0, y0, x1, y1 = roi
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    corners = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], float)
    ground = camera.pixel_to_ground(corners)
    if not np.all(np.isfinite(ground)):
        return mask.astype(bool)
    c = ground.mean(0)
    radius = float(np.max(np.hypot(*(ground - c).T))) + 2.0
    idx = layout.candidate_array(c[0], c[1], radius)
    if len(idx):
        if projection is None:
            rings = [layout.modules[i].ring for i in idx]
            px_all = camera.ground_to_pixel(np.concatenate(rings))
            polys, k = [], 0
            for ring in rings:
                px = px_all[k : k + len(ring)]
                k += len(ring)
                if np.all(np.isfinite(px)):
                    polys.append(np.rint((px - np.array([x0, y0])) * 4).astype(np.int32))  # 2 fractional bits
        else:
            polys = projection.polys(idx, x0, y0)
        if len(polys):
            cv2.fillPoly(mask, polys, 1, lineType=cv2.LINE_8, shift=2)
    mask = cv2.erode(mask, np.ones((3, 3), np.uint8))
    return mask.astype(bool)


def measure_delta_t(
    temp_c: np.ndarray,
    xyxy: list[float],
    other_boxes: list[list[float]],
    camera: FrameCamera | None = None,
    layout: SiteLayout | None = None,
    *,
    exclusion: np.ndarray | None = None,
    projection: ModuleProjection | None = None,
) -> dict:
    """ΔT of the defect in box ``xyxy`` of a (H, W) °C frame (method in the module docstring).

    ``exclusion`` (optional, for many boxes per frame): the frame's (H, W) :func:`exclusion_mask` of
    ``[xyxy, *other_boxes]``, computed once per frame instead of once per box (``other_boxes`` is then
    ignored); ``projection``: the frame's :class:`ModuleProjection`.

    Returns ``{"delta_t_k", "area_delta_t_k", "defect_c", "reference_c", "reference_px", "method"}``;
    ``delta_t_k`` and ``area_delta_t_k`` are None (with ``method`` saying why) when the box is empty or no
    reference pixels exist.
    """
    h, w = temp_c.shape
    bx = _clip_box(xyxy, w, h)
    if bx[2] <= bx[0] or bx[3] <= bx[1]:
        return {
            "delta_t_k": None,
            "area_delta_t_k": None,
            "defect_c": None,
            "reference_c": None,
            "reference_px": 0,
            "method": "box outside the frame",
        }
    pad_big = 3
    r0 = _clip_box(xyxy, w, h, pad=pad_big)
    patch = temp_c[r0[1] : r0[3], r0[0] : r0[2]].astype(np.float32)
    filt = cv2.medianBlur(patch, 3)
    inner = filt[bx[1] - r0[1] : bx[3] - r0[1], bx[0] - r0[0] : bx[2] - r0[0]]
    defect = float(inner.max())
    excl = exclusion if exclusion is not None else exclusion_mask((h, w), [xyxy, *other_boxes])
    if excl.shape != (h, w):
        raise ValueError(f"exclusion mask has shape {excl.shape}, the frame {(h, w)}")
    use_layout = camera is not None and layout is not None and layout.kind == "pv" and layout.modules
    ref_vals = np.empty(0, np.float32)
    area_vals = np.empty(0, np.float32)
    method = "annulus"
    if use_layout:
        gsd = max(camera.gsd_at(camera.u), 1e-3)
        for grow_m in (2.0, 4.0, 8.0):
            roi = _clip_box(xyxy, w, h, pad=grow_m / gsd)
            modules = module_mask(camera, layout, roi, projection)
            mm = modules & ~excl[roi[1] : roi[3], roi[0] : roi[2]]
            ref_vals = temp_c[roi[1] : roi[3], roi[0] : roi[2]][mm]
            if ref_vals.size >= MIN_REFERENCE_PX:
                method = f"module pixels within {grow_m:g} m (as-built polygons projected into the frame)"
                in_box = modules[bx[1] - roi[1] : bx[3] - roi[1], bx[0] - roi[0] : bx[2] - roi[0]]
                area_vals = temp_c[bx[1] : bx[3], bx[0] : bx[2]][in_box]
                break
    if ref_vals.size < MIN_REFERENCE_PX:
        side = max(bx[2] - bx[0], bx[3] - bx[1])
        roi = _clip_box(xyxy, w, h, pad=max(8, side))
        ref_vals = temp_c[roi[1] : roi[3], roi[0] : roi[2]][~excl[roi[1] : roi[3], roi[0] : roi[2]]]
        method = "annulus around the box (no module polygons in the frame)"
        area_vals = np.empty(0, np.float32)
    if ref_vals.size == 0:
        return {
            "delta_t_k": None,
            "area_delta_t_k": None,
            "defect_c": round(defect, 2),
            "reference_c": None,
            "reference_px": 0,
            "method": "no reference pixels around the box",
        }
    ref = float(np.median(ref_vals))
    if area_vals.size == 0:  # no module pixels in the box (or no layout): the whole box
        area_vals = temp_c[bx[1] : bx[3], bx[0] : bx[2]]
    return {
        "delta_t_k": round(defect - ref, 2),
        "area_delta_t_k": round(float(np.median(area_vals)) - ref, 2),
        "defect_c": round(defect, 2),
        "reference_c": round(ref, 2),
        "reference_px": int(ref_vals.size),
        "method": method,
    }


def string_medians(
    temp_c: np.ndarray,
    camera: FrameCamera,
    layout: SiteLayout,
    xyxy: list[float],
    members: dict[str, list[int]],
    projection: ModuleProjection | None = None,
) -> dict[str, float]:
    """string id → median °C of its modules' pixels inside box ``xyxy`` (strings with < 20 such pixels omitted)."""
    h, w = temp_c.shape
    x0, y0, x1, y1 = _clip_box(xyxy, w, h)
    out: dict[str, float] = {}
    if x1 <= x0 or y1 <= y0:
        return out
    for sid, idx in members.items():
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        if projection is not None:
            polys = projection.polys(idx, x0, y0)
        else:
            polys = []
            for i in idx:
                px = camera.ground_to_pixel(layout.modules[i].ring)
                if np.all(np.isfinite(px)):
                    polys.append(np.rint((px - np.array([x0, y0])) * 4).astype(np.int32))
        if len(polys):
            cv2.fillPoly(mask, polys, 1, lineType=cv2.LINE_8, shift=2)
        mask = cv2.erode(mask, np.ones((3, 3), np.uint8)).astype(bool)
        if mask.sum() >= 20:
            out[sid] = float(np.median(temp_c[y0:y1, x0:x1][mask]))
    return out


def box_ground_polygon(camera: FrameCamera, xyxy: list[float]) -> np.ndarray:
    """(4, 2) ground (e, n) corners of a box's footprint."""
    return camera.pixel_to_ground(box_corners_px(xyxy))


def module_geometry(layout: SiteLayout, module_id: str) -> dict | None:
    """The rectangle of a layout module: ``{"centre", "u_long", "u_short", "long_m", "short_m", "cells_long",
    "cells_short", "cell_m2", "cells_from"}`` (unit axes in local (e, n)), or None when the module is unknown
    or degenerate.

    Cells: the layout's ``properties.module.cells = [across, along]`` (or the module feature's own ``cells``)
    when given; otherwise 6 cells across the short side and as many square cells as fit along the long side
    (60-/72-cell modules: 6 × 10, 6 × 12).
    """
    try:
        m = layout.module(module_id)
    except KeyError:
        return None
    (cx, cy), (w, h), angle = cv2.minAreaRect(m.ring.astype(np.float32))
    if min(w, h) <= 1e-3:
        return None
    a = np.radians(angle)
    ax_w = np.array([np.cos(a), np.sin(a)])  # minAreaRect's width axis
    ax_h = np.array([-np.sin(a), np.cos(a)])
    long_m, short_m = float(max(w, h)), float(min(w, h))
    u_long, u_short = (ax_w, ax_h) if w >= h else (ax_h, ax_w)
    cells = m.properties.get("cells") or ((layout.geojson.get("properties") or {}).get("module") or {}).get(
        "cells"
    )
    how = "layout"
    try:
        n_short, n_long = int(cells[0]), int(cells[1])
        if n_short < 1 or n_long < 1:
            raise ValueError
    except (TypeError, ValueError, IndexError):
        n_short = 6
        n_long = max(1, round(long_m / (short_m / n_short)))
        how = "assumed 6 cells across, square cells"
    return {
        "centre": np.array([cx, cy], float),
        "u_long": u_long,
        "u_short": u_short,
        "long_m": long_m,
        "short_m": short_m,
        "cells_long": n_long,
        "cells_short": n_short,
        "cell_m2": long_m * short_m / (n_long * n_short),
        "cells_from": how,
    }


SPOT_LEVEL = 0.5
"""Fraction of a spot's ΔT above the module reference that counts a pixel as warm (``measure_spot``)."""


def measure_spot(
    temp_c: np.ndarray,
    xyxy: list[float],
    camera: FrameCamera,
    layout: SiteLayout,
    module_id: str,
    reference_c: float,
) -> dict | None:
    """Warm area (in cells) and position on its module of the hot spot in box ``xyxy`` of a (H, W) °C frame.

    Warm: the connected pixels (3×3 median-filtered, 8-connected) around the box's warmest pixel that stand at
    least :data:`SPOT_LEVEL` of the spot's ΔT above ``reference_c`` (the module's normal median,
    :func:`measure_delta_t`); searched in the box grown by one cell. ``cells``: their pixel count divided by one
    cell's pixel area (the module's cell area at the frame's ground sample distance). Position: the warm area's
    centroid on the ground, as ``from_end`` (distance from the nearer short end, fraction of the long side) and
    ``across`` (signed offset from the long axis, fraction of the short side). ``cut``: the warm area touches
    the search window (it may be larger). None when the module geometry or the frame's projection is unusable.
    """
    geo = module_geometry(layout, module_id)
    if geo is None:
        return None
    h, w = temp_c.shape
    gsd = float(camera.gsd_at(camera.u))
    if not np.isfinite(gsd) or gsd <= 0:
        return None
    cell_px = geo["cell_m2"] / gsd**2
    pad = max(2.0, float(np.sqrt(cell_px)))
    bx = _clip_box(xyxy, w, h)
    r0 = _clip_box(xyxy, w, h, pad=pad)
    if bx[2] <= bx[0] or bx[3] <= bx[1]:
        return None
    filt = cv2.medianBlur(temp_c[r0[1] : r0[3], r0[0] : r0[2]].astype(np.float32), 3)
    inner = filt[bx[1] - r0[1] : bx[3] - r0[1], bx[0] - r0[0] : bx[2] - r0[0]]
    iy, ix = np.unravel_index(int(np.argmax(inner)), inner.shape)
    peak = float(inner[iy, ix])
    dt = peak - reference_c
    if dt <= 0:
        return None
    warm = (filt >= reference_c + SPOT_LEVEL * dt).astype(np.uint8)
    _, labels = cv2.connectedComponents(warm, connectivity=8)
    comp = labels == labels[iy + bx[1] - r0[1], ix + bx[0] - r0[0]]
    ys, xs = np.nonzero(comp)
    cut = bool(
        ys.min() == 0 or xs.min() == 0 or ys.max() == comp.shape[0] - 1 or xs.max() == comp.shape[1] - 1
    )
    centre_px = np.array([[xs.mean() + r0[0], ys.mean() + r0[1]]])  # pixel-centre coordinates
    g = camera.pixel_to_ground(centre_px)[0]
    out = {
        "warm_px": int(comp.sum()),
        "cell_px": round(cell_px, 1),
        "cells": round(float(comp.sum()) / cell_px, 2),
        "cut": cut,
        "from_end": None,
        "across": None,
        "cells_layout": [geo["cells_short"], geo["cells_long"]],
        "cells_from": geo["cells_from"],
    }
    if np.all(np.isfinite(g)):
        d = g[:2] - geo["centre"]
        along = float(d @ geo["u_long"]) / geo["long_m"]
        out["from_end"] = round(0.5 - abs(along), 3)
        out["across"] = round(float(d @ geo["u_short"]) / geo["short_m"], 3)
    return out

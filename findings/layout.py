"""A site's as-built layout (GeoJSON, WGS84 lon/lat): PV module polygons or wind-turbine points.

PV: one ``Polygon`` (or single-polygon ``MultiPolygon``) feature per module with properties ``module_id``
(unique, required), ``string_id`` and ``inverter_id`` (optional). Wind: one ``Point`` feature per turbine with
``turbine_id`` (unique, required), ``hub_height_m`` and ``blade_length_m`` (required for blade positions) and,
when known, ``rotor_yaw_deg`` (heading of the upwind direction) and ``azimuth_deg`` (blade A, 0 = up,
clockwise seen from upwind) of the parked rotor — with them a frame's blade, side and radius are computed
exactly; without them only the nearest turbine is known.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from findings.georef import LocalFrame


class LayoutError(ValueError):
    """A layout GeoJSON that cannot be used; the message names the feature and the reason."""


@dataclass
class Module:
    module_id: str
    string_id: str | None
    inverter_id: str | None
    ring: np.ndarray
    """(K, 2) local (e, n) metres, not closed."""
    properties: dict[str, Any]

    @property
    def centre(self) -> np.ndarray:
        return self.ring.mean(axis=0)


@dataclass
class Turbine:
    turbine_id: str
    e: float
    n: float
    hub_height_m: float | None
    blade_length_m: float | None
    rotor_yaw_deg: float | None
    azimuth_deg: float | None
    blades: list[str]
    properties: dict[str, Any]


@dataclass
class SiteLayout:
    """A parsed layout in a local frame; PV modules with a grid index, or turbines."""

    kind: str
    """``pv`` or ``wind``."""
    local: LocalFrame
    ground_alt_m: float | None
    modules: list[Module] = field(default_factory=list)
    turbines: list[Turbine] = field(default_factory=list)
    geojson: dict[str, Any] = field(default_factory=dict)
    cell_m: float = 5.0
    _grid: dict[tuple[int, int], list[int]] = field(default_factory=dict)
    _by_id: dict[str, int] = field(default_factory=dict)
    strings: dict[str, list[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for i, m in enumerate(self.modules):
            self._by_id[m.module_id] = i
            if m.string_id:
                self.strings.setdefault(m.string_id, []).append(i)
            lo, hi = m.ring.min(0), m.ring.max(0)
            for gx in range(math.floor(lo[0] / self.cell_m), math.floor(hi[0] / self.cell_m) + 1):
                for gy in range(math.floor(lo[1] / self.cell_m), math.floor(hi[1] / self.cell_m) + 1):
                    self._grid.setdefault((gx, gy), []).append(i)
        for sid, members in self.strings.items():
            members.sort(key=lambda i: (self.modules[i].centre[1].round(1) * -1, self.modules[i].centre[0]))
            self.strings[sid] = members
        self._grid_sorted = {k: np.array(sorted(v), np.intp) for k, v in self._grid.items()}
        # rings grouped by vertex count, so one vectorised test covers every candidate of a group
        by_k: dict[int, list[int]] = {}
        for i, m in enumerate(self.modules):
            by_k.setdefault(len(m.ring), []).append(i)
        self._ring_k = np.array([len(m.ring) for m in self.modules], np.intp)
        self._ring_row = np.zeros(len(self.modules), np.intp)
        self._rings: dict[int, _RingGroup] = {}
        for k, idx in by_k.items():
            self._rings[k] = _RingGroup(np.stack([self.modules[i].ring for i in idx]))
            self._ring_row[idx] = np.arange(len(idx))
        self._centres = (
            np.stack([m.centre for m in self.modules]) if self.modules else np.empty((0, 2), float)
        )

    def module(self, module_id: str) -> Module:
        return self.modules[self._by_id[module_id]]

    def centres(self) -> np.ndarray:
        """(M, 2) module centres (mean of each ring's vertices), in module order."""
        return self._centres

    def candidates(self, e: float, n: float, radius: float) -> list[int]:
        """Indices of modules whose grid cells lie within ``radius`` metres of (e, n) (ascending)."""
        return self.candidate_array(e, n, radius).tolist()

    def candidate_array(self, e: float, n: float, radius: float) -> np.ndarray:
        """(C,) ascending indices of modules whose grid cells lie within ``radius`` metres of (e, n)."""
        c = self.cell_m
        parts = [
            self._grid_sorted[(gx, gy)]
            for gx in range(math.floor((e - radius) / c), math.floor((e + radius) / c) + 1)
            for gy in range(math.floor((n - radius) / c), math.floor((n + radius) / c) + 1)
            if (gx, gy) in self._grid_sorted
        ]
        if not parts:
            return np.empty(0, np.intp)
        if len(parts) == 1:
            return parts[0]
        return np.unique(np.concatenate(parts))

    def _inside_and_distance(self, e: float, n: float, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(C,) bool inside and (C,) distance to the boundary of modules ``idx`` — the same arithmetic as
        :func:`point_in_polygon` and :func:`distance_to_ring`, vectorised over the modules."""
        if len(self._rings) == 1:  # every module has the same vertex count (the usual case)
            return next(iter(self._rings.values())).test(e, n, self._ring_row[idx])
        inside = np.zeros(len(idx), bool)
        dist = np.empty(len(idx), float)
        ks = self._ring_k[idx]
        for k in np.unique(ks):
            sel = np.flatnonzero(ks == k)
            inside[sel], dist[sel] = self._rings[int(k)].test(e, n, self._ring_row[idx[sel]])
        return inside, dist

    def locate_module(self, e: float, n: float, tolerance_m: float) -> tuple[Module | None, float, str]:
        """The module containing (e, n), else the nearest within ``tolerance_m``.

        Returns ``(module or None, distance in metres (0 inside), how: "inside" | "nearest" | reason)``.
        Candidates come from the grid index and are tested in one vectorised step; the result equals testing
        them one by one in index order (the first containing module, else the first nearest).
        """
        idx = self.candidate_array(e, n, tolerance_m + 0.1)
        best, best_d = None, math.inf
        if len(idx):
            inside, dist = self._inside_and_distance(e, n, idx)
            hit = np.flatnonzero(inside)
            if len(hit):
                return self.modules[int(idx[hit[0]])], 0.0, "inside"
            j = int(np.argmin(dist))
            if dist[j] < math.inf:
                best, best_d = self.modules[int(idx[j])], float(dist[j])
        if best is not None and best_d <= tolerance_m:
            return best, best_d, "nearest"
        if not self.modules:
            return None, math.inf, "the layout has no modules"
        return None, best_d, f"no module within {tolerance_m:.1f} m of the finding (off the as-built layout)"

    def modules_in_polygon(self, poly: np.ndarray) -> list[int]:
        """Indices of modules whose centre lies inside ``poly`` ((K, 2) local metres)."""
        c = poly.mean(0)
        radius = float(np.max(np.hypot(*(poly - c).T))) + 1.0
        idx = self.candidate_array(c[0], c[1], radius)
        if not len(idx):
            return []
        cen = self._centres[idx]
        return idx[points_in_polygon(cen[:, 0], cen[:, 1], poly)].tolist()

    def nearest_turbine(self, e: float, n: float) -> tuple[Turbine | None, float]:
        best, best_d = None, math.inf
        for t in self.turbines:
            d = math.hypot(t.e - e, t.n - n)
            if d < best_d:
                best, best_d = t, d
        return best, best_d


class _RingGroup:
    """Module rings with the same vertex count, (R, K, 2), with their edges precomputed for :meth:`test`."""

    def __init__(self, rings: np.ndarray) -> None:
        self.rings = rings
        self.xs, self.ys = rings[:, :, 0], rings[:, :, 1]
        xj, self.yj = np.roll(self.xs, 1, axis=1), np.roll(self.ys, 1, axis=1)
        self.dx, self.dy = xj - self.xs, self.yj - self.ys
        self.ab = np.roll(rings, -1, axis=1) - rings
        self.ab2 = np.maximum(np.sum(self.ab * self.ab, 2), 1e-12)

    def test(self, x: float, y: float, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """((C,) inside, (C,) distance to the boundary) of point (x, y) for rings ``rows`` — the arithmetic of
        :func:`point_in_polygon` and :func:`distance_to_ring`, so the results are the same to the last bit."""
        xs, ys, yj = self.xs[rows], self.ys[rows], self.yj[rows]
        with np.errstate(divide="ignore", invalid="ignore"):
            cross = ((ys > y) != (yj > y)) & (x < self.dx[rows] * (y - ys) / self.dy[rows] + xs)
        inside = np.count_nonzero(cross, axis=1) % 2 == 1
        p = np.array([x, y])
        a, ab = self.rings[rows], self.ab[rows]
        t = np.clip(np.sum((p - a) * ab, 2) / self.ab2[rows], 0, 1)
        d = p - (a + t[:, :, None] * ab)
        return inside, np.min(np.hypot(d[:, :, 0], d[:, :, 1]), axis=1)


def point_in_polygon(x: float, y: float, ring: np.ndarray) -> bool:
    """Even-odd ray casting; ``ring`` (K, 2), not closed."""
    xs, ys = ring[:, 0], ring[:, 1]
    xj, yj = np.roll(xs, 1), np.roll(ys, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        cross = ((ys > y) != (yj > y)) & (x < (xj - xs) * (y - ys) / (yj - ys) + xs)
    return bool(np.count_nonzero(cross) % 2)


def points_in_polygon(x: np.ndarray, y: np.ndarray, ring: np.ndarray) -> np.ndarray:
    """(P,) bool: :func:`point_in_polygon` of each of the (P,) points (x, y) in one ``ring`` (K, 2)."""
    xs, ys = ring[None, :, 0], ring[None, :, 1]
    xj, yj = np.roll(xs, 1, axis=1), np.roll(ys, 1, axis=1)
    px, py = np.asarray(x, float)[:, None], np.asarray(y, float)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        cross = ((ys > py) != (yj > py)) & (px < (xj - xs) * (py - ys) / (yj - ys) + xs)
    return np.count_nonzero(cross, axis=1) % 2 == 1


def distance_to_ring(x: float, y: float, ring: np.ndarray) -> float:
    """Shortest distance from (x, y) to the polygon's boundary."""
    a = ring
    b = np.roll(ring, -1, axis=0)
    ab = b - a
    ap = np.array([x, y]) - a
    t = np.clip(np.sum(ap * ab, 1) / np.maximum(np.sum(ab * ab, 1), 1e-12), 0, 1)
    proj = a + t[:, None] * ab
    return float(np.min(np.hypot(*(np.array([x, y]) - proj).T)))


def distances_of_points_to_ring(x: np.ndarray, y: np.ndarray, ring: np.ndarray) -> np.ndarray:
    """(P,) :func:`distance_to_ring` of each of the (P,) points (x, y) to one ``ring`` (K, 2)."""
    p = np.stack([np.asarray(x, float), np.asarray(y, float)], 1)[:, None, :]
    a = ring[None]
    ab = np.roll(ring, -1, axis=0)[None] - a
    ap = p - a
    t = np.clip(np.sum(ap * ab, 2) / np.maximum(np.sum(ab * ab, 2), 1e-12), 0, 1)
    d = p - (a + t[:, :, None] * ab)
    return np.min(np.hypot(d[:, :, 0], d[:, :, 1]), axis=1)


def _ring_of(geom: dict, where: str) -> list:
    gtype = geom.get("type")
    coords = geom.get("coordinates")
    if gtype == "Polygon":
        rings = coords
    elif gtype == "MultiPolygon":
        if not isinstance(coords, list) or len(coords) != 1:
            raise LayoutError(
                f"{where}: a module must be one polygon, got a MultiPolygon of {len(coords or [])}"
            )
        rings = coords[0]
    else:
        raise LayoutError(f"{where}: PV modules must be Polygon features, got {gtype!r}")
    if not isinstance(rings, list) or not rings or not isinstance(rings[0], list):
        raise LayoutError(f"{where}: polygon has no exterior ring")
    ring = rings[0]
    if len(ring) < 4:
        raise LayoutError(f"{where}: polygon ring has {len(ring)} positions; at least 4 (closed) are needed")
    for p in ring:
        if (
            not isinstance(p, list | tuple)
            or len(p) < 2
            or not all(isinstance(v, int | float) for v in p[:2])
        ):
            raise LayoutError(f"{where}: position {p!r} is not [lon, lat]")
        if not (-180 <= p[0] <= 180 and -90 <= p[1] <= 90):
            raise LayoutError(f"{where}: position {p!r} is outside lon -180..180 / lat -90..90")
    if list(ring[0][:2]) != list(ring[-1][:2]):
        raise LayoutError(f"{where}: polygon ring is not closed (first and last positions differ)")
    return ring


def _opt_float(props: dict, key: str, where: str) -> float | None:
    value = props.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise LayoutError(f"{where}: property {key!r} must be a number, got {value!r}")
    return float(value)


def validate_layout(obj: Any, name: str = "layout") -> dict[str, Any]:
    """Check a layout GeoJSON and return it (see the module docstring for what is required).

    Raises:
        LayoutError: not a FeatureCollection, mixed or unsupported geometries, missing or duplicate ids.
    """
    parse_layout(obj, name)
    return obj


def parse_layout(obj: Any, name: str = "layout", local: LocalFrame | None = None) -> SiteLayout:
    """Parse and validate a layout GeoJSON into a :class:`SiteLayout` in ``local`` (default: the layout's origin).

    Raises:
        LayoutError: see :func:`validate_layout`.
    """
    if isinstance(obj, bytes | str):
        try:
            obj = json.loads(obj)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise LayoutError(f"{name}: not valid JSON ({exc})") from exc
    if not isinstance(obj, dict) or obj.get("type") != "FeatureCollection":
        raise LayoutError(f"{name}: expected a GeoJSON FeatureCollection")
    feats = obj.get("features")
    if not isinstance(feats, list) or not feats:
        raise LayoutError(f"{name}: the FeatureCollection has no features")
    gtypes = set()
    for i, f in enumerate(feats):
        if not isinstance(f, dict) or f.get("type") != "Feature" or not isinstance(f.get("geometry"), dict):
            raise LayoutError(f"{name}: feature {i} is not a GeoJSON Feature with a geometry")
        gtypes.add(f["geometry"].get("type"))
    kind = "wind" if gtypes == {"Point"} else "pv"
    if kind == "pv" and not gtypes <= {"Polygon", "MultiPolygon"}:
        raise LayoutError(
            f"{name}: features must be all module Polygons (PV) or all turbine Points (wind), got {sorted(gtypes)}"
        )
    origin = (obj.get("properties") or {}).get("origin") or {}
    ground_alt = _opt_float(origin, "alt_m", f"{name}: properties.origin")
    if local is None:
        if "lat" in origin and "lon" in origin:
            local = LocalFrame(float(origin["lat"]), float(origin["lon"]))
        else:
            g = feats[0]["geometry"]["coordinates"]
            while isinstance(g[0], list):
                g = g[0]
            local = LocalFrame(float(g[1]), float(g[0]))
    seen: dict[str, int] = {}
    modules: list[Module] = []
    turbines: list[Turbine] = []
    for i, f in enumerate(feats):
        props = f.get("properties") or {}
        id_key = "module_id" if kind == "pv" else "turbine_id"
        fid = props.get(id_key)
        where = f"{name}: feature {i}" + (f" ({id_key}={fid!r})" if fid else "")
        if not isinstance(fid, str) or not fid.strip():
            raise LayoutError(f"{where}: property {id_key!r} is missing or empty")
        if fid in seen:
            raise LayoutError(f"{where}: {id_key} {fid!r} is not unique (also feature {seen[fid]})")
        seen[fid] = i
        if kind == "pv":
            ring = np.asarray(_ring_of(f["geometry"], where), float)[:-1, :2]
            e, n = local.to_local(ring[:, 1], ring[:, 0])
            loc = np.stack([e, n], 1)
            area = 0.5 * abs(
                np.dot(loc[:, 0], np.roll(loc[:, 1], 1)) - np.dot(loc[:, 1], np.roll(loc[:, 0], 1))
            )
            if area < 1e-4:
                raise LayoutError(f"{where}: polygon has no area")
            modules.append(Module(fid, props.get("string_id"), props.get("inverter_id"), loc, props))
        else:
            c = f["geometry"].get("coordinates")
            if not isinstance(c, list) or len(c) < 2:
                raise LayoutError(f"{where}: Point without [lon, lat] coordinates")
            e, n = local.to_local(c[1], c[0])
            turbines.append(
                Turbine(
                    fid,
                    float(e),
                    float(n),
                    _opt_float(props, "hub_height_m", where),
                    _opt_float(props, "blade_length_m", where),
                    _opt_float(props, "rotor_yaw_deg", where),
                    _opt_float(props, "azimuth_deg", where),
                    list(props.get("blades") or ["A", "B", "C"]),
                    props,
                )
            )
    return SiteLayout(kind, local, ground_alt, modules, turbines, obj)

"""From a flight's per-image detections to unique, located, graded findings (pure Python, no Dagster).

Steps (each finding keeps its reasons in words):

1. **Observations** — every detection is georeferenced (:mod:`findings.georef`): PV frames: the box centre and
   footprint on the ground plane (lat/lon, size in metres); wind frames: the box centre's ray intersected with
   the blade side's plane of the parked rotor from the layout (turbine, blade, side, radius from the hub
   centre, size at the blade's distance). Frames without GPS/attitude/intrinsics give *unlocated* observations.
   Thermal frames: ΔT measured in the radiometric data (:mod:`findings.thermal`).
2. **De-duplication** — observations of the same class are merged greedily (best quality first) when they come
   from different frames and lie within a threshold of the cluster's seed: ``size/2 + 2 σ`` where ``size`` is
   the class's largest typical size (taxonomy) and ``σ`` the location uncertainty (GPS ``gps_sigma_m`` plus the
   ground effect of a 0.5° attitude error at the flying height); PV observations on two different modules of
   the layout are never merged, ``string_offline`` observations are merged per string (also two boxes of one
   frame; a box's string is the one whose module centres lie deepest inside its ground footprint). Wind: per turbine,
   blade, side and class, by distance in the blade plane; two boxes of one frame merge when at least half of one
   lies inside the other (the detector boxed one defect in pieces, :data:`findings.checks.SAME_SPOT_IOS`). Unlocated observations
   are not merged.
3. **Assets** — the finding's location (quality-weighted mean of its un-clipped observations) is assigned to
   the module polygon containing it, else the nearest within ``0.5 m + 2 σ``, else ``off-layout`` with the
   reason; string offline → the string (module_id = the middle module of the string).
4. **Grading and power loss** (:mod:`findings.grading`), inspection validity for thermal flights.
5. **Physical checks** (:mod:`findings.checks`): a ``missing_module`` where the layout has no module slot, or a
   thermal area pattern (module/string offline, bypass diode) whose area the radiometry shows no warmer than the
   normal modules, or a PV finding detected in at most one of the four or more frames that showed it whole
   (``multi-view``); wind: a leading-edge erosion on the trailing edge, a box centred on the blade's end, a
   row of identical parts along the span (vortex generators, measured in the best frame when ``image_reader`` is
   given), or the less confident of two classes on one spot; PV RGB: a delamination whose box is not yellowed — is
   *suppressed*: moved to the document's ``suppressed`` list with the reason, out of the findings, counts,
   warnings and trend.
6. The trend against a previous inspection (:mod:`findings.trend`).

The quality of an observation is ``confidence × sqrt(box area / frame area) × (0.3 if clipped by the frame
edge)``; the best observation gives the finding's crop.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import cv2
import numpy as np

from detection.boxes import box_ios
from detection.taxonomy import TAXONOMY_VERSION, DefectClass, Domain, TaxonomyError, by_id, by_name, domain
from findings import grading
from findings.checks import (
    NOT_PERIODIC,
    SAME_SPOT_IOS,
    SPOT_CLASSES,
    SPOT_MIN_K,
    check_findings,
    span_periodicity,
    spot_class,
    yellowness,
)
from findings.georef import FrameCamera, GeorefError, LocalFrame, box_centre_px, frame_camera
from findings.layout import SiteLayout, Turbine, parse_layout
from findings.thermal import (
    ModuleProjection,
    ThermalReader,
    as_celsius,
    box_ground_polygon,
    exclusion_mask,
    measure_delta_t,
    measure_spot,
)

log = logging.getLogger(__name__)

SCHEMA_VERSION = "1.0"
EDGE_PX = 2
ATTITUDE_ERROR_DEG = 0.5
WIND_ROOT_M = 0.5


@dataclass(frozen=True)
class BuildOptions:
    """Tunable parameters of :func:`build_findings`."""

    module_power_w: float = grading.DEFAULT_MODULE_POWER_W
    gps_sigma_m: float = 0.3
    """Relative position uncertainty between overlapping frames (GPS drift), metres (1 σ)."""
    blade_sigma_m: float = 0.15
    crops: bool = True
    crop_px: int = 160
    frame_cache_mb: float = 256.0
    """Radiometric frames kept in memory between the ΔT measurement and the crops (per flight)."""
    multiview: bool = True
    """Run the ``multi-view`` check (:mod:`findings.checks`): a finding seen in at most one of the frames that
    showed it whole is suppressed."""


@dataclass
class Observation:
    """One detection in one frame, georeferenced where possible."""

    image: str
    index: int
    xyxy: list[float]
    confidence: float
    cls: DefectClass
    frame_w: int
    frame_h: int
    clipped: bool
    quality: float
    e: float | None = None
    n: float | None = None
    u: float | None = None
    size_m: float | None = None
    unlocated_reason: str | None = None
    module_id: str | None = None
    string_id: str | None = None
    wind: dict[str, Any] | None = None
    thermal: dict[str, Any] | None = None
    sigma_m: float = 0.3
    footprint: np.ndarray | None = None
    """(4, 2) ground (e, n) corners of the box (PV, located)."""
    spot: dict[str, Any] | None = None
    """Thermal spot classes: the warm area in cells and its place on the module (:func:`findings.thermal.measure_spot`)."""

    @property
    def located(self) -> bool:
        return self.e is not None

    def evidence(self) -> dict[str, Any]:
        out = {
            "image": self.image,
            "xyxy": [round(float(v), 1) for v in self.xyxy],
            "confidence": round(self.confidence, 4),
            "quality": round(self.quality, 5),
            "clipped": self.clipped,
        }
        if self.size_m is not None:
            out["size_m"] = round(self.size_m, 3)
        if self.thermal is not None:
            out["delta_t_k"] = self.thermal.get("delta_t_k")
        return out


@dataclass
class FlightFindings:
    """The findings of one flight: the findings.json document plus crops (PNG bytes) for the reports."""

    doc: dict[str, Any]
    crops: dict[str, bytes] = field(default_factory=dict)
    layout: SiteLayout | None = None
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds per stage of :func:`build_findings`: georef (observations and ΔT), dedup, assign, grade,
    trend, crops."""

    @property
    def findings(self) -> list[dict[str, Any]]:
        return self.doc["findings"]

    @property
    def site(self) -> str:
        return self.doc["site"]

    @property
    def flight(self) -> str:
        return self.doc["flight"]


def _class_of(dom: Domain, det: dict[str, Any]) -> DefectClass:
    name = det.get("class_name")
    if name:
        return by_name(dom, str(name))
    return by_id(dom, int(det["class_id"]))


def _quality(conf: float, xyxy: list[float], w: int, h: int, clipped: bool) -> float:
    x1, y1, x2, y2 = xyxy
    area = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    return conf * math.sqrt(area / max(w * h, 1)) * (0.3 if clipped else 1.0)


def _wind_locate(cam: FrameCamera, xyxy: list[float], layout: SiteLayout | None) -> dict[str, Any]:
    """Turbine / blade / side / radius of a wind detection (see the module docstring of datasets.synth.wind)."""
    if layout is None or not layout.turbines:
        return {"reason": "no turbine layout for this site: turbine, blade and radius unknown"}
    d = cam.rays(box_centre_px(xyxy)[None])[0]
    axis = cam.R()[:, 2]
    best: tuple[float, dict[str, Any]] | None = None
    near, dist = layout.nearest_turbine(cam.e, cam.n)
    for tb in sorted(layout.turbines, key=lambda t: math.hypot(t.e - cam.e, t.n - cam.n))[:3]:
        if None in (tb.hub_height_m, tb.blade_length_m, tb.rotor_yaw_deg, tb.azimuth_deg):
            continue
        for k, blade in enumerate(tb.blades[:3]):
            b, t, f = _turbine_axes(tb, k)
            for side, v in (
                ("pressure_side", -f),
                ("suction_side", f),
                ("leading_edge", -t),
                ("trailing_edge", t),
            ):
                align = float(axis @ v)
                if align < math.cos(math.radians(35)):
                    continue
                hub = np.array([tb.e, tb.n, tb.hub_height_m])
                denom = float(d @ v)
                if abs(denom) < 1e-9:
                    continue
                lam = float((hub - cam.centre) @ v) / denom
                if lam <= 0:
                    continue
                p = cam.centre + lam * d
                c = np.cross(v, b)
                c /= np.linalg.norm(c)
                s, tt = float((p - hub) @ b), float((p - hub) @ c)
                if not (WIND_ROOT_M <= s <= tb.blade_length_m + 1.0) or abs(tt) > 4.0:
                    continue
                score = abs(tt) + 10.0 * (1.0 - align)
                if best is None or score < best[0]:
                    best = (
                        score,
                        {
                            "turbine_id": tb.turbine_id,
                            "blade": blade,
                            "side": side,
                            "radius_m": s,
                            "across_m": tt,
                            "blade_length_m": tb.blade_length_m,
                            "point": p,
                            "depth_m": lam,
                            "method": "box centre ray intersected with the blade side's plane of the parked rotor",
                        },
                    )
    if best is None:
        out = {
            "reason": "the frame's ray meets no blade of the layout's parked rotors (rotor yaw/azimuth "
            "missing or the frame shows something else)"
        }
        if near is not None:
            out["turbine_id"] = near.turbine_id
            out["turbine_distance_m"] = dist
        return out
    return best[1]


def _turbine_axes(tb: Turbine, blade: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(b, t, f): blade axis, tangent toward the leading edge, rotor normal (upwind) — unit ENU vectors."""
    y = math.radians(tb.rotor_yaw_deg or 0.0)
    f = np.array([math.sin(y), math.cos(y), 0.0])
    lat = np.array([-math.cos(y), math.sin(y), 0.0])
    a = math.radians((tb.azimuth_deg or 0.0) + 120.0 * blade)
    up = np.array([0.0, 0.0, 1.0])
    return math.cos(a) * up + math.sin(a) * lat, -math.sin(a) * up + math.cos(a) * lat, f


def _image_index(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    index: dict[str, dict[str, Any]] = {}
    for rec in manifest.get("images", []):
        for p in [rec.get("path"), *(rec.get("paths") or [])]:
            if p:
                index[p] = rec
                index.setdefault(p.rsplit("/", 1)[-1], rec)
        if rec.get("key"):
            index[rec["key"]] = rec
    return index


def _observations(
    dom: Domain,
    manifest: dict[str, Any],
    image_detections: list[dict[str, Any]],
    layout: SiteLayout | None,
    local: LocalFrame | None,
    thermal_reader: ThermalReader | None,
    opts: BuildOptions,
    notes: list[str],
) -> tuple[list[Observation], dict[str, FrameCamera]]:
    index = _image_index(manifest)
    ground_alt = layout.ground_alt_m if layout else None
    obs: list[Observation] = []
    cams: dict[str, FrameCamera] = {}
    thermal_failed: set[str] = set()
    for rec in image_detections:
        rel = rec.get("relative_path") or rec.get("image_key") or "?"
        dets = rec.get("detections") or []
        if not dets and (rec.get("error") or dom == Domain.WIND or local is None):
            continue  # the detector did not run on it, or no check needs the frame (multi-view: PV, located)
        mrec = index.get(rel) or index.get(rec.get("image_key") or "") or index.get(rel.rsplit("/", 1)[-1])
        w = int(rec.get("width") or (mrec or {}).get("width") or 0)
        h = int(rec.get("height") or (mrec or {}).get("height") or 0)
        cam, why = None, None
        if mrec is None:
            why = f"image {rel!r} is not in the flight's manifest: no metadata to locate it"
        elif local is None:
            why = "no image of the flight has a GPS position: no local frame"
        else:
            try:
                cam = frame_camera(mrec, local, w or None, h or None, ground_alt)
                cams[rel] = cam
                w, h = cam.width, cam.height
            except GeorefError as exc:
                why = str(exc)
        if not dets:
            continue  # its camera still counts: a frame that showed a finding without detecting it
        temp = None
        if (
            dom == Domain.PV_THERMAL
            and thermal_reader is not None
            and (mrec is None or mrec.get("radiometric", True))
        ):
            try:
                temp = as_celsius(thermal_reader(rel))
            except Exception as exc:  # any reader failure makes the frame's findings ungraded, never a crash
                thermal_failed.add(rel)
                notes.append(f"{rel}: radiometric data unreadable ({type(exc).__name__}: {exc})")
        boxes = [list(map(float, d["xyxy"])) for d in dets]
        # per-frame state shared by every box of the frame (computed once, not once per box)
        excl = exclusion_mask(temp.shape, boxes) if temp is not None else None
        projection: ModuleProjection | None = None
        if (
            temp is not None
            and cam is not None
            and layout is not None
            and layout.kind == "pv"
            and layout.modules
        ):
            projection = ModuleProjection(cam, layout)
        for j, det in enumerate(dets):
            try:
                cls = _class_of(dom, det)
            except (TaxonomyError, KeyError, ValueError, TypeError) as exc:
                notes.append(f"{rel}: detection {j} skipped ({exc})")
                continue
            xyxy = boxes[j]
            conf = float(det.get("confidence", 1.0))
            clipped = bool(w and h) and (
                xyxy[0] <= EDGE_PX or xyxy[1] <= EDGE_PX or xyxy[2] >= w - EDGE_PX or xyxy[3] >= h - EDGE_PX
            )
            o = Observation(rel, j, xyxy, conf, cls, w, h, clipped, _quality(conf, xyxy, w, h, clipped))
            if cam is None:
                o.unlocated_reason = why
            elif dom == Domain.WIND:
                info = _wind_locate(cam, xyxy, layout)
                if "point" in info:
                    p = info.pop("point")
                    o.e, o.n, o.u = float(p[0]), float(p[1]), float(p[2])
                    o.size_m = max(xyxy[2] - xyxy[0], xyxy[3] - xyxy[1]) * info["depth_m"] / cam.f_px
                    o.sigma_m = opts.blade_sigma_m
                else:
                    o.unlocated_reason = info["reason"]
                o.wind = info
            else:
                c = cam.pixel_to_ground(box_centre_px(xyxy)[None])[0]
                if not np.all(np.isfinite(c)):
                    o.unlocated_reason = (
                        f"{rel}: the box centre's ray does not reach the ground (camera tilt)"
                    )
                else:
                    o.e, o.n, o.u = float(c[0]), float(c[1]), 0.0
                    poly = box_ground_polygon(cam, xyxy)
                    o.footprint = poly if np.all(np.isfinite(poly)) else None
                    o.size_m = float(max(np.hypot(*(poly[1] - poly[0])), np.hypot(*(poly[3] - poly[0]))))
                    o.sigma_m = opts.gps_sigma_m + math.sqrt(2) * cam.u * math.tan(
                        math.radians(ATTITUDE_ERROR_DEG)
                    )
                    if layout is not None and layout.kind == "pv" and layout.modules:
                        if cls.name == "string_offline":
                            o.string_id = _string_of_box(layout, poly, cam, xyxy, temp, projection)
                        m, _, how = layout.locate_module(o.e, o.n, 0.0)
                        if m is not None and how == "inside":
                            o.module_id = m.module_id
                        if cls.name == "string_offline" and o.string_id is None:
                            m, _, _ = layout.locate_module(o.e, o.n, 0.5)
                            o.string_id = m.string_id if m is not None else None
            if dom == Domain.PV_THERMAL:
                if temp is not None:
                    o.thermal = measure_delta_t(
                        temp, xyxy, [], cam, layout, exclusion=excl, projection=projection
                    )
                    if (
                        cls.name in SPOT_CLASSES
                        and o.module_id is not None
                        and cam is not None
                        and layout is not None
                        and (o.thermal.get("delta_t_k") or 0.0) >= SPOT_MIN_K
                        and str(o.thermal.get("method") or "").startswith("module pixels")
                    ):
                        o.spot = measure_spot(temp, xyxy, cam, layout, o.module_id, o.thermal["reference_c"])
                else:
                    reason = (
                        "radiometric data unreadable"
                        if rel in thermal_failed
                        else "frame is not radiometric (no 16-bit temperatures)"
                        if mrec and not mrec.get("radiometric", True)
                        else "no thermal reader given"
                    )
                    o.thermal = {"delta_t_k": None, "method": reason}
            obs.append(o)
    return obs, cams


def _string_of_box(
    layout: SiteLayout,
    poly: np.ndarray,
    cam: FrameCamera,
    xyxy: list[float],
    temp: np.ndarray | None,
    projection: ModuleProjection | None = None,
) -> str | None:
    """The string a ``string_offline`` box shows.

    Candidates are the strings of the modules whose centre lies inside the box's ground polygon. With a
    radiometric frame the warmest candidate wins (an offline string is uniformly warmer: the median of its
    module pixels inside the box); otherwise each module votes with its centre's depth inside the box (distance
    to the box edge), so a row that a loose box just reaches does not outvote the row it is centred on.
    """
    from findings.layout import distances_of_points_to_ring
    from findings.thermal import string_medians

    inside = layout.modules_in_polygon(poly)
    if not inside:
        return None
    cen = layout.centres()[inside]
    depth = distances_of_points_to_ring(cen[:, 0], cen[:, 1], poly)
    votes: dict[str, float] = {}
    members: dict[str, list[int]] = {}
    for i, d in zip(inside, depth.tolist(), strict=True):
        m = layout.modules[i]
        if m.string_id:
            votes[m.string_id] = votes.get(m.string_id, 0.0) + d
            members.setdefault(m.string_id, []).append(i)
    if not votes:
        return None
    if len(votes) > 1 and temp is not None:
        medians = string_medians(temp, cam, layout, xyxy, members, projection)
        if medians:
            return max(medians, key=lambda k: medians[k])
    return max(votes, key=lambda k: votes[k])


def _threshold(a: Observation, cls: DefectClass) -> float:
    return 0.5 * cls.size_m[1] + 2.0 * a.sigma_m


def _piece_of(o: Observation, members: list[Observation]) -> bool:
    """Whether ``o``'s box covers the same spot (:data:`SAME_SPOT_IOS`) as a box of its frame among ``members``:
    a wind defect the detector boxed in pieces (a crack as a long box and shorter ones inside it), which the
    slicer's tile merge does not join when the boxes come from one tile."""
    same = [m.xyxy for m in members if m.image == o.image]
    return bool(same) and bool(box_ios(np.array([o.xyxy]), np.array(same)).max() >= SAME_SPOT_IOS)


def _match(dom: Domain, o: Observation, c: dict[str, Any]) -> float | None:
    """The distance of observation ``o`` to cluster ``c``'s seed when ``o`` may join ``c``, else None."""
    seed: Observation = c["seed"]
    same_string = o.cls.name == "string_offline" and o.string_id is not None and o.string_id == seed.string_id
    if seed.cls.name != o.cls.name:
        return None
    if o.image in c["images"] and not same_string and not (dom == Domain.WIND and _piece_of(o, c["members"])):
        return None
    if dom == Domain.WIND:
        wa, wb = seed.wind or {}, o.wind or {}
        if (wa.get("turbine_id"), wa.get("blade"), wa.get("side")) != (
            wb.get("turbine_id"),
            wb.get("blade"),
            wb.get("side"),
        ):
            return None
        sizes = [s for s in (seed.size_m, o.size_m) if s is not None]
        thr = 0.5 * max(sizes or [o.cls.size_m[1]]) + 0.3 + 2 * o.sigma_m
        d = math.hypot(wa["radius_m"] - wb["radius_m"], wa["across_m"] - wb["across_m"])
    elif o.cls.name == "string_offline" and o.string_id and seed.string_id:
        if o.string_id != seed.string_id:
            return None
        d, thr = 0.0, 1.0
    else:
        if o.module_id and seed.module_id and o.module_id != seed.module_id:
            return None
        thr = _threshold(o, o.cls)
        d = math.hypot(o.e - seed.e, o.n - seed.n)
    return d if d <= thr else None


class _SeedIndex:
    """The seeds of one bucket of clusters (same class; wind: same turbine, blade and side) as growing arrays.

    ``near(x, y, radius)`` returns, in creation order, the clusters whose seed may lie within ``radius`` — a
    superset (a margin covers the last-bit difference between numpy's and math's hypot); :func:`_match` then
    decides exactly as the one-by-one loop did.
    """

    MARGIN = 1e-9

    def __init__(self) -> None:
        self.clusters: list[dict[str, Any]] = []
        self.xy = np.empty((16, 2), float)
        self.size = np.empty(16, float)

    def add(self, c: dict[str, Any], x: float, y: float, size: float | None) -> None:
        k = len(self.clusters)
        if k == len(self.xy):
            self.xy = np.concatenate([self.xy, np.empty_like(self.xy)])
            self.size = np.concatenate([self.size, np.empty_like(self.size)])
        self.xy[k] = (x, y)
        self.size[k] = 0.0 if size is None else size
        self.clusters.append(c)

    def near(self, x: float, y: float, radius: float | np.ndarray) -> list[dict[str, Any]]:
        k = len(self.clusters)
        if k == 0:
            return []
        xy = self.xy[:k]
        d = np.hypot(xy[:, 0] - x, xy[:, 1] - y)
        return [self.clusters[i] for i in np.flatnonzero(d <= radius + self.MARGIN * (1.0 + radius)).tolist()]


def _bucket_key(dom: Domain, o: Observation) -> tuple:
    if dom == Domain.WIND:
        w = o.wind or {}
        return (o.cls.name, w.get("turbine_id"), w.get("blade"), w.get("side"))
    return (o.cls.name,)


def _cluster(dom: Domain, obs: list[Observation]) -> list[list[Observation]]:
    """Greedy clustering (best quality first) — rules in the module docstring.

    Each observation is compared only with the clusters of its bucket (:func:`_bucket_key`) whose seed lies
    within the largest possible threshold (:class:`_SeedIndex`, vectorised), in creation order: the result
    equals comparing it with every cluster one by one (tests/findings/test_findings_fastpaths.py pins that).
    """
    clusters: list[dict[str, Any]] = []
    out_unlocated: list[list[Observation]] = []
    buckets: dict[tuple, _SeedIndex] = {}
    for o in sorted(obs, key=lambda x: (-x.quality, x.image, x.index)):
        if not o.located:
            out_unlocated.append([o])
            continue
        index = buckets.setdefault(_bucket_key(dom, o), _SeedIndex())
        if dom == Domain.WIND:
            w = o.wind or {}
            k = len(index.clusters)
            sizes = np.maximum(index.size[:k], o.size_m or 0.0)
            radius = 0.5 * np.maximum(sizes, o.cls.size_m[1]) + 0.3 + 2 * o.sigma_m
            candidates = index.near(w["radius_m"], w["across_m"], radius)
        elif o.cls.name == "string_offline":
            candidates = index.clusters  # joined by string id regardless of distance
        else:
            candidates = index.near(o.e, o.n, _threshold(o, o.cls))
        best, best_d = None, math.inf
        for c in candidates:
            d = _match(dom, o, c)
            if d is not None and d < best_d:
                best, best_d = c, d
        if best is None:
            c = {"seed": o, "members": [o], "images": {o.image}}
            clusters.append(c)
            if dom == Domain.WIND:
                w = o.wind or {}
                index.add(c, w["radius_m"], w["across_m"], o.size_m)
            else:
                index.add(c, o.e, o.n, None)
        else:
            best["members"].append(o)
            best["images"].add(o.image)
    return [c["members"] for c in clusters] + out_unlocated


def _weighted_location(members: list[Observation]) -> tuple[float, float, float]:
    loc = [m for m in members if m.located]
    use = [m for m in loc if not m.clipped] or loc
    wts = np.array([max(m.quality, 1e-9) for m in use])
    e = float(np.average([m.e for m in use], weights=wts))
    n = float(np.average([m.n for m in use], weights=wts))
    u = float(np.average([m.u or 0.0 for m in use], weights=wts))
    return e, n, u


def _median_or_none(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.median(vals)) if vals else None


def _round_or_none(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def _finding(
    dom: Domain,
    members: list[Observation],
    layout: SiteLayout | None,
    local: LocalFrame | None,
    conditions: dict[str, Any] | None,
    validity: dict[str, Any] | None,
    opts: BuildOptions,
    timings: dict[str, float] | None = None,
) -> dict[str, Any]:
    """One finding of a cluster; ``timings["assign"]`` accumulates the time spent locating it on an asset."""
    members = sorted(members, key=lambda m: (-m.quality, m.image, m.index))
    best = members[0]
    cls = best.cls
    class_check = None
    if dom == Domain.PV_THERMAL and cls.name in SPOT_CLASSES:
        name, class_check = spot_class(cls.name, [m.spot for m in members])
        if name != cls.name:
            cls = by_name(dom, name)
    unclipped = [m for m in members if not m.clipped] or members
    size = _median_or_none([m.size_m for m in unclipped])
    reasons: list[str] = []
    f: dict[str, Any] = {
        "id": "",
        "class": cls.name,
        "class_id": cls.id,
        "display_name": cls.display_name,
        "colour": cls.colour,
        "domain": dom.value,
        "confidence": round(max(m.confidence for m in members), 4),
        "n_observations": len(members),
        "size_m": None if size is None else round(size, 3),
        "best": {"image": best.image, "xyxy": [round(v, 1) for v in best.xyxy]},
        "evidence": [m.evidence() for m in members],
    }
    if class_check is not None:
        f["checks"] = [class_check]
        if class_check["result"] == "reclassified":
            f["class_from"] = class_check["model_class"]
            f["reclassified"] = class_check["reason"]
    asset: dict[str, Any] = {}
    location: dict[str, Any] = {"located": False, "lat": None, "lon": None}
    radius = blade_len = None
    t_assign = time.perf_counter()
    if best.located and local is not None:
        e, n, u = _weighted_location(members)
        if dom == Domain.WIND:
            w = [m.wind for m in members if m.wind and "radius_m" in m.wind]
            radius = float(
                np.average(
                    [x["radius_m"] for x in w],
                    weights=[max(m.quality, 1e-9) for m in members if m.wind and "radius_m" in m.wind],
                )
            )
            blade_len = best.wind.get("blade_length_m")
            asset = {
                "turbine_id": best.wind["turbine_id"],
                "blade": best.wind["blade"],
                "side": best.wind["side"],
                "radius_m": round(radius, 3),
                "blade_length_m": blade_len,
                "method": best.wind["method"],
            }
        elif layout is not None and layout.kind == "pv" and layout.modules:
            sigma = max(m.sigma_m for m in members)
            if cls.name == "string_offline" and best.string_id and best.string_id in layout.strings:
                idx = layout.strings[best.string_id]
                cen = np.mean([layout.modules[i].centre for i in idx], axis=0)
                e, n = float(cen[0]), float(cen[1])
                mid = layout.modules[idx[len(idx) // 2]]
                asset = {
                    "module_id": mid.module_id,
                    "string_id": best.string_id,
                    "inverter_id": mid.inverter_id,
                    "module_ids": [layout.modules[i].module_id for i in idx],
                    "assignment": "string",
                    "distance_m": 0.0,
                    "reason": f"string offline: all {len(idx)} modules of string {best.string_id}",
                }
            else:
                tol = 0.5 + 2 * sigma
                m, dist, how = layout.locate_module(e, n, tol)
                if m is None:
                    asset = {
                        "module_id": None,
                        "string_id": None,
                        "inverter_id": None,
                        "assignment": "off-layout",
                        "distance_m": None if math.isinf(dist) else round(dist, 2),
                        "reason": how,
                    }
                    reasons.append(f"off-layout: {how}")
                else:
                    asset = {
                        "module_id": m.module_id,
                        "string_id": m.string_id,
                        "inverter_id": m.inverter_id,
                        "assignment": how,
                        "distance_m": round(dist, 3),
                        "reason": "inside the module polygon"
                        if how == "inside"
                        else f"nearest module, {dist:.2f} m away (within {tol:.2f} m)",
                    }
        elif dom != Domain.WIND:
            asset = {
                "module_id": None,
                "string_id": None,
                "inverter_id": None,
                "assignment": "off-layout",
                "distance_m": None,
                "reason": "no as-built layout for this site",
            }
            reasons.append("no as-built layout: module unknown")
        lat, lon = local.to_wgs84(e, n)
        location = {
            "located": True,
            "lat": round(float(lat), 9),
            "lon": round(float(lon), 9),
            "e_m": round(e, 3),
            "n_m": round(n, 3),
            "uncertainty_m": round(max(m.sigma_m for m in members), 3),
        }
        if dom == Domain.WIND and layout is not None and layout.ground_alt_m is not None:
            location["alt_m"] = round(layout.ground_alt_m + u, 2)
    else:
        why = best.unlocated_reason or "not located"
        location["reason"] = why
        reasons.append(f"unlocated: {why}")
        if dom == Domain.WIND and best.wind and best.wind.get("turbine_id"):
            asset = {
                "turbine_id": best.wind["turbine_id"],
                "blade": None,
                "side": None,
                "radius_m": None,
                "reason": why,
            }
        elif dom != Domain.WIND:
            asset = {
                "module_id": None,
                "string_id": None,
                "inverter_id": None,
                "assignment": "unlocated",
                "distance_m": None,
                "reason": why,
            }
    f["location"] = location
    f["asset"] = asset
    if timings is not None:
        timings["assign"] = timings.get("assign", 0.0) + time.perf_counter() - t_assign

    thermal = None
    dt = None
    if dom == Domain.PV_THERMAL:
        meas = [m.thermal for m in members if m.thermal and m.thermal.get("delta_t_k") is not None]
        meas_unclipped = [
            m.thermal
            for m in members
            if not m.clipped and m.thermal and m.thermal.get("delta_t_k") is not None
        ]
        use = meas_unclipped or meas
        dt = _median_or_none([t["delta_t_k"] for t in use])
        irr = (conditions or {}).get("irradiance_w_m2")
        if dt is None:
            why = next((m.thermal.get("method") for m in members if m.thermal), "no radiometric data")
            reasons.append(f"no ΔT: {why}")
        thermal = {
            "delta_t_k": None if dt is None else round(dt, 2),
            "delta_t_norm_k": None
            if dt is None
            else (
                None
                if grading.normalise_delta_t(dt, irr) is None
                else round(grading.normalise_delta_t(dt, irr), 2)
            ),
            "normalisation": "linear scaling to 1000 W/m²: ΔT × 1000 / irradiance",
            "area_delta_t_k": _round_or_none(_median_or_none([t.get("area_delta_t_k") for t in use])),
            "defect_c": _median_or_none([t.get("defect_c") for t in use]),
            "reference_c": _median_or_none([t.get("reference_c") for t in use]),
            "measurements": len(use),
            "method": use[0]["method"]
            if use
            else next((m.thermal.get("method") for m in members if m.thermal), None),
            "validity": {"valid": validity["valid"], "reasons": validity["reasons"]} if validity else None,
        }
    f["thermal"] = thermal
    g = grading.grade(dom, cls.name, delta_t_k=dt, size_m=size, radius_m=radius, blade_length_m=blade_len)
    f["grade"] = g.to_dict()
    if g.value is None:
        reasons.append(f"ungraded: {g.reason}")
    string_modules = len(asset.get("module_ids") or []) if isinstance(asset, dict) else 0
    module_area = None
    if layout is not None and layout.modules and asset.get("module_id"):
        ring = layout.module(asset["module_id"]).ring
        module_area = float(
            0.5 * abs(np.dot(ring[:, 0], np.roll(ring[:, 1], 1)) - np.dot(ring[:, 1], np.roll(ring[:, 0], 1)))
        )
    loss, loss_how = grading.power_loss_w(
        dom,
        cls.name,
        module_power_w=opts.module_power_w,
        delta_t_k=dt,
        size_m=size,
        module_area_m2=module_area,
        string_modules=string_modules or None,
    )
    f["power_loss_w"] = None if loss is None else round(loss, 1)
    f["power_loss_reason"] = loss_how
    f["located"] = location["located"]
    f["graded"] = g.value is not None
    f["reasons"] = reasons
    f["trend"] = None
    return f


def _local_frame(manifest: dict[str, Any], layout: SiteLayout | None) -> LocalFrame | None:
    if layout is not None:
        return layout.local
    for rec in manifest.get("images", []):
        lat, lon = rec.get("lat"), rec.get("lon")
        if lat is not None and lon is not None:
            return LocalFrame(float(lat), float(lon))
    return None


def _inspection_time(manifest: dict[str, Any]) -> str | None:
    times = sorted(r["capture_time"] for r in manifest.get("images", []) if r.get("capture_time"))
    return times[0] if times else None


def _sort_key(f: dict[str, Any]) -> tuple:
    loc = f["location"]
    return (
        -grading.severity_rank(f["grade"]["severity"]),
        not loc["located"],
        -(loc.get("n_m") or 0.0),
        loc.get("e_m") or 0.0,
        f["class"],
        f["best"]["image"],
    )


def build_findings(
    manifest: dict[str, Any],
    image_detections: list[dict[str, Any]],
    *,
    layout: dict[str, Any] | SiteLayout | None = None,
    thermal_reader: ThermalReader | None = None,
    image_reader: Callable[[str], np.ndarray] | None = None,
    previous: dict[str, Any] | None = None,
    conditions: dict[str, Any] | None = None,
    options: BuildOptions | None = None,
    domain: str | Domain | None = None,
) -> FlightFindings:
    """Unique, located, graded findings of one flight (steps in the module docstring).

    Args:
        manifest: the flight's manifest (ingest.manifest schema; ``images`` with their metadata).
        image_detections: per-image records ``{"relative_path", "image_key", "width", "height", "model",
            "detections": [{"xyxy", "confidence", "class_id", "class_name"}]}``.
        layout: the site's as-built GeoJSON (dict) or a parsed :class:`SiteLayout`.
        domain: the flight's kind (default: ``manifest["kind"]``).
        thermal_reader: relative path → (H, W) radiometric frame (uint16 centikelvin or float °C).
        image_reader: relative path → (H, W, 3) BGR uint8 (RGB kinds) for crops; thermal crops use the
            thermal reader.
        previous: the previous inspection's findings.json of the same site (trend).
        conditions: irradiance/ambient/wind/cloud; overrides ``manifest["conditions"]`` field by field.
        options: :class:`BuildOptions`.

    Raises:
        ValueError: the flight's kind is unknown (pass ``domain``).
        findings.layout.LayoutError: the layout is invalid.
    """
    from findings.trend import apply_trend

    opts = options or BuildOptions()
    dom_value = domain or manifest.get("kind")
    try:
        dom = _domain(dom_value)
    except TaxonomyError as exc:
        raise ValueError(f"flight kind {dom_value!r} is not a known domain; pass domain=") from exc
    if isinstance(layout, dict):
        layout = parse_layout(layout, "site layout")
    cond = dict(manifest.get("conditions") or {})
    cond.update({k: v for k, v in (conditions or {}).items() if v is not None})
    validity = grading.inspection_validity(cond) if dom == Domain.PV_THERMAL else None
    local = _local_frame(manifest, layout)
    notes: list[str] = []
    timings: dict[str, float] = {}
    frames = FrameCache(thermal_reader, opts.frame_cache_mb) if thermal_reader is not None else None
    with _stage(timings, "georef"):
        obs, cams = _observations(dom, manifest, image_detections, layout, local, frames, opts, notes)
    with _stage(timings, "dedup"):
        clusters = _cluster(dom, obs)
    with _stage(timings, "grade"):  # grading and the physical checks (findings.checks)
        built = [(_finding(dom, c, layout, local, cond, validity, opts, timings), c) for c in clusters]
        remeasure = (
            _remeasurer(manifest, cams, layout, frames)
            if dom == Domain.PV_THERMAL and frames is not None
            else None
        )
        periodicity = (
            _wind_periodicity(built, cams, layout, image_reader)
            if dom == Domain.WIND and image_reader is not None and layout is not None
            else None
        )
        yellow = (
            _yellowness(built, image_reader) if dom == Domain.PV_RGB and image_reader is not None else None
        )
        findings, suppressed = check_findings(
            dom, built, layout, cams if opts.multiview else None, remeasure, periodicity, yellow
        )
    timings["grade"] -= timings.get("assign", 0.0)
    timings.setdefault("assign", 0.0)
    findings.sort(key=_sort_key)
    suppressed.sort(key=_sort_key)
    for i, f in enumerate(findings, start=1):
        f["id"] = f"F{i:04d}"
    for i, f in enumerate(suppressed, start=1):
        f["id"] = f"S{i:04d}"
    doc: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "taxonomy_version": TAXONOMY_VERSION,
        "site": manifest.get("site"),
        "flight": manifest.get("flight"),
        "kind": dom.value,
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "inspection_time": _inspection_time(manifest),
        "conditions": cond or None,
        "validity": validity,
        "options": {"module_power_w": opts.module_power_w, "gps_sigma_m": opts.gps_sigma_m},
        "counts": {},
        "findings": findings,
        "suppressed": suppressed,
        "resolved": [],
        "notes": notes,
        "previous_flight": None,
    }
    with _stage(timings, "trend"):
        if previous is not None:
            apply_trend(doc, previous)
    doc["counts"] = summarise(doc)
    ff = FlightFindings(doc, layout=layout, timings=timings)
    with _stage(timings, "crops"):
        if opts.crops:
            from findings.crops import make_crops

            ff.crops = make_crops(ff, thermal_reader=frames, image_reader=image_reader, size=opts.crop_px)
    log.info(
        "%s/%s: %d detections → %d findings (%s)",
        doc["site"],
        doc["flight"],
        len(obs),
        len(findings),
        ", ".join(f"{k} {v:.2f} s" for k, v in timings.items()),
    )
    return ff


def _yellowness(
    built: list[tuple[dict[str, Any], list[Observation]]], image_reader: Callable[[str], np.ndarray]
) -> list[list[float] | None]:
    """Per finding of ``built``: the :func:`findings.checks.yellowness` of each un-clipped view of a
    ``delamination`` finding (``yellowing``), None for other classes; each frame is read once."""
    todo: dict[str, list[tuple[int, Observation]]] = {}
    out: list[list[float] | None] = [None] * len(built)
    for k, (f, members) in enumerate(built):
        if f["class"] == "delamination":
            out[k] = []
            for m in members:
                if not m.clipped:
                    todo.setdefault(m.image, []).append((k, m))
    for rel, items in todo.items():
        try:
            img = np.asarray(image_reader(rel))
        except Exception:  # an unreadable frame judges nothing (the crops note it)
            continue
        if img.ndim != 3:
            continue
        for k, m in items:
            y = yellowness(img, m.xyxy)
            if y is not None and out[k] is not None:
                out[k].append(y)
    return out


def _wind_periodicity(
    built: list[tuple[dict[str, Any], list[Observation]]],
    cams: dict[str, FrameCamera],
    layout: SiteLayout,
    image_reader: Callable[[str], np.ndarray],
) -> list[dict[str, Any] | None]:
    """Per finding of ``built``: :func:`findings.checks.span_periodicity` at its best observation's box (the blade's
    span direction there from the layout's rotor and the frame's camera), None where it cannot be measured (not
    placed on a blade, frame unreadable, a class the ``periodic-structure`` check does not judge). Each frame is
    read once."""
    turbines = {t.turbine_id: t for t in layout.turbines}
    todo: dict[str, list[tuple[int, Observation]]] = {}
    for k, (f, members) in enumerate(built):
        placed = [m for m in members if m.located and m.wind and "depth_m" in m.wind]
        if f["class"] in NOT_PERIODIC or not placed:
            continue
        best = min(placed, key=lambda m: (-m.quality, m.image, m.index))
        todo.setdefault(best.image, []).append((k, best))
    out: list[dict[str, Any] | None] = [None] * len(built)
    for rel, items in todo.items():
        cam = cams.get(rel)
        if cam is None:
            continue
        try:
            img = np.asarray(image_reader(rel))
        except Exception:  # an unreadable frame judges nothing (the crops note it)
            continue
        gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) if img.ndim == 3 else img
        for k, m in items:
            w = m.wind or {}
            tb = turbines.get(w.get("turbine_id"))
            if tb is None or w.get("blade") not in tb.blades:
                continue
            b, _, _ = _turbine_axes(tb, tb.blades.index(w["blade"]))
            p = np.array([m.e, m.n, m.u or 0.0])
            px = cam.world_to_pixel(np.stack([p, p + 0.5 * b]))
            if np.all(np.isfinite(px)) and float(np.hypot(*(px[1] - px[0]))) > 1.0:
                out[k] = span_periodicity(gray, m.xyxy, px[1] - px[0], w["depth_m"] / cam.f_px)
    return out


def _remeasurer(
    manifest: dict[str, Any], cams: dict[str, FrameCamera], layout: SiteLayout | None, frames: ThermalReader
) -> Callable[[str, np.ndarray], float | None]:
    """(frame, ground region (4, 2)) → ΔT of the region's warmest point against its modules in the frame's
    radiometric data (:func:`findings.thermal.measure_delta_t` on the region's box), None when the frame is not
    radiometric, unreadable or has no reference pixels; for the ``multi-view`` check of spot classes."""
    index = _image_index(manifest)

    def remeasure(rel: str, region: np.ndarray) -> float | None:
        cam = cams.get(rel)
        if cam is None or not (index.get(rel) or {}).get("radiometric", True):
            return None
        px = cam.ground_to_pixel(region)
        if not np.all(np.isfinite(px)):
            return None
        box = [*(px.min(0) + 0.5).tolist(), *(px.max(0) + 0.5).tolist()]  # pixel centres → pixel edges
        try:
            temp = as_celsius(frames(rel))
        except Exception:  # an unreadable frame confirms nothing (the observations noted it already)
            return None
        return measure_delta_t(temp, box, [], cam, layout)["delta_t_k"]

    return remeasure


@contextmanager
def _stage(timings: dict[str, float], name: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - start


class FrameCache:
    """A thermal reader that keeps the frames it read (least recently used first out, up to ``max_mb``).

    The findings read each radiometric frame for ΔT and again for the crops of the findings whose best view it
    is; with the cache a frame is fetched (from the store or disk) and decoded once per flight.
    """

    def __init__(self, reader: ThermalReader, max_mb: float = 256.0) -> None:
        self.reader = reader
        self.max_bytes = int(max_mb * 1e6)
        self.frames: OrderedDict[str, np.ndarray] = OrderedDict()
        self.bytes = 0
        self.reads = 0
        self._lock = threading.Lock()  # the crops read frames from worker threads

    def __call__(self, rel: str) -> np.ndarray:
        with self._lock:
            if rel in self.frames:
                self.frames.move_to_end(rel)
                return self.frames[rel]
        frame = np.asarray(self.reader(rel))
        with self._lock:
            self.reads += 1
            if frame.nbytes <= self.max_bytes and rel not in self.frames:
                self.frames[rel] = frame
                self.bytes += frame.nbytes
                while self.bytes > self.max_bytes:
                    _, old = self.frames.popitem(last=False)
                    self.bytes -= old.nbytes
        return frame


def _domain(value: Any) -> Domain:
    return domain(value)


def summarise(doc: dict[str, Any]) -> dict[str, Any]:
    """Counts by severity, class, grade and status, and the site's total estimated power loss (findings only);
    the suppressed findings (:mod:`findings.checks`) are counted apart, by rule."""
    fs = doc["findings"]
    by_sev: dict[str, int] = {s: 0 for s in (*grading.SEVERITY_ORDER, "ungraded")}
    by_class: dict[str, int] = {}
    by_grade: dict[str, int] = {}
    for f in fs:
        by_sev[f["grade"]["severity"]] = by_sev.get(f["grade"]["severity"], 0) + 1
        by_class[f["class"]] = by_class.get(f["class"], 0) + 1
        by_grade[f["grade"]["label"]] = by_grade.get(f["grade"]["label"], 0) + 1
    trend: dict[str, int] = {}
    for f in fs:
        if f.get("trend"):
            trend[f["trend"]["status"]] = trend.get(f["trend"]["status"], 0) + 1
    if doc.get("resolved"):
        trend["resolved"] = len(doc["resolved"])
    losses = [f["power_loss_w"] for f in fs if f.get("power_loss_w") is not None]
    by_rule: dict[str, int] = {}
    for f in doc.get("suppressed") or []:
        rule = (f.get("suppression") or {}).get("rule", "unknown")
        by_rule[rule] = by_rule.get(rule, 0) + 1
    return {
        "findings": len(fs),
        "critical": sum(1 for f in fs if f["grade"].get("critical")),
        "by_severity": by_sev,
        "by_class": dict(sorted(by_class.items())),
        "by_grade": dict(sorted(by_grade.items())),
        "unlocated": sum(1 for f in fs if not f["located"]),
        "ungraded": sum(1 for f in fs if not f["graded"]),
        "observations": sum(f["n_observations"] for f in fs),
        "power_loss_w": round(float(sum(losses)), 1),
        "trend": trend,
        "suppressed": len(doc.get("suppressed") or []),
        "suppressed_by_rule": dict(sorted(by_rule.items())),
    }

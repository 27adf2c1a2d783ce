"""Physical checks of findings against the site and the radiometry: which detections cannot be the defect.

A detector sees patterns; some patterns cannot be the defect they look like, because the plant or the
temperatures say otherwise. Each rule below is a physical fact about the defect class, not a score threshold:

* ``spot-class`` (PV thermal, spot patterns ``hotspot_single_cell``, ``hotspot_multi_cell``, ``junction_box``):
  not a rejection but a class correction, applied when the finding is built (before grading). A hot cell warms
  one cell, a multi-cell hot spot several adjacent cells, and a junction box a disc smaller than a cell at a fixed
  place: :data:`JB_FROM_END` of the long side from one end, on the module's long axis, where no cell is centred
  (6 cells across). In each radiometric frame of the evidence the warm area (pixels at least half the spot's ΔT
  above the module reference, connected to its maximum; :func:`findings.thermal.measure_spot`) is counted in
  cells of the layout's module (its rectangle and ``cells``, default 6 across with square cells) and its centre
  placed on the module. A clear measurement (:func:`spot_class`) replaces the detector's class; the finding then
  records ``class_from`` (the detector's class) and ``reclassified`` (why, in words); between the limits, or
  without radiometric data, a located module, its module pixels or a spot ΔT of :data:`SPOT_MIN_K`, the
  detector's class stands (result ``not-applied``).
* ``layout-module-slot`` (PV, ``missing_module``): a module can only be missing where the as-built layout has
  a module slot. The finding's ground footprint (the boxes of its un-clipped observations projected onto the
  ground) must cover at least :data:`MIN_SLOT_COVERAGE` of one layout module's area; a "missing module" over
  the gap between two tables, past the end of a row or between rows covers no slot.
* ``radiometry-area-warm`` (PV thermal, area patterns ``module_offline``, ``string_offline``,
  ``bypass_diode``): an open-circuit module or string, or a bypassed substring, produces no power from the
  light it absorbs, so its whole area is warmer than the producing modules around it (roughly η·G / U: ≈ 1.5–5 K
  at the ≥ 600 W/m² of a valid inspection, lower with wind). The finding's area ΔT (median of the module
  pixels under its boxes against the median of the normal module pixels around them, :mod:`findings.thermal`)
  must reach :data:`findings.grading.MIN_AREA_DELTA_T_K`; below it the radiometry shows no thermal
  abnormality and the finding is not confirmed. Applied only when the frame's radiometric data was read and the
  reference came from the layout's module pixels (an annulus may hold ground between rows).
* ``explained-by-string`` (PV thermal, ``module_offline`` and ``bypass_diode``): a module of a string that has a
  (kept) ``string_offline`` finding is warm because its string is offline — the string finding already lists
  it; and an open string carries no current, so none of its bypass diodes can conduct.
* ``yellowing`` (PV RGB, ``delamination``): delamination and discoloration of the encapsulant show as yellowed to
  brown areas (EVA browning): red well above blue. In each whole view of the finding the box's 90th percentile of
  red minus blue (0–1 scale, :func:`yellowness`) is measured; the median over the views must reach
  :data:`YELLOW_MIN`. Below it the box is not yellowed — dust, bird droppings, glare or cell texture the detector
  read as delamination — and the finding is rejected. Set on the training flights 1100–1102 (truth boxes, median
  per defect): every true delamination measured ≥ 0.18 (30), soiling ≤ 0.15 in 21 of 29.
* ``multi-view`` (PV, every class): the flights overlap (nadir PV: 70–80 % forward, 60 % side), so every ground
  point is in several frames, and a defect is there in each of them; a detection that texture, glare or noise
  made is not repeated. The finding's region (the rectangle around its boxes' ground footprints, grown by its
  location uncertainty) is projected into every georeferenced frame the detector ran on (also those where it
  found nothing); the frames that hold it whole, :data:`BORDER_PX` inside the edge, are its *opportunities*,
  those of its evidence among them its *hits*. With at least :data:`MIN_OPPORTUNITIES` opportunities and at
  most :data:`MAX_HITS` hit the finding is rejected ("seen in 1 of 6 frames that showed it whole"). Why these
  numbers: the shipped models detect a defect they can see in nearly every frame that shows it (acceptance
  flights, true defects with a detection of their class: 122 of 124 whole views in PV RGB, 49 of 56 in thermal
  leaving out one hot spot), so a real defect seen at most once in four or more views is rare (binomial with
  p = 0.87: < 1 %), while most false detections are single. The weakest classes are detected less often (RGB
  soiling: 0.62–0.69 of its views), which is why three views do not judge (a real soiling spot was seen in 1 of
  3 on a fresh flight). The interior of a flight gives many more views (nadir PV at 70–80 % forward and 60 %
  side overlap: 8–12 frames per ground point); only its border and strings longer than a frame give fewer.
  Small thermal hot spots (:data:`SPOT_CLASSES`) are the exception — a cell is a few pixels and the detector
  finds some in one frame of ten — so a spot finding seen too rarely is kept when the radiometric data show its hot spot (ΔT ≥
  :data:`SPOT_MIN_K` and ≥ half its own ΔT at its place) in at least half of the frames that missed it: a
  reflection or noise does not stay on the same ground point from view to view. The check records
  ``opportunities``, ``hits``, ``hit_ratio`` and ``hits_cut_by_edge`` on every located PV finding, also when
  kept; fewer than :data:`MIN_OPPORTUNITIES` opportunities judge nothing. A finding that a physical rule above
  also rejects is suppressed under that rule. Wind: not applied — blade flights overlap about 30 % along the
  blade, so each blade section is seen whole in one or two frames.

* ``leading-edge-side`` (wind, ``leading_edge_erosion``): rain and particles wear the blade where it meets the
  air, at the leading edge; it is seen from the leading edge, or from the pressure and suction sides along the edge
  next to it, never from the trailing edge side (the opposite edge of the chord). A leading-edge erosion finding
  placed on the trailing edge side is rejected.
* ``same-spot`` (wind, every class): one spot of a blade's surface holds one defect. Two findings of different
  classes on the same blade side whose boxes in a frame cover the same spot (at least half of one inside the
  other, :data:`SAME_SPOT_IOS`) are the detector's two readings of one defect: the more confident stands and the
  other is rejected (greedy, most confident first, like a class-agnostic NMS over the blade side). Why it holds:
  on the dev flights 2202/2205/2206 and the acceptance flight 2201, of the 18 such pairs that held a true defect
  the more confident reading was its true class in 15; the three others were all small ``surface_damage`` /
  ``contamination`` patches (≈ 0.13 m), a pair the detector confuses both ways (4 of 7 right), so that pair judges
  nothing (:data:`SAME_SPOT_UNDECIDED`; both stand; the other pairs: 11 of 11). Pieces of one class are merged by
  the de-duplication instead. Not applied to PV: there two true defects can share a spot (a delaminated cell
  under vegetation shading, flight 2102), and neither confidence nor the number of frames tells the true class
  of a confused pair (flights 2101/2102: soiling read as delamination in more frames and more confidently).
* ``blade-end`` (wind, every class but :data:`AT_THE_TIP`): a defect lies on the blade's surface, so its box lies on
  the blade. A finding whose radius is closer to the blade's tip (the layout's blade length) than half its size
  plus its location uncertainty has a box that holds the blade's end: the detector saw the outline of the rounded
  tip against the background, not a defect on the surface (measured: such findings on flights 2201/2202/2205/2206
  were 5 surface-damage boxes 0.09–0.14 m from the tip, none true). Lightning damage (the tip's receptor) and
  leading-edge erosion (worst at the tip's speed) do occur at the tip itself: the rule does not judge them.
* ``periodic-structure`` (wind, every class but ``vortex_generator_missing``): a blade carries rows of identical
  parts along its span — vortex-generator fins on the suction side of the inner blade, every 5–40 cm — that texture
  and damage never repeat. In the finding's best frame a strip along the span through its box (its width across
  the span, :data:`PERIODIC_REACH_M` past its ends) is averaged across into a profile, high-passed, and
  autocorrelated (:func:`span_periodicity`); a pitch between :data:`PERIODIC_PITCH_M` where the correlation
  returns to at least :data:`PERIODIC_MIN_R`, risen at least :data:`PERIODIC_MIN_RISE` from the valley before it,
  is a row of identical parts: the finding is rejected. Measured: the crack and surface-damage findings on the
  vortex-generator rows of flights 2201/2202 (9) correlate 0.89–1.01 at the fins' pitch (0.12 m) and rise
  0.96–1.10; no true defect of flights 2201/2202/2205/2206 (53 findings) exceeds 0.51 and 0.59.
  A missing vortex generator is a gap in such a row: its box holds the row, so the rule does not judge it.

* ``same-place`` (PV, every class): one defect is one finding. Two kept findings of the same class on the same
  module whose centres lie closer than :data:`SAME_PLACE_M` (or half the smaller one's size) are one defect that
  the de-duplication kept apart because the detector gave it different classes in different frames, and the
  ``spot-class`` correction then gave both pieces the same class (flight 2001: a hot cell found as two single-cell
  findings 2 cm apart, one of them read as multi-cell by the detector). The more confident stands, the other is
  rejected as its duplicate.

A finding a rule rejects is **suppressed**, never deleted: it leaves the findings (and their counts, warnings,
trend, CSV/GeoJSON/KML exports and scores) and is kept in the document's ``suppressed`` list with
``suppression = {"rule", "reason", ...measured values}``, so an engineer can audit it (report.html and the PDF
list them). Every kept finding records in ``checks`` which rules ran on it and what they measured, or why a rule
could not run (no layout, unlocated, no radiometric data): without the data nothing is suppressed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import cv2
import numpy as np

from detection.boxes import box_ios
from detection.taxonomy import Domain
from findings import grading
from findings.georef import FrameCamera
from findings.layout import SiteLayout

MIN_SLOT_COVERAGE = 0.5
"""Fraction of one layout module's area a ``missing_module`` footprint must cover: a missing module leaves a
module-sized hole exactly where a slot is; a hole that is not half over any slot is not a slot."""

AREA_PATTERNS = ("module_offline", "string_offline", "bypass_diode")
"""Thermal classes whose pattern is a uniformly warm area (module, string, substring)."""

EXPLAINED_BY_STRING = ("module_offline", "bypass_diode")
"""Thermal classes that a kept ``string_offline`` finding of the module's string explains."""


class Observed(Protocol):
    """What the checks read of an observation (:class:`findings.build.Observation`)."""

    image: str
    xyxy: list[float]
    clipped: bool
    footprint: np.ndarray | None
    sigma_m: float


def polygon_area(poly: np.ndarray) -> float:
    """Area of a simple polygon (K, 2)."""
    x, y = poly[:, 0], poly[:, 1]
    return float(0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


def convex_overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Area of the intersection of two convex polygons (K, 2) in metres (computed about their centre, so the
    float32 of OpenCV keeps millimetres at any distance from the local origin)."""
    c = a.mean(0)
    pa = np.ascontiguousarray(a - c, np.float32)
    pb = np.ascontiguousarray(b - c, np.float32)
    if cv2.contourArea(pa, oriented=True) < 0:
        pa = pa[::-1].copy()
    if cv2.contourArea(pb, oriented=True) < 0:
        pb = pb[::-1].copy()
    area, _ = cv2.intersectConvexConvex(pa, pb)
    return max(0.0, float(area))


def slot_coverage(footprint: np.ndarray, layout: SiteLayout) -> tuple[float, str | None]:
    """(largest fraction of one layout module's area inside ``footprint`` (4, 2) local metres, that module's
    id or None)."""
    c = footprint.mean(0)
    radius = float(np.max(np.hypot(*(footprint - c).T))) + 0.5
    best, best_id = 0.0, None
    for i in layout.candidate_array(float(c[0]), float(c[1]), radius).tolist():
        ring = layout.modules[i].ring
        area = polygon_area(ring)
        if area <= 0:
            continue
        frac = convex_overlap(footprint, ring) / area
        if frac > best:
            best, best_id = frac, layout.modules[i].module_id
    return min(best, 1.0), best_id


def check_module_slot(
    f: dict[str, Any], members: Sequence[Observed], layout: SiteLayout | None
) -> dict[str, Any]:
    """The ``layout-module-slot`` check of a ``missing_module`` finding (module docstring)."""
    rule = "layout-module-slot"
    if layout is None or layout.kind != "pv" or not layout.modules:
        return {"rule": rule, "result": "not-applied", "reason": "no as-built PV layout for this site"}
    if not f["location"]["located"]:
        return {"rule": rule, "result": "not-applied", "reason": "the finding is unlocated"}
    feet = [m.footprint for m in members if m.footprint is not None and not m.clipped]
    feet = feet or [m.footprint for m in members if m.footprint is not None]
    if not feet:
        return {"rule": rule, "result": "not-applied", "reason": "no ground footprint of the finding's boxes"}
    covered = [slot_coverage(p, layout) for p in feet]
    frac, module_id = max(covered, key=lambda x: x[0])
    out = {"rule": rule, "slot_coverage": round(frac, 3), "slot_module_id": module_id}
    if frac >= MIN_SLOT_COVERAGE:
        return {
            **out,
            "result": "passed",
            "reason": f"its footprint covers {frac:.0%} of module slot {module_id} of the as-built layout",
        }
    if module_id is None or frac < 0.05:
        why = (
            "no module slot of the as-built layout under it (its footprint covers "
            + (f"at most {frac:.0%} of module {module_id})" if module_id else "no module)")
            + ": no module can be missing there"
        )
    else:
        why = (
            f"its footprint covers only {frac:.0%} of module slot {module_id} of the as-built layout "
            f"(< {MIN_SLOT_COVERAGE:.0%}): a missing module leaves its whole slot empty"
        )
    return {**out, "result": "failed", "reason": why}


def check_area_warm(f: dict[str, Any]) -> dict[str, Any]:
    """The ``radiometry-area-warm`` check of a thermal area-pattern finding (module docstring)."""
    rule = "radiometry-area-warm"
    t = f.get("thermal") or {}
    area = t.get("area_delta_t_k")
    if area is None:
        why = t.get("method") or "no radiometric data"
        return {"rule": rule, "result": "not-applied", "reason": f"no radiometric area ΔT ({why})"}
    method = str(t.get("method") or "")
    if not method.startswith("module pixels"):
        return {
            "rule": rule,
            "result": "not-applied",
            "area_delta_t_k": area,
            "reason": "the reference is not the layout's module pixels (no layout or polygons in the frame): "
            "too uncertain to reject the finding",
        }
    limit = grading.MIN_AREA_DELTA_T_K
    out = {"rule": rule, "area_delta_t_k": area, "delta_t_k": t.get("delta_t_k"), "limit_k": limit}
    what = f["class"].replace("_", " ")
    if area >= limit:
        return {
            **out,
            "result": "passed",
            "reason": f"{what}: its area is {area:.1f} K warmer than the normal modules around it "
            f"(≥ {limit:g} K)",
        }
    return {
        **out,
        "result": "failed",
        "reason": f"not confirmed by radiometry: a {what} warms its whole area, but the area under it is "
        f"{area:+.2f} K against the normal modules around it (< {limit:g} K: no thermal abnormality)",
    }


YELLOW_MIN = 0.15
"""Least yellowness (:func:`yellowness`, median over a finding's whole views) of a ``delamination`` finding
(``yellowing``): below the least yellow true delamination of the training flights 1100–1102 (0.18)."""


def yellowness(bgr: np.ndarray, xyxy: Sequence[float]) -> float | None:
    """90th percentile of red minus blue (0–1) of the pixels inside the box of a (H, W, 3) BGR frame (None for an
    empty box): how yellowed or browned the brightest-coloured part of it is (module cells are blue, glass glare
    grey)."""
    h, w = bgr.shape[:2]
    x1, y1 = max(0, round(xyxy[0])), max(0, round(xyxy[1]))
    x2, y2 = min(w, round(xyxy[2])), min(h, round(xyxy[3]))
    if x2 <= x1 or y2 <= y1:
        return None
    crop = bgr[y1:y2, x1:x2].astype(np.float32)
    return round(float(np.percentile(crop[..., 2] - crop[..., 0], 90)) / 255.0, 4)


def check_yellowing(f: dict[str, Any], values: Sequence[float] | None) -> dict[str, Any]:
    """The ``yellowing`` check of a PV RGB ``delamination`` finding (module docstring) from the
    :func:`yellowness` of its whole views (None or empty: no frame image given or every view clipped)."""
    rule = "yellowing"
    if not values:
        return {
            "rule": rule,
            "result": "not-applied",
            "reason": "no whole view of it measured (no frame images)",
        }
    y = float(np.median(values))
    out = {"rule": rule, "yellowness": round(y, 3), "views": len(values), "limit": YELLOW_MIN}
    if y >= YELLOW_MIN:
        return {
            **out,
            "result": "passed",
            "reason": f"yellowed: red exceeds blue by {y:.2f} in its box (≥ {YELLOW_MIN:g})",
        }
    return {
        **out,
        "result": "failed",
        "reason": f"not yellowed: red exceeds blue by only {y:.2f} in its box (median of {len(values)} views, "
        f"< {YELLOW_MIN:g}); delamination yellows or browns the encapsulant — this is dirt, glare or cell "
        "texture read as delamination",
    }


MIN_OPPORTUNITIES = 4
"""Frames that showed a finding whole before its repetition can reject it (``multi-view``): a real defect of the
weakest classes (RGB soiling: 0.62–0.69 of its whole views detected) is seen at most once in 3 views with a
probability of 0.35, in 4 of 0.18; a typical one (0.87–0.98) in 4 views below 1 %."""

MAX_HITS = 1
"""A finding detected in at most this many of its opportunities did not repeat (``multi-view``)."""

BORDER_PX = 8.0
"""Pixels between a finding's region (grown by its location uncertainty) and the frame edge for the frame to
count as an opportunity: a defect cut by the edge, or that may be, is no fair chance to detect it."""

SPOT_CLASSES = ("hotspot_single_cell", "hotspot_multi_cell", "junction_box")
"""Thermal classes that are a small hot spot (a cell, a few cells or a junction box: 4–25 px at a
thermal GSD of 3 cm)."""

SPOT_MIN_K = 3.0
"""Least ΔT at which the radiometric data of a frame show a spot finding's hot spot (``multi-view``): the warmest
pixel of a healthy module-sized area stands 1–1.5 K above its modules' median (cell mismatch, noise)."""

SPOT_FRACTION = 0.5
"""...and at least this fraction of the finding's own ΔT (the spot's ΔT changes little between views)."""

SPOT_SINGLE_MAX_CELLS = 1.3
"""Largest warm area (cells, :func:`findings.thermal.measure_spot`) of a single-cell hot spot (``spot-class``):
one cell plus a little of its blurred edge and the median filter's rounding."""

SPOT_MULTI_MIN_CELLS = 1.8
"""Least warm area (cells) of a multi-cell hot spot (``spot-class``): two adjacent cells less what the half-ΔT
level loses of a cooler second cell."""

JB_MAX_CELLS = 1.6
"""Largest warm area (cells) of a junction box (``spot-class``): its hot disc (radius 6–10 cm: 0.4–1.2 cells of
a 60-/72-cell module) is smaller than a cell, and its warm rim adds to the half-ΔT area (1.45 cells measured on
the acceptance flight); two warm cells make ≥ :data:`SPOT_MULTI_MIN_CELLS`."""

JB_RIM_MAX_CELLS = 3.0
"""Largest warm area (cells) at which a spot the DETECTOR called a junction box, at the junction-box position, keeps
that class: the rim's half-ΔT area grows where the module around the box is warm and uneven (1.8–2.6 cells measured
on the 26 °C acceptance flight 2003), while two or more warm cells centred exactly there are rare; a 2×2 cluster
of cells measures more."""

JB_FROM_END = 0.12
"""Where a junction box sits: this fraction of the module's long side from one short end, centred across."""

JB_FROM_END_TOL = 0.05
"""Tolerance of ``from_end`` (fraction of the long side) for a spot at the junction-box position."""

JB_ACROSS_TOL = 0.04
"""Tolerance of ``across`` (fraction of the short side): with 6 cells across, every cell's centre lies 1/12
(0.083) or more off the long axis, a junction box on it."""

WIND_REASON = (
    "blade frames overlap about 30% along the blade: each blade section is seen whole in one or two frames, "
    "too few to judge a detection by its repetition"
)

Remeasure = Callable[[str, np.ndarray], float | None]
"""(frame, ground region (4, 2)) → ΔT (K) of the warmest point of the region against its modules in that frame's
radiometric data, or None (not radiometric, unreadable, no reference)."""


def finding_region(members: Sequence[Observed]) -> np.ndarray | None:
    """(4, 2) ground (e, n) rectangle around the finding's footprints (the un-clipped ones where there are),
    grown by the largest location uncertainty of its observations; None without footprints."""
    use = [m for m in members if m.footprint is not None and not m.clipped]
    use = use or [m for m in members if m.footprint is not None]
    if not use:
        return None
    pts = np.concatenate([m.footprint for m in use])
    if not np.all(np.isfinite(pts)):
        return None
    grow = max(m.sigma_m for m in use)
    (e1, n1), (e2, n2) = pts.min(0) - grow, pts.max(0) + grow
    return np.array([[e1, n1], [e2, n1], [e2, n2], [e1, n2]])


def opportunities(
    regions: Sequence[np.ndarray | None], cameras: Mapping[str, FrameCamera], border_px: float = BORDER_PX
) -> list[list[str]]:
    """For each ground region (4, 2) (or None), the frames whose image holds all of it, in front of the camera
    and at least ``border_px`` from the edge, in the order of ``cameras``.

    Only the regions inside the bounding box of a frame's ground footprint are projected into it (a region the
    image holds lies on the ground inside the frame's footprint); a frame whose corner rays miss the ground
    projects every region. :func:`opportunities_one_by_one` is the plain algorithm (tests pin them equal).
    """
    out: list[list[str]] = [[] for _ in regions]
    idx = [i for i, r in enumerate(regions) if r is not None]
    if not idx:
        return out
    pts = np.stack([np.asarray(regions[i], float) for i in idx])  # (R, K, 2)
    lo, hi = pts.min(1), pts.max(1)
    for rel, cam in cameras.items():
        w, h = cam.width, cam.height
        ground = cam.pixel_to_ground(
            np.array([[-0.5, -0.5], [w - 0.5, -0.5], [w - 0.5, h - 0.5], [-0.5, h - 0.5]])
        )
        if np.all(np.isfinite(ground)):
            (e1, n1), (e2, n2) = ground.min(0), ground.max(0)
            cand = np.flatnonzero((lo[:, 0] >= e1) & (lo[:, 1] >= n1) & (hi[:, 0] <= e2) & (hi[:, 1] <= n2))
            if not len(cand):
                continue
        else:
            cand = np.arange(len(idx))
        px = cam.ground_to_pixel(pts[cand].reshape(-1, 2)).reshape(len(cand), -1, 2)
        for k in cand[_held(px, w, h, border_px)].tolist():
            out[idx[k]].append(rel)
    return out


def _held(px: np.ndarray, w: int, h: int, border_px: float) -> np.ndarray:
    """(R,) bool: all pixels (R, K, 2) of a region at least ``border_px`` inside a ``w`` x ``h`` frame."""
    with np.errstate(invalid="ignore"):  # NaN (behind the camera) compares False: not held
        return (
            (px[..., 0] >= border_px - 0.5)
            & (px[..., 1] >= border_px - 0.5)
            & (px[..., 0] <= w - 0.5 - border_px)
            & (px[..., 1] <= h - 0.5 - border_px)
        ).all(-1)


def opportunities_one_by_one(
    regions: Sequence[np.ndarray | None], cameras: Mapping[str, FrameCamera], border_px: float = BORDER_PX
) -> list[list[str]]:
    """:func:`opportunities` region by region and frame by frame (the reference for its tests)."""
    out: list[list[str]] = []
    for r in regions:
        out.append([])
        if r is None:
            continue
        for rel, cam in cameras.items():
            px = cam.ground_to_pixel(np.asarray(r, float))[None]
            if bool(_held(px, cam.width, cam.height, border_px)[0]):
                out[-1].append(rel)
    return out


def check_multiview(
    dom: Domain,
    f: dict[str, Any],
    members: Sequence[Observed],
    covering: list[str] | None,
    region: np.ndarray | None = None,
    remeasure: Remeasure | None = None,
) -> dict[str, Any]:
    """The ``multi-view`` check (module docstring) of a finding whose ground ``region`` the frames ``covering``
    showed whole (None: no region, or the flight's frames unknown)."""
    rule = "multi-view"
    if dom == Domain.WIND:
        return {"rule": rule, "result": "not-applied", "reason": WIND_REASON}
    if not f["location"]["located"]:
        return {"rule": rule, "result": "not-applied", "reason": "the finding is unlocated"}
    if covering is None:
        why = (
            "no ground footprint of the finding's boxes"
            if region is None
            else "not run: no cameras of the flight's frames given (BuildOptions.multiview off)"
        )
        return {"rule": rule, "result": "not-applied", "reason": why}
    seen = {m.image for m in members}
    n = len(covering)
    h = sum(1 for rel in covering if rel in seen)
    out: dict[str, Any] = {
        "rule": rule,
        "opportunities": n,
        "hits": h,
        "hit_ratio": round(h / n, 3) if n else None,
        "hits_cut_by_edge": len(seen - set(covering)),
    }
    said = f"seen in {h} of {n} frames that showed it whole"
    if out["hits_cut_by_edge"]:
        said += f" (and in {out['hits_cut_by_edge']} where the frame edge cut it or may have)"
    if n < MIN_OPPORTUNITIES:
        return {
            **out,
            "result": "not-applied",
            "reason": f"{said}: fewer than {MIN_OPPORTUNITIES}, too few to judge its repetition",
        }
    if h > MAX_HITS:
        return {**out, "result": "passed", "reason": said}
    dt = (f.get("thermal") or {}).get("delta_t_k")
    if dom == Domain.PV_THERMAL and f["class"] in SPOT_CLASSES and dt is not None and remeasure is not None:
        missed = [rel for rel in covering if rel not in seen]
        limit = round(max(SPOT_MIN_K, SPOT_FRACTION * dt), 2)
        values = [remeasure(rel, region) for rel in missed] if region is not None else []
        measured = [v for v in values if v is not None]
        hot = sum(1 for v in measured if v >= limit)
        out.update({"radiometry_frames": len(measured), "radiometry_hot": hot, "radiometry_limit_k": limit})
        if measured and 2 * hot >= len(missed):
            return {
                **out,
                "result": "passed",
                "reason": f"{said}, but the radiometric data show its hot spot (ΔT ≥ {limit:g} K) in {hot} of "
                f"the {len(missed)} others: a small spot the detector misses in most frames, not noise",
            }
        said += f" (its hot spot, ΔT ≥ {limit:g} K, is in the radiometric data of {hot} of the {len(missed)} others)"
    return {
        **out,
        "result": "failed",
        "reason": f"{said}: a defect is in every frame that shows it; a detection that does not repeat is "
        "texture or noise",
    }


SAME_SPOT_IOS = 0.5
"""Intersection over the smaller box at which two boxes of one frame cover the same spot: at least half of one
lies inside the other (wind: two boxes of one class there are pieces of one defect, merged by the
de-duplication, :func:`findings.build._piece_of`; of two classes, the detector's two readings of one spot,
``same-spot``)."""

SAME_SPOT_UNDECIDED = frozenset({frozenset({"surface_damage", "contamination"})})
"""Class pairs whose same-spot readings the detector's confidence does not decide (``same-spot``): small
chipped-paint and dirt patches, confused both ways (dev flights 2202/2205/2206: the more confident was right in 4
of 7 pairs)."""


def check_leading_edge_side(f: dict[str, Any]) -> dict[str, Any]:
    """The ``leading-edge-side`` check of a wind ``leading_edge_erosion`` finding (module docstring)."""
    rule = "leading-edge-side"
    side = (f.get("asset") or {}).get("side")
    if side is None:
        return {"rule": rule, "result": "not-applied", "reason": "the finding is not placed on a blade side"}
    out = {"rule": rule, "side": side}
    if side != "trailing_edge":
        return {
            **out,
            "result": "passed",
            "reason": f"seen from the {side.replace('_', ' ')}: the leading edge is in view",
        }
    return {
        **out,
        "result": "failed",
        "reason": "placed on the trailing edge side: leading-edge erosion wears the leading edge, the opposite "
        "edge of the chord, which a frame of the trailing edge does not show",
    }


PERIODIC_PITCH_M = (0.05, 0.4)
"""Pitches (metres along the span) of the rows of identical parts ``periodic-structure`` looks for: vortex
generators stand 5–40 cm apart (fins and fin pairs)."""

PERIODIC_REACH_M = 0.5
"""Metres of the span beyond each end of the box that the profile takes in: a box around one fin holds no
repetition, the row around it does."""

PERIODIC_MIN_R = 0.7
"""Least autocorrelation of the profile at the pitch (1 = the row repeats exactly)."""

PERIODIC_MIN_RISE = 0.7
"""Least rise of the autocorrelation from its lowest value at shorter lags to the pitch: a row dips between parts,
a smooth profile (a blob, an edge) decreases steadily and never comes back."""

NOT_PERIODIC = ("vortex_generator_missing",)
"""Wind classes whose box holds a row of identical parts by nature (a gap in the row of vortex generators)."""


def span_periodicity(
    gray: np.ndarray,
    xyxy: Sequence[float],
    span_px: np.ndarray,
    m_per_px: float,
    pitch_m: tuple[float, float] = PERIODIC_PITCH_M,
    reach_m: float = PERIODIC_REACH_M,
) -> dict[str, Any]:
    """How strongly the image repeats along the blade's span at a box (``periodic-structure``).

    Args:
        gray: (H, W) uint8 frame.
        xyxy: the box (pixels).
        span_px: (2,) image direction of the blade's span at the box.
        m_per_px: metres per pixel at the blade.

    Returns:
        ``{"correlation", "rise", "pitch_m"}``: the autocorrelation of the profile along the span at its
        fundamental pitch in ``pitch_m`` (the shortest lag of a local maximum within 0.1 of the best one), its
        rise from the lowest value at shorter lags, the pitch (None and 0 without a local maximum in the range).
    """
    a = np.asarray(span_px, float)
    a = a / max(float(np.hypot(*a)), 1e-12)
    n = np.array([-a[1], a[0]])
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    w, h = x2 - x1, y2 - y1
    along = 0.5 * (w * abs(a[0]) + h * abs(a[1]))
    across = 0.5 * (w * abs(n[0]) + h * abs(n[1]))
    length = int(2 * (along + reach_m / m_per_px))
    width = max(3, int(2 * across))
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    # strip pixel (u, v) → image: centre + (u - length/2) a + (v - width/2) n
    m = np.array(
        [
            [a[0], n[0], cx - a[0] * length / 2 - n[0] * width / 2],
            [a[1], n[1], cy - a[1] * length / 2 - n[1] * width / 2],
        ],
        np.float32,
    )
    strip = cv2.warpAffine(
        gray, m, (length, width), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT
    )
    prof = strip.astype(np.float32).mean(0)
    hp = prof - cv2.GaussianBlur(prof[None], (0, 0), max(1.0, pitch_m[1] / m_per_px))[0]
    hp = hp - hp.mean()
    size = len(hp)
    energy = float(np.dot(hp, hp))
    kmax = min(size // 3, int(pitch_m[1] / m_per_px) + 2)
    out: dict[str, Any] = {"correlation": None, "rise": 0.0, "pitch_m": None}
    if energy <= 1e-9 or kmax < 3:
        return out
    ac = np.array(
        [1.0] + [float(np.dot(hp[:-k], hp[k:])) / energy * size / (size - k) for k in range(1, kmax + 1)]
    )
    peaks = [
        k
        for k in range(max(2, int(pitch_m[0] / m_per_px)), kmax)
        if ac[k] >= ac[k - 1] and ac[k] >= ac[k + 1]
    ]
    if peaks:
        # the fundamental: the shortest lag that correlates about as well as the best (its multiples do too)
        top = max(ac[k] for k in peaks)
        k = next(k for k in peaks if ac[k] >= top - 0.1)
        out = {
            "correlation": round(float(ac[k]), 3),
            "rise": round(float(ac[k] - ac[1:k].min()), 3),
            "pitch_m": round(k * m_per_px, 3),
        }
    return out


def check_periodic(f: dict[str, Any], measured: dict[str, Any] | None) -> dict[str, Any]:
    """The ``periodic-structure`` check of a wind finding (module docstring) from its :func:`span_periodicity`
    measurement (None: not measured, with the reason in ``f``'s absence of a frame)."""
    rule = "periodic-structure"
    if measured is None:
        return {
            "rule": rule,
            "result": "not-applied",
            "reason": "not measured: no frame image or blade placement of its best observation",
        }
    r, rise, pitch = measured.get("correlation"), measured.get("rise", 0.0), measured.get("pitch_m")
    out = {"rule": rule, "correlation": r, "rise": rise, "pitch_m": pitch}
    if r is None or r < PERIODIC_MIN_R or rise < PERIODIC_MIN_RISE:
        said = (
            "the image along the blade's span does not repeat at its place"
            if r is None
            else f"the image along the blade's span repeats at most {r:.2f} at a pitch of {pitch:.2f} m"
        )
        return {
            **out,
            "result": "passed",
            "reason": f"{said} (a row of identical parts: ≥ {PERIODIC_MIN_R:g})",
        }
    return {
        **out,
        "result": "failed",
        "reason": f"the image along the blade's span repeats every {pitch:.2f} m (autocorrelation {r:.2f}, "
        f"rising {rise:.2f} from between the repeats): a row of identical parts of the blade (vortex generators), "
        f"not a {f['class'].replace('_', ' ')} — damage and dirt do not repeat",
    }


AT_THE_TIP = ("lightning_damage", "leading_edge_erosion")
"""Wind classes that occur at the blade's tip itself (``blade-end`` does not judge them)."""


def check_blade_end(f: dict[str, Any]) -> dict[str, Any]:
    """The ``blade-end`` check of a wind finding (module docstring)."""
    rule = "blade-end"
    if f["class"] in AT_THE_TIP:
        return {
            "rule": rule,
            "result": "not-applied",
            "reason": "a class that occurs at the blade's tip itself",
        }
    a = f.get("asset") or {}
    radius, length, size = a.get("radius_m"), a.get("blade_length_m"), f.get("size_m")
    if radius is None or not length or not size:
        return {"rule": rule, "result": "not-applied", "reason": "no radius, blade length or size"}
    sigma = float((f.get("location") or {}).get("uncertainty_m") or 0.0)
    out = {"rule": rule, "radius_m": radius, "blade_length_m": length, "size_m": size, "uncertainty_m": sigma}
    to_tip = length - radius
    reach = size / 2 + sigma
    if to_tip >= reach:
        return {
            **out,
            "result": "passed",
            "reason": f"its centre is {to_tip:.2f} m from the tip, beyond its half size and location uncertainty "
            f"({reach:.2f} m)",
        }
    return {
        **out,
        "result": "failed",
        "reason": f"its centre is {to_tip:.2f} m from the blade's tip (blade {length:g} m), within its half size "
        f"and location uncertainty ({reach:.2f} m): its box holds the blade's end — the outline of the tip, not "
        "a defect on its surface",
    }


def _spot_key(f: dict[str, Any]) -> tuple | None:
    a = f.get("asset") or {}
    if not f["location"]["located"] or a.get("side") is None:
        return None
    return (a.get("turbine_id"), a.get("blade"), a.get("side"))


def check_same_spot(
    built: Sequence[tuple[dict[str, Any], Sequence[Observed]]], standing: Sequence[bool]
) -> list[dict[str, Any] | None]:
    """The ``same-spot`` check (module docstring) of the wind findings ``built`` whose ``standing`` is True (the
    others were rejected by another rule and cover nothing): one check per finding (None where not standing)."""
    rule = "same-spot"
    out: list[dict[str, Any] | None] = [None] * len(built)
    order = sorted(
        (i for i in range(len(built)) if standing[i]), key=lambda i: (-built[i][0]["confidence"], i)
    )
    kept: list[int] = []
    for i in order:
        f, members = built[i]
        key = _spot_key(f)
        if key is None:
            out[i] = {
                "rule": rule,
                "result": "not-applied",
                "reason": "the finding is not placed on a blade side",
            }
            continue
        covered, undecided = None, []
        for j in kept:
            g, others = built[j]
            if g["class"] == f["class"] or _spot_key(g) != key:
                continue
            best = (0.0, "")
            for m in members:
                same = [o.xyxy for o in others if o.image == m.image]
                if same:
                    v = float(box_ios(np.array([m.xyxy]), np.array(same)).max())
                    best = max(best, (v, m.image))
            if best[0] < SAME_SPOT_IOS:
                continue
            if frozenset({f["class"], g["class"]}) in SAME_SPOT_UNDECIDED:
                undecided.append(g["class"])
                continue
            covered = (g, best)
            break
        if covered is None:
            why = "no more confident finding of another class covers its spot in a frame"
            if undecided:
                why += (
                    f" (a {undecided[0].replace('_', ' ')} finding does, a class pair the detector confuses both "
                    "ways: both stand)"
                )
            out[i] = {"rule": rule, "result": "passed", "reason": why}
            kept.append(i)
            continue
        g, (v, image) = covered
        what, other = f["class"].replace("_", " "), g["class"].replace("_", " ")
        out[i] = {
            "rule": rule,
            "result": "failed",
            "other_class": g["class"],
            "other_confidence": g["confidence"],
            "confidence": f["confidence"],
            "image": image,
            "ios": round(v, 3),
            "reason": f"in {image} its box covers the same spot as a more confident {other} finding's box "
            f"({v:.0%} of the smaller box inside the other; confidence {g['confidence']:.2f} against "
            f"{f['confidence']:.2f}): one spot of the blade holds one defect, this is the detector's other "
            f"reading of it, not a {what}",
        }
    return out


SAME_PLACE_M = 0.25
"""``same-place``: findings of one class on one module closer than this (or half the smaller size) are one."""


def _east_north_m(f: dict[str, Any]) -> tuple[float, float] | None:
    loc = f.get("location") or {}
    if not loc.get("located") or loc.get("lat") is None or loc.get("lon") is None:
        return None
    lat, lon = float(loc["lat"]), float(loc["lon"])
    return lon * 111_320.0 * float(np.cos(np.radians(lat))), lat * 110_574.0


def check_same_place(kept: Sequence[dict[str, Any]]) -> list[dict[str, Any] | None]:
    """The ``same-place`` check (module docstring) over the kept PV findings ``kept``: per finding the failed
    check when a more confident finding of its class on its module lies at the same place, else None."""
    order = sorted(range(len(kept)), key=lambda i: (-kept[i].get("confidence", 0.0), i))
    out: list[dict[str, Any] | None] = [None] * len(kept)
    standing: list[int] = []
    for i in order:
        f = kept[i]
        here, module = _east_north_m(f), (f.get("asset") or {}).get("module_id")
        if here is None or module is None:
            continue
        for j in standing:
            g = kept[j]
            there = _east_north_m(g)
            if g["class"] != f["class"] or (g.get("asset") or {}).get("module_id") != module or there is None:
                continue
            d = float(np.hypot(here[0] - there[0], here[1] - there[1]))
            sizes = [x for x in (f.get("size_m"), g.get("size_m")) if x]
            limit = max(SAME_PLACE_M, 0.5 * min(sizes)) if sizes else SAME_PLACE_M
            if d <= limit:
                out[i] = {
                    "rule": "same-place",
                    "result": "failed",
                    "other_confidence": g.get("confidence"),
                    "confidence": f.get("confidence"),
                    "distance_m": round(d, 3),
                    "limit_m": round(limit, 3),
                    "reason": f"a more confident {g['class'].replace('_', ' ')} finding on module {module} lies "
                    f"{d:.2f} m away (≤ {limit:.2f} m): the same defect, kept apart by the de-duplication while "
                    "the detector gave it different classes",
                }
                break
        if out[i] is None:
            standing.append(i)
    return out


def check_findings(
    dom: Domain,
    built: list[tuple[dict[str, Any], Sequence[Observed]]],
    layout: SiteLayout | None,
    cameras: Mapping[str, FrameCamera] | None = None,
    remeasure: Remeasure | None = None,
    periodicity: Sequence[dict[str, Any] | None] | None = None,
    yellow: Sequence[Sequence[float] | None] | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(kept, suppressed) findings after the rules of the module docstring; each finding gets ``checks`` (the
    rules that ran on it), each suppressed one ``suppression`` (the rule that rejected it, in words).

    ``cameras``: every georeferenced frame the detector ran on (also those where it found nothing) — without
    them ``multi-view`` is not applied; ``remeasure``: ΔT of a ground region in a frame's radiometric data (thermal
    spot classes, ``multi-view``); ``periodicity``: per finding of ``built``, the :func:`span_periodicity` of its
    best observation (wind, ``periodic-structure``; None: not run); ``yellow``: per finding, the
    :func:`yellowness` of its whole views (PV RGB ``delamination``, ``yellowing``; None: not run).
    """
    kept: list[dict[str, Any]] = []
    suppressed: list[dict[str, Any]] = []
    regions: list[np.ndarray | None] = [None] * len(built)
    covering: list[list[str] | None] = [None] * len(built)
    if dom != Domain.WIND:
        regions = [finding_region(members) if f["location"]["located"] else None for f, members in built]
    if cameras is not None and dom != Domain.WIND:
        covering = [
            c if r is not None else None
            for c, r in zip(opportunities(regions, cameras), regions, strict=True)
        ]
    standing: list[tuple[dict[str, Any], dict[str, Any]]] = []  # (finding, its multi-view check)
    for k, ((f, members), cover, region) in enumerate(zip(built, covering, regions, strict=True)):
        checks = []
        if dom != Domain.WIND and f["class"] == "missing_module":
            checks.append(check_module_slot(f, members, layout))
        if dom == Domain.PV_THERMAL and f["class"] in AREA_PATTERNS:
            checks.append(check_area_warm(f))
        if dom == Domain.PV_RGB and f["class"] == "delamination" and yellow is not None:
            checks.append(check_yellowing(f, yellow[k]))
        if dom == Domain.WIND and f["class"] == "leading_edge_erosion":
            checks.append(check_leading_edge_side(f))
        if dom == Domain.WIND and f["location"]["located"]:
            checks.append(check_blade_end(f))
            if periodicity is not None and f["class"] not in NOT_PERIODIC:
                checks.append(check_periodic(f, periodicity[k]))
        views = check_multiview(dom, f, members, cover, region, remeasure)
        f["checks"] = [*f.get("checks", []), *checks, views]
        failed = next((c for c in checks if c["result"] == "failed"), None)
        if failed is None:
            standing.append((f, views))
        else:
            f["suppression"] = dict(failed)
            suppressed.append(f)
    # a physical explanation names the suppression before the detector's repetition does
    strings = {
        m: s["asset"]["string_id"]
        for s, views in standing
        if dom == Domain.PV_THERMAL
        and s["class"] == "string_offline"
        and views["result"] != "failed"
        and (s.get("asset") or {}).get("string_id")
        for m in s["asset"].get("module_ids") or []
    }
    if dom == Domain.WIND:
        ids = {id(f) for f, _ in standing}
        spots = check_same_spot(built, [id(f) in ids for f, _ in built])
        spot_of = {id(f): c for (f, _), c in zip(built, spots, strict=True) if c is not None}
        for f, _ in standing:
            f["checks"].append(spot_of[id(f)])
        standing = [
            (f, spot_of[id(f)] if spot_of[id(f)]["result"] == "failed" else views) for f, views in standing
        ]
    for f, views in standing:
        module_id = (f.get("asset") or {}).get("module_id")
        if f["class"] in EXPLAINED_BY_STRING and module_id in strings:
            string_id = strings[module_id]
            check = {
                "rule": "explained-by-string",
                "result": "failed",
                "string_id": string_id,
                "reason": f"module {module_id} belongs to string {string_id}, which is offline (a string "
                "offline finding lists it): the module is warm because its string is offline"
                + (
                    ", and no bypass diode conducts in a string without current"
                    if f["class"] == "bypass_diode"
                    else ""
                ),
            }
            f["checks"].append(check)
            f["suppression"] = dict(check)
            suppressed.append(f)
        elif views["result"] == "failed":
            f["suppression"] = dict(views)
            suppressed.append(f)
        else:
            kept.append(f)
    if dom != Domain.WIND:
        duplicates = check_same_place(kept)
        for f, check in zip(kept, duplicates, strict=True):
            if check is not None:
                f["checks"].append(check)
                f["suppression"] = dict(check)
                suppressed.append(f)
        kept = [f for f, check in zip(kept, duplicates, strict=True) if check is None]
    return kept, suppressed


def spot_class(cls_name: str, spots: Sequence[dict[str, Any] | None]) -> tuple[str, dict[str, Any]]:
    """The ``spot-class`` correction of a thermal spot finding: (its class, the check).

    ``spots``: the :func:`findings.thermal.measure_spot` measurements of its evidence (None where none could be
    made). The warm area (median over the frames where it is not cut by the search window) decides between one
    cell (≤ :data:`SPOT_SINGLE_MAX_CELLS`) and several (≥ :data:`SPOT_MULTI_MIN_CELLS`); a spot of at most
    :data:`JB_MAX_CELLS` whose centre (median over the frames) lies at the junction-box position (:data:`JB_FROM_END` ±
    :data:`JB_FROM_END_TOL` of the long side from an end, within :data:`JB_ACROSS_TOL` of the long axis) is
    a junction box, and one the detector called a junction box stays one there up to :data:`JB_RIM_MAX_CELLS`.
    Between the limits, or without measurements, the detector's class stands.
    """
    rule = "spot-class"
    ms = [m for m in spots if m]
    if not ms:
        return cls_name, {
            "rule": rule,
            "result": "not-applied",
            "reason": "no warm-area measurement (it needs radiometric data, the layout's module under the spot and "
            f"its module pixels, and a spot ΔT of at least {SPOT_MIN_K:g} K)",
        }
    whole = [m["cells"] for m in ms if not m["cut"]]
    cells = float(np.median(whole)) if whole else None
    placed = [m for m in ms if m.get("from_end") is not None]
    from_end = float(np.median([m["from_end"] for m in placed])) if placed else None
    across = float(np.median([m["across"] for m in placed])) if placed else None
    out: dict[str, Any] = {
        "rule": rule,
        "model_class": cls_name,
        "cells": None if cells is None else round(cells, 2),
        "from_end": None if from_end is None else round(from_end, 3),
        "across": None if across is None else round(across, 3),
        "measurements": len(ms),
    }
    if cells is None:
        return cls_name, {
            **out,
            "result": "not-applied",
            "reason": "the warm area reaches the edge of its search window in every frame: its size is unknown",
        }
    at_jb = (
        from_end is not None
        and abs(from_end - JB_FROM_END) <= JB_FROM_END_TOL
        and abs(across) <= JB_ACROSS_TOL
    )
    where = (
        ""
        if from_end is None
        else f", its centre {from_end:.2f} of the module's length from an end and {abs(across):.2f} of its width "
        "off the long axis"
    )
    size = f"warm area (≥ half its ΔT) of {cells:.2f} cells{where}"
    if cells <= JB_MAX_CELLS and at_jb:
        new = "junction_box"
        why = f"{size}: about a cell or less, at the junction-box position (no cell is centred there)"
    elif cells <= SPOT_SINGLE_MAX_CELLS:
        new = "hotspot_single_cell"
        why = f"{size}: one cell (≤ {SPOT_SINGLE_MAX_CELLS:g})"
        if cls_name == "junction_box":
            if from_end is None or (
                abs(from_end - JB_FROM_END) <= 2 * JB_FROM_END_TOL and abs(across) <= 2 * JB_ACROSS_TOL
            ):
                return cls_name, {
                    **out,
                    "result": "not-applied",
                    "reason": f"{size}: not clearly away from the junction-box position, the detector's class "
                    "stands",
                }
            why = f"{size}: one cell, away from the junction-box position"
    elif cls_name == "junction_box" and at_jb and cells <= JB_RIM_MAX_CELLS:
        return cls_name, {
            **out,
            "result": "passed",
            "reason": f"{size}: at the junction-box position and at most {JB_RIM_MAX_CELLS:g} cells (a hot box's "
            "warm rim): confirms the detector's class",
        }
    elif cells >= SPOT_MULTI_MIN_CELLS:
        new = "hotspot_multi_cell"
        why = f"{size}: several cells (≥ {SPOT_MULTI_MIN_CELLS:g})"
    else:
        return cls_name, {
            **out,
            "result": "not-applied",
            "reason": f"{size}: between one cell and several, the detector's class stands",
        }
    if new == cls_name:
        return cls_name, {**out, "result": "passed", "reason": f"{why}: confirms the detector's class"}
    return new, {
        **out,
        "result": "reclassified",
        "class": new,
        "reason": f"{why}: reclassified from {cls_name.replace('_', ' ')} to {new.replace('_', ' ')}",
    }

"""The physical checks (findings.checks) on real synthetic flights, real layouts and real radiometric frames.

Detections are placed by projecting ground polygons of the as-built layout into a real frame of the flight
(its camera from the frame's own metadata), so the boxes are what a detector would draw over a module slot, over
the ground between tables, or over a healthy module.
"""

from __future__ import annotations

import copy
import csv
import json
from typing import Any

import cv2
import numpy as np
import pytest

from findings import build as B
from findings.build import BuildOptions, build_findings
from findings.checks import (
    MIN_SLOT_COVERAGE,
    check_findings,
    check_same_place,
    convex_overlap,
    polygon_area,
    slot_coverage,
)
from findings.grading import MIN_AREA_DELTA_T_K
from findings.layout import parse_layout
from findings.reports import geojson, write_reports
from findings.schema import schema_errors
from findings.score import score
from findings.thermal import as_celsius

NO_CROPS = BuildOptions(crops=False)


def _frame(case, margin_px: float = 12.0) -> tuple[str, Any, Any, int]:
    """(relative path, camera, parsed layout, index of a module fully inside the frame) of the case's first
    georeferenced frame with such a module."""
    lay = parse_layout(case.layout)
    local = B._local_frame(case.manifest, lay)
    for rec in case.manifest["images"]:
        cam = B.frame_camera(rec, local, None, None, lay.ground_alt_m)
        for i, m in enumerate(lay.modules):
            px = cam.ground_to_pixel(m.ring)
            if (
                np.all(np.isfinite(px))
                and px[:, 0].min() > 4 * margin_px
                and px[:, 1].min() > 4 * margin_px
                and px[:, 0].max() < cam.width - 4 * margin_px
                and px[:, 1].max() < cam.height - 4 * margin_px
            ):
                return rec["path"], cam, lay, i
    raise AssertionError("no frame shows a whole module")


def _box(cam, ground: np.ndarray) -> list[float]:
    px = cam.ground_to_pixel(ground)
    return [float(px[:, 0].min()), float(px[:, 1].min()), float(px[:, 0].max()), float(px[:, 1].max())]


def _record(rel: str, cam, boxes: list[tuple[list[float], str]]) -> dict[str, Any]:
    return {
        "relative_path": rel,
        "width": cam.width,
        "height": cam.height,
        "detections": [{"xyxy": b, "confidence": 0.9, "class_name": c} for b, c in boxes],
    }


def _shifted(lay, ring: np.ndarray, lo: float, hi: float, inside) -> np.ndarray:
    """``ring`` moved along e or n to the first place where its slot coverage lies in [lo, hi] and ``inside``."""
    for step in np.arange(0.1, 8.0, 0.1):
        for d in ((step, 0.0), (-step, 0.0), (0.0, step), (0.0, -step)):
            moved = ring + np.array(d)
            if lo <= slot_coverage(moved, lay)[0] <= hi and inside(moved):
                return moved
    raise AssertionError(f"no place with slot coverage in [{lo}, {hi}]")


# ------------------------------------------------------------------------------------------- geometry
SQUARE = np.array([[0.0, 0.0], [2.0, 0.0], [2.0, 1.0], [0.0, 1.0]])


@pytest.mark.parametrize(
    ("other", "overlap"),
    [
        (SQUARE, 2.0),  # identical
        (SQUARE + np.array([1.0, 0.0]), 1.0),  # half
        (SQUARE + np.array([3.0, 0.0]), 0.0),  # apart (the gap between two tables)
        (SQUARE[::-1] + np.array([0.5, 0.5]), 0.75),  # clockwise ring, quarter-shifted
        (np.array([[-1.0, -1.0], [3.0, -1.0], [3.0, 2.0], [-1.0, 2.0]]), 2.0),  # a loose box around it
        (SQUARE * 0.5 + np.array([1000.0, 5000.0]), 0.0),  # far from the origin (float32 inside OpenCV)
    ],
)
def test_convex_overlap(other: np.ndarray, overlap: float) -> None:
    assert convex_overlap(SQUARE, other) == pytest.approx(overlap, abs=1e-4)
    assert convex_overlap(SQUARE + 700.0, other + 700.0) == pytest.approx(overlap, abs=1e-3)
    assert polygon_area(SQUARE) == 2.0


# ------------------------------------------------------------------------------------------- missing module
@pytest.mark.parametrize(
    ("where", "layout", "kept", "result", "why"),
    [
        ("slot", True, True, "passed", "of module slot"),
        ("gap", True, False, "failed", "no module slot of the as-built layout under it"),
        ("partial", True, False, "failed", "a missing module leaves its whole slot empty"),
        ("gap", False, True, "not-applied", "no as-built PV layout"),
        ("slot", False, True, "not-applied", "no as-built PV layout"),
    ],
)
def test_missing_module_needs_a_module_slot(
    synth_case, where: str, layout: bool, kept: bool, result: str, why: str
) -> None:
    case = synth_case("pv-rgb")
    rel, cam, lay, i = _frame(case)
    ring = lay.modules[i].ring

    def inside(g: np.ndarray) -> bool:
        px = cam.ground_to_pixel(g)
        return bool(px.min() > 8 and px[:, 0].max() < cam.width - 8 and px[:, 1].max() < cam.height - 8)

    ground = {
        "slot": ring,
        "gap": _shifted(lay, ring, 0.0, 0.0, inside) if where == "gap" else None,
        "partial": _shifted(lay, ring, 0.15, 0.4, inside) if where == "partial" else None,
    }[where]
    dets = [_record(rel, cam, [(_box(cam, ground), "missing_module")])]
    ff = build_findings(case.manifest, dets, layout=case.layout if layout else None, options=NO_CROPS)
    (f,) = ff.findings or ff.doc["suppressed"]
    assert (f in ff.findings) is kept
    check = next(c for c in f["checks"] if c["rule"] == "layout-module-slot")
    assert check["result"] == result and why in check["reason"], check
    if kept:
        assert f["id"] == "F0001" and "suppression" not in f and ff.doc["counts"]["suppressed"] == 0
        assert not layout or check["slot_coverage"] >= 0.95
    else:
        assert f["id"] == "S0001" and f["suppression"] == check
        assert check["slot_coverage"] < MIN_SLOT_COVERAGE
        assert ff.doc["counts"]["findings"] == 0 and ff.doc["counts"]["by_class"] == {}
        assert ff.doc["counts"]["suppressed_by_rule"] == {"layout-module-slot": 1}
    assert schema_errors(ff.doc) == []


def test_unlocated_missing_module_is_kept_with_the_reason(synth_case) -> None:
    case = synth_case("pv-rgb")
    rel, cam, lay, i = _frame(case)
    gap = _shifted(lay, lay.modules[i].ring, 0.0, 0.0, lambda g: bool(cam.ground_to_pixel(g).min() > 8))
    manifest = copy.deepcopy(case.manifest)
    for rec in manifest["images"]:
        if rec["path"] == rel:
            rec["lat"] = rec["lon"] = None
            rec["dji"].pop("GpsLatitude", None)
            rec["dji"].pop("GpsLongitude", None)
    dets = [_record(rel, cam, [(_box(cam, gap), "missing_module")])]
    ff = build_findings(manifest, dets, layout=case.layout, options=NO_CROPS)
    (f,) = ff.findings
    assert not f["located"]
    assert f["checks"] == [
        {"rule": "layout-module-slot", "result": "not-applied", "reason": "the finding is unlocated"},
        {"rule": "multi-view", "result": "not-applied", "reason": "the finding is unlocated"},
    ]


def test_truth_boxes_are_never_suppressed(built) -> None:
    """The generator's own defects (truth boxes as detections) pass every check that applies to them."""
    for kind in ("pv-rgb", "pv-thermal"):
        ff = built(kind)
        assert ff.doc["suppressed"] == [], [f["suppression"] for f in ff.doc["suppressed"]]
        for f in ff.findings:
            physical = [c for c in f["checks"] if c["rule"] not in ("multi-view", "spot-class")]  # own tests
            assert all(c["result"] == "passed" for c in physical), f["checks"]
            # spot-class: never a wrong class for a true spot
            spot = [c for c in f["checks"] if c["rule"] == "spot-class"]
            if any(c["result"] == "reclassified" for c in spot):
                # the generator's "multi-cell" hot spot in a corner cell whose added cells all fell off the
                # module (truth size: one cell): physically a single cell
                assert (f["class_from"], f["class"]) == ("hotspot_multi_cell", "hotspot_single_cell"), spot
                assert f["size_m"] < 0.2 and spot[0]["cells"] <= 1.0, (f["size_m"], spot)
            else:
                assert all(c["result"] in ("passed", "not-applied") for c in spot), spot
    area = [f for f in built("pv-thermal").findings if f["checks"][0]["rule"] == "radiometry-area-warm"]
    assert len(area) >= 3, "the thermal test flight must hold area patterns (module offline, bypass diode)"


# ------------------------------------------------------------------------------------------- radiometry
def _warmed(case, rel: str, cam, ring: np.ndarray, warm_k: float):
    """The case's thermal reader with the pixels of ground polygon ``ring`` in frame ``rel`` ``warm_k`` warmer."""
    base = case.thermal_reader()

    def reader(path: str) -> np.ndarray:
        temp = as_celsius(base(path)).copy()
        if path == rel and warm_k:
            mask = np.zeros(temp.shape, np.uint8)
            cv2.fillPoly(mask, [np.rint(cam.ground_to_pixel(ring) * 4).astype(np.int32)], 1, shift=2)
            temp[mask.astype(bool)] += warm_k
        return temp

    return reader


@pytest.mark.parametrize(
    ("cls", "warm_k", "kept", "result"),
    [
        ("module_offline", 0.0, False, "failed"),  # a healthy module read as offline
        ("module_offline", 0.5, False, "failed"),  # within the spread of healthy modules
        ("module_offline", 3.0, True, "passed"),  # uniformly 3 K warmer: an open circuit
        ("bypass_diode", 0.0, False, "failed"),
        ("bypass_diode", 4.0, True, "passed"),
        ("string_offline", 0.0, False, "failed"),
        ("hotspot_single_cell", 0.0, True, None),  # not an area pattern: no area check
    ],
)
def test_area_patterns_must_be_warmer_than_the_normal_modules(
    synth_case, cls: str, warm_k: float, kept: bool, result: str | None
) -> None:
    case = synth_case("pv-thermal")
    rel, cam, lay, i = _frame(case, margin_px=3.0)
    ring = lay.modules[i].ring
    dets = [_record(rel, cam, [(_box(cam, ring), cls)])]
    reader = _warmed(case, rel, cam, ring, warm_k)
    ff = build_findings(case.manifest, dets, layout=case.layout, thermal_reader=reader, options=NO_CROPS)
    (f,) = ff.findings or ff.doc["suppressed"]
    assert (f in ff.findings) is kept
    area = f["thermal"]["area_delta_t_k"]
    assert area == pytest.approx(warm_k, abs=0.6), f["thermal"]
    if result is None:  # a spot class: its class check (a healthy module: no hot spot to measure) only
        assert [c["rule"] for c in f["checks"]] == ["spot-class", "multi-view"]
        assert f["checks"][0]["result"] == "not-applied" and f["class"] == cls
        return
    check, views = f["checks"]
    assert views["rule"] == "multi-view" and views["result"] == "not-applied"  # one frame: nothing to judge
    assert check["rule"] == "radiometry-area-warm" and check["result"] == result
    assert check["area_delta_t_k"] == area and check["limit_k"] == MIN_AREA_DELTA_T_K
    if not kept:
        assert "not confirmed by radiometry" in f["suppression"]["reason"]
        assert f"{area:+.2f} K" in f["suppression"]["reason"]
    assert schema_errors(ff.doc) == []


@pytest.mark.parametrize(
    ("radiometry", "layout", "why"),
    [
        (False, True, "no radiometric area ΔT"),
        (True, False, "not the layout's module pixels"),
    ],
)
def test_area_check_needs_radiometry_and_module_pixels(
    synth_case, radiometry: bool, layout: bool, why: str
) -> None:
    case = synth_case("pv-thermal")
    rel, cam, lay, i = _frame(case, margin_px=3.0)
    dets = [_record(rel, cam, [(_box(cam, lay.modules[i].ring), "module_offline")])]
    ff = build_findings(
        case.manifest,
        dets,
        layout=case.layout if layout else None,
        thermal_reader=case.thermal_reader() if radiometry else None,
        options=NO_CROPS,
    )
    (f,) = ff.findings  # kept: nothing to confirm or reject it with
    check, views = f["checks"]
    assert check["result"] == "not-applied" and why in check["reason"], check
    assert views["rule"] == "multi-view" and views["result"] == "not-applied"


def _thermal_finding(cls: str, module_id: str, area_k: float, **asset: Any) -> dict[str, Any]:
    return {
        "class": cls,
        "location": {"located": True},
        "asset": {"module_id": module_id, **asset},
        "thermal": {"area_delta_t_k": area_k, "delta_t_k": area_k + 1, "method": "module pixels within 2 m"},
    }


@pytest.mark.parametrize(
    ("cls", "string_area_k", "module_id", "module_kept"),
    [
        ("module_offline", 4.0, "M2", False),  # the module is in the offline string: explained by it
        ("bypass_diode", 4.0, "M2", False),  # no current in an open string: no diode conducts
        ("hotspot_multi_cell", 4.0, "M2", True),  # not an area pattern of the string
        ("module_offline", 4.0, "M9", True),  # another string's module: a finding of its own
        (
            "module_offline",
            0.2,
            "M2",
            True,
        ),  # the string finding itself is not confirmed: the module stands alone
    ],
)
def test_module_patterns_in_an_offline_string_are_explained_by_it(
    cls: str, string_area_k: float, module_id: str, module_kept: bool
) -> None:
    from detection.taxonomy import Domain

    string = _thermal_finding(
        "string_offline", "M2", string_area_k, string_id="S1", module_ids=["M1", "M2", "M3"]
    )
    module = _thermal_finding(cls, module_id, 4.0, string_id="S1")
    kept, suppressed = check_findings(Domain.PV_THERMAL, [(string, []), (module, [])], None)
    assert (module in kept) is module_kept and (module in suppressed) is not module_kept
    if not module_kept:
        assert module["suppression"]["rule"] == "explained-by-string"
        assert "belongs to string S1, which is offline" in module["suppression"]["reason"]


# ------------------------------------------------------------------------------------------- reports, score
def test_suppressed_findings_are_audited_in_reports_and_left_out_of_exports_and_score(
    synth_case, tmp_path
) -> None:
    case = synth_case("pv-rgb")
    rel, cam, lay, i = _frame(case)
    gap = _shifted(lay, lay.modules[i].ring, 0.0, 0.0, lambda g: bool(cam.ground_to_pixel(g).min() > 8))
    extra = _record(rel, cam, [(_box(cam, gap), "missing_module")])
    dets = copy.deepcopy(case.detections)
    for rec in dets:
        if rec["relative_path"] == rel:
            rec["detections"] += extra["detections"]
            break
    else:
        dets.append(extra)
    ff = build_findings(case.manifest, dets, layout=case.layout, image_reader=case.image_reader())
    (sup,) = ff.doc["suppressed"]
    assert ff.doc["counts"]["suppressed"] == 1 and sup["id"] == "S0001"
    assert sup["id"] not in ff.crops
    paths = write_reports(ff, tmp_path)
    rows = list(csv.DictReader(paths["csv"].open(encoding="utf-8")))
    assert [r["id"] for r in rows] == [f["id"] for f in ff.findings]
    assert {ft["id"] for ft in geojson(ff.doc)["features"]} <= {f["id"] for f in ff.findings}
    assert "S0001" not in paths["kml"].read_text("utf-8")
    page = paths["html"].read_text("utf-8")
    assert "Suppressed detections (1)" in page and "no module slot of the as-built layout under it" in page
    assert json.loads(paths["json"].read_text("utf-8"))["suppressed"][0]["suppression"] == sup["suppression"]
    assert paths["pdf"].stat().st_size > 0
    # the score counts the findings only: the same with or without the suppressed list
    assert score(ff.doc, case.root) == score({**ff.doc, "suppressed": []}, case.root)
    assert score(ff.doc, case.root)["precision"] >= 0.9


# ------------------------------------------------------------------------------------------- same-place
def _placed(
    cls: str, conf: float, module: str | None, east_m: float, north_m: float, size: float = 0.19
) -> dict:
    lat0, lon0 = 43.6261, 1.7044
    lat = lat0 + north_m / 110_574.0
    lon = lon0 + east_m / (111_320.0 * np.cos(np.radians(lat)))
    return {"class": cls, "confidence": conf, "size_m": size, "asset": {"module_id": module},
            "location": {"located": True, "lat": lat, "lon": lon}}  # fmt: skip


@pytest.mark.parametrize(
    ("second", "rejected"),
    [
        (_placed("hotspot_single_cell", 0.27, "M021", 0.02, 0.0), True),  # flight 2001: the same cell twice
        (_placed("hotspot_single_cell", 0.27, "M021", 0.40, 0.0), False),  # another cell of the module
        (_placed("hotspot_multi_cell", 0.27, "M021", 0.02, 0.0), False),  # another class: not this rule's
        (_placed("hotspot_single_cell", 0.27, "M022", 0.02, 0.0), False),  # the neighbouring module's edge
        (_placed("module_offline", 0.5, "M021", 0.6, 0.0, size=1.8), False),  # a different class and size
    ],
    ids=["same-cell", "other-cell", "other-class", "other-module", "module-size"],
)
def test_same_place_keeps_one_finding_per_defect(second: dict, rejected: bool) -> None:
    first = _placed("hotspot_single_cell", 0.28, "M021", 0.0, 0.0)
    out = check_same_place([second, first])
    assert out[1] is None  # the more confident one stands
    if rejected:
        assert out[0]["rule"] == "same-place" and out[0]["result"] == "failed" and out[0]["distance_m"] < 0.05
        assert "module M021" in out[0]["reason"]
    else:
        assert out[0] is None


def test_same_place_judges_nothing_without_a_module_or_a_location() -> None:
    a = _placed("hotspot_single_cell", 0.9, None, 0.0, 0.0)
    b = _placed("hotspot_single_cell", 0.5, None, 0.0, 0.0)
    c = {**_placed("hotspot_single_cell", 0.4, "M1", 0.0, 0.0), "location": {"located": False}}
    assert check_same_place([a, b, c]) == [None, None, None]

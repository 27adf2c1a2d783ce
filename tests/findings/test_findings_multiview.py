"""The ``multi-view`` check (findings.checks) on real synthetic flights, their layouts and radiometric frames.

A detection is placed on a healthy module of a real flight in some of the frames that show the module whole (the
box is the module's ground square projected with each frame's own camera), and every other frame of the flight is
a frame the detector ran on without finding anything there. Thermal frames are warmed where a real hot spot would
be: at the same ground point in every frame (a defect) or in one frame only (a reflection, noise).
"""

from __future__ import annotations

import json
from typing import Any

import cv2
import numpy as np
import pytest

from findings import build as B
from findings.build import BuildOptions, build_findings
from findings.checks import BORDER_PX, MIN_OPPORTUNITIES, opportunities
from findings.layout import parse_layout
from findings.reports import render_html
from findings.schema import schema_errors
from findings.thermal import as_celsius

NO_CROPS = BuildOptions(crops=False)


def _cameras(case) -> tuple[dict[str, Any], Any]:
    lay = parse_layout(case.layout)
    local = B._local_frame(case.manifest, lay)
    cams = {
        r["path"]: B.frame_camera(r, local, None, None, lay.ground_alt_m) for r in case.manifest["images"]
    }
    return cams, lay


def _inside(cam, ground: np.ndarray, margin_px: float) -> bool:
    px = cam.ground_to_pixel(ground)
    return bool(
        np.all(np.isfinite(px))
        and px.min() >= margin_px
        and px[:, 0].max() <= cam.width - 1 - margin_px
        and px[:, 1].max() <= cam.height - 1 - margin_px
    )


def _square(c: np.ndarray, half: float) -> np.ndarray:
    return np.asarray(c, float) + half * np.array([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])


def _healthy_spot(case, half: float, min_views: int) -> tuple[np.ndarray, list[str], dict[str, Any]]:
    """(ground square of a healthy module's centre, the frames that show it whole, cameras): a module (thermal: 3 m
    from every true defect) shown clearly whole (the square grown by 1 m, more than the location uncertainty, inside) by at least ``min_views``
    frames and clearly cut or absent (the bare square not inside) in all others."""
    cams, lay = _cameras(case)
    truth = json.loads((case.root / "truth" / "defects.json").read_text("utf-8"))
    defects = np.array([np.array(lay.local.to_local(t["lat"], t["lon"]), float) for t in truth])
    best: tuple[np.ndarray, list[str]] | None = None
    for m in lay.modules:
        if case.kind == "pv-thermal" and len(defects) and np.min(np.hypot(*(defects - m.centre).T)) < 3.0:
            continue  # the radiometric frames hold the true defects' heat (RGB: only our boxes are detections)
        sq = _square(m.centre, half)
        grown = _square(m.centre, half + 1.0)
        whole = [rel for rel, cam in cams.items() if _inside(cam, grown, BORDER_PX)]
        unclear = [rel for rel, cam in cams.items() if rel not in whole and _inside(cam, sq, 0.0)]
        if not unclear and len(whole) >= min_views and (best is None or len(whole) > len(best[1])):
            best = (sq, whole)
    assert best is not None, f"no healthy module shown whole in {min_views} frames"
    return best[0], best[1], cams


def _records(case, cams, boxes: dict[str, list[tuple[list[float], str]]]) -> list[dict[str, Any]]:
    """One detection record per frame of the flight (the detector ran on each), with ``boxes`` in theirs."""
    return [
        {
            "relative_path": rel,
            "width": cam.width,
            "height": cam.height,
            "detections": [{"xyxy": b, "confidence": 0.6, "class_name": c} for b, c in boxes.get(rel, [])],
        }
        for rel, cam in cams.items()
    ]


def _box(cam, ground: np.ndarray) -> list[float]:
    px = cam.ground_to_pixel(ground)
    return [float(px[:, 0].min()), float(px[:, 1].min()), float(px[:, 0].max()), float(px[:, 1].max())]


def _warmed(case, cams, ground: np.ndarray, warm_k: float, only: str | None):
    """The flight's thermal reader with ``ground`` ``warm_k`` warmer in every frame (``only`` None) or one frame."""
    base = case.thermal_reader()

    def reader(rel: str) -> np.ndarray:
        temp = as_celsius(base(rel)).copy()
        if warm_k and (only is None or rel == only):
            mask = np.zeros(temp.shape, np.uint8)
            px = cams[rel].ground_to_pixel(ground)
            if np.all(np.isfinite(px)):
                cv2.fillPoly(mask, [np.rint(px * 4).astype(np.int32)], 1, shift=2)
                temp[mask.astype(bool)] += warm_k
        return temp

    return reader


def _multiview(f: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in f["checks"] if c["rule"] == "multi-view")


# ------------------------------------------------------------------------------------------- the truth
@pytest.mark.parametrize("kind", ["pv-rgb", "pv-thermal"])
def test_true_defects_are_seen_in_every_frame_that_showed_them_whole(built, kind: str) -> None:
    """The generator's own boxes: each located finding is detected in all of its opportunities (the geometry of
    the opportunities agrees with the renderer's), and none is suppressed."""
    ff = built(kind)
    assert ff.doc["suppressed"] == []
    judged = 0
    for f in ff.findings:
        c = _multiview(f)
        assert c["hits"] == c["opportunities"], (f["class"], c)
        assert c["result"] == ("passed" if c["opportunities"] >= MIN_OPPORTUNITIES else "not-applied"), c
        judged += c["result"] == "passed"
    assert judged >= 1, f"the test flight must show a defect whole in {MIN_OPPORTUNITIES} frames"


def test_wind_is_not_judged_by_repetition(built) -> None:
    for f in built("wind-rgb").findings:
        c = _multiview(f)
        assert c["result"] == "not-applied" and "one or two frames" in c["reason"]


# ------------------------------------------------------------------------------------------- frame borders
@pytest.mark.parametrize(
    ("box", "whole"),
    [
        ("centre", True),
        ("border+1", True),  # 1 px more than BORDER_PX inside
        ("border-2", False),  # within BORDER_PX of the left edge: may be cut
        ("cut", False),  # over the right edge
        ("outside", False),
    ],
)
def test_a_frame_counts_only_when_it_holds_the_region_whole(synth_case, box: str, whole: bool) -> None:
    case = synth_case("pv-rgb")
    cams, _ = _cameras(case)
    rel, cam = next(iter(cams.items()))
    w, h = cam.width, cam.height
    x1, y1 = {
        "centre": (w / 2, h / 2),
        "border+1": (BORDER_PX + 1.0, h / 2),
        "border-2": (BORDER_PX - 2.0, h / 2),
        "cut": (w - 20.0, h / 2),
        "outside": (w + 50.0, h / 2),
    }[box]
    px = np.array([[x1, y1], [x1 + 30, y1], [x1 + 30, y1 + 30], [x1, y1 + 30]]) - 0.5
    region = cam.pixel_to_ground(px)
    (covering,) = opportunities([region], {rel: cam})
    assert (rel in covering) is whole
    assert opportunities([None, region], {rel: cam})[0] == []


# ------------------------------------------------------------------------------------------- suppression
@pytest.mark.parametrize(
    ("kind", "cls", "hits", "warm", "kept", "result", "words"),
    [
        # PV RGB: a detection that does not repeat on a healthy module
        ("pv-rgb", "glass_breakage", 1, None, False, "failed", "seen in 1 of"),
        ("pv-rgb", "glass_breakage", 2, None, True, "passed", "seen in 2 of"),
        ("pv-rgb", "glass_breakage", "all", None, True, "passed", "seen in"),
        # thermal spot classes: the radiometric data decide whether the spot is there in the missed frames
        ("pv-thermal", "hotspot_multi_cell", 1, None, False, "failed", "texture or noise"),
        ("pv-thermal", "hotspot_multi_cell", 1, "one", False, "failed", "in the radiometric data of 0 of"),
        ("pv-thermal", "hotspot_multi_cell", 1, "all", True, "passed", "the detector misses in most frames"),
        ("pv-thermal", "junction_box", 1, "all", True, "passed", "the detector misses in most frames"),
        # thermal area classes: several patterns warm the same area, only the detector's repetition names it
        ("pv-thermal", "bypass_diode", 1, "all", False, "failed", "seen in 1 of"),
        ("pv-thermal", "bypass_diode", 2, "all", True, "passed", "seen in 2 of"),
    ],
)
def test_a_detection_that_does_not_repeat_is_suppressed(
    synth_case, kind: str, cls: str, hits: int | str, warm: str | None, kept: bool, result: str, words: str
) -> None:
    case = synth_case(kind)
    spot = cls in ("hotspot_multi_cell", "junction_box")
    sq, whole, cams = _healthy_spot(case, 0.2 if spot else 0.6, MIN_OPPORTUNITIES)
    k = len(whole) if hits == "all" else int(hits)
    boxes = {rel: [(_box(cams[rel], sq), cls)] for rel in whole[:k]}
    reader = None
    if kind == "pv-thermal":
        reader = _warmed(case, cams, sq, 12.0 if spot else 4.0, whole[0] if warm == "one" else None)
        if warm is None:
            reader = case.thermal_reader()
    ff = build_findings(
        case.manifest,
        _records(case, cams, boxes),
        layout=case.layout,
        thermal_reader=reader,
        options=NO_CROPS,
    )
    (f,) = ff.findings or ff.doc["suppressed"]
    c = _multiview(f)
    assert (c["opportunities"], c["hits"], c["hits_cut_by_edge"]) == (len(whole), k, 0), c
    assert c["result"] == result and words in c["reason"], c
    assert c["hit_ratio"] == round(k / len(whole), 3)
    assert (f in ff.findings) is kept
    if kept:
        assert "suppression" not in f and ff.doc["counts"]["findings"] == 1
        assert c["reason"] in render_html(ff)  # the engineers see it in the report
    else:
        assert f["suppression"] == c and f["id"] == "S0001"
        assert ff.doc["counts"]["suppressed_by_rule"] == {"multi-view": 1}
    if spot and warm == "all":
        assert c["radiometry_hot"] == len(whole) - 1 and c["radiometry_limit_k"] >= 3.0
    assert schema_errors(ff.doc) == []


@pytest.mark.parametrize(
    ("records", "multiview", "why"),
    [
        (
            "one",
            True,
            f"fewer than {MIN_OPPORTUNITIES}, too few to judge its repetition",
        ),  # only its own frame was processed
        ("all", False, "not run"),
    ],
)
def test_too_few_frames_judge_nothing(synth_case, records: str, multiview: bool, why: str) -> None:
    case = synth_case("pv-rgb")
    sq, whole, cams = _healthy_spot(case, 0.6, MIN_OPPORTUNITIES)
    recs = _records(case, cams, {whole[0]: [(_box(cams[whole[0]], sq), "delamination")]})
    if records == "one":
        recs = [r for r in recs if r["detections"]]
    ff = build_findings(
        case.manifest, recs, layout=case.layout, options=BuildOptions(crops=False, multiview=multiview)
    )
    (f,) = ff.findings
    c = _multiview(f)
    assert c["result"] == "not-applied" and why in c["reason"], c


def test_a_frame_the_detector_failed_on_is_no_opportunity(synth_case) -> None:
    case = synth_case("pv-rgb")
    sq, whole, cams = _healthy_spot(case, 0.6, MIN_OPPORTUNITIES)
    recs = _records(case, cams, {whole[0]: [(_box(cams[whole[0]], sq), "delamination")]})
    for r in recs:
        if r["relative_path"] in whole[1:]:
            r["error"] = "decode failed"
    ff = build_findings(case.manifest, recs, layout=case.layout, options=NO_CROPS)
    (f,) = ff.findings
    assert _multiview(f)["opportunities"] == 1


# ------------------------------------------------------------------------------------------- precedence
@pytest.mark.parametrize(
    ("string_offline", "rule"),
    [
        (True, "explained-by-string"),  # the physical explanation names the suppression
        (False, "multi-view"),
    ],
)
def test_a_physical_explanation_names_the_suppression_first(string_offline: bool, rule: str) -> None:
    from dataclasses import dataclass

    from detection.taxonomy import Domain
    from findings.checks import check_findings
    from findings.georef import FrameCamera

    @dataclass
    class Obs:
        image: str
        clipped: bool
        footprint: np.ndarray | None
        sigma_m: float = 0.5

    nadir = {
        k: FrameCamera(640, 512, 1000.0, 319.5, 255.5, 0.0, 0.0, 30.0, 0.0, -90.0, 0.0, "test")
        for k in "abcd"
    }
    thermal = {"area_delta_t_k": 4.0, "delta_t_k": 5.0, "method": "module pixels within 2 m"}
    module = {"class": "module_offline", "location": {"located": True}, "thermal": thermal}
    module["asset"] = {"module_id": "M2", "string_id": "S1"}
    built = [(module, [Obs("a", False, _square((0.0, 0.0), 0.8))])]
    if string_offline:
        string = {"class": "string_offline", "location": {"located": True}, "thermal": thermal}
        string["asset"] = {"module_id": "M2", "string_id": "S1", "module_ids": ["M1", "M2", "M3"]}
        built.append((string, [Obs(k, False, _square((0.0, 0.0), 10.0)) for k in "abcd"]))
    kept, suppressed = check_findings(Domain.PV_THERMAL, built, None, nadir)
    assert suppressed == [module] and module["suppression"]["rule"] == rule
    assert kept == [f for f, _ in built[1:]]  # the string: longer than a frame, not judged by repetition
    assert _multiview(module)["result"] == "failed" and _multiview(module)["opportunities"] == 4


# ------------------------------------------------------------------------------------------- fast path
@pytest.mark.parametrize("kind", ["pv-rgb", "pv-thermal"])
def test_opportunities_equal_the_one_by_one_algorithm(synth_case, kind: str) -> None:
    """The footprint-box prefilter changes nothing: regions on every module of the layout (inside, across and
    beyond the frames' edges) against the flight's cameras plus an oblique one whose upper corners see the sky."""
    from dataclasses import replace

    from findings.checks import opportunities_one_by_one

    cams, lay = _cameras(synth_case(kind))
    first = next(iter(cams.values()))
    cams["oblique"] = replace(first, pitch_deg=-20.0)
    rng = np.random.default_rng(7)
    regions: list[np.ndarray | None] = [
        _square(m.centre + rng.normal(0, 1.0, 2), rng.uniform(0.1, 2.0)) for m in lay.modules[::3]
    ]
    regions[1] = None
    fast = opportunities(regions, cams)
    assert fast == opportunities_one_by_one(regions, cams)
    assert sum(map(len, fast)) > len(regions)  # most regions are held by some frame


def test_a_detection_cut_by_the_frame_edge_is_no_opportunity_but_is_said(synth_case) -> None:
    case = synth_case("pv-rgb")
    sq, whole, cams = _healthy_spot(case, 0.6, MIN_OPPORTUNITIES)

    def cut(cam) -> bool:  # part of the square in the frame, part beyond its edge
        px = cam.ground_to_pixel(sq)
        inside = (px[:, 0] > 0) & (px[:, 0] < cam.width - 1) & (px[:, 1] > 0) & (px[:, 1] < cam.height - 1)
        return bool(inside.any() and not inside.all())

    rel = next(r for r, cam in cams.items() if r not in whole and cut(cam))
    x1, y1, x2, y2 = _box(cams[rel], sq)
    clipped = [max(x1, 0.0), max(y1, 0.0), min(x2, cams[rel].width), min(y2, cams[rel].height)]
    boxes = {whole[0]: [(_box(cams[whole[0]], sq), "glass_breakage")], rel: [(clipped, "glass_breakage")]}
    ff = build_findings(case.manifest, _records(case, cams, boxes), layout=case.layout, options=NO_CROPS)
    (f,) = ff.doc["suppressed"]
    c = _multiview(f)
    assert (c["opportunities"], c["hits"], c["hits_cut_by_edge"]) == (len(whole), 1, 1), c
    assert (
        f"seen in 1 of {len(whole)} frames that showed it whole (and in 1 where the frame edge cut"
        in c["reason"]
    )

"""The wind checks (findings.checks ``same-spot``, ``leading-edge-side``, ``blade-end``, ``periodic-structure``) and the merge of one defect's pieces
(findings.build de-duplication) on a real synthetic wind flight, its layout and the generator's truth boxes.

A second box is added to a real truth box's frame: inside it (the same spot) or beside it along the span (another
spot), of the same class (pieces of one defect) or of another class (the detector's second reading of the spot).
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

import cv2
import numpy as np
import pytest

from detection.taxonomy import Domain
from findings import build as B
from findings.build import BuildOptions, build_findings
from findings.checks import (
    PERIODIC_MIN_R,
    PERIODIC_MIN_RISE,
    SAME_SPOT_IOS,
    check_findings,
    check_leading_edge_side,
    check_periodic,
    span_periodicity,
)
from findings.layout import parse_layout
from findings.schema import schema_errors

NO_CROPS = BuildOptions(crops=False)
FRAME_CLASS = "contamination"


def _with_box(
    case, where: str, cls: str, conf: float, truth_conf: float = 0.6
) -> tuple[list[dict], list[float]]:
    """The case's truth detections (confidence ``truth_conf``) plus a ``cls`` box in the first frame holding a
    whole ``contamination`` box: ``inside`` that box (its middle half) or ``beside`` it (moved along the blade by
    its own height plus 20 px): (records, the truth box)."""
    recs = copy.deepcopy(case.detections)
    for r in recs:
        for d in r["detections"]:
            d["confidence"] = truth_conf
    for r in recs:
        for d in r["detections"]:
            x1, y1, x2, y2 = d["xyxy"]
            if (
                d["class_name"] == FRAME_CLASS
                and y1 > 40
                and 2 * y2 - y1 < 560
                and min(x2 - x1, y2 - y1) > 20
            ):
                w, h = x2 - x1, y2 - y1
                box = {
                    "inside": [x1 + w / 4, y1 + h / 4, x2 - w / 4, y2 - h / 4],
                    "beside": [x1, y2 + 20, x2, y2 + 20 + h],
                }[where]
                r["detections"].append({"xyxy": box, "confidence": conf, "class_name": cls})
                return recs, [x1, y1, x2, y2]
    raise AssertionError("no whole contamination box in the test flight")


def _finding_with(ff, image: str, xyxy: list[float]) -> dict[str, Any]:
    for f in ff.findings + ff.doc["suppressed"]:
        for e in f["evidence"]:
            if e["image"] == image and e["xyxy"] == [round(float(v), 1) for v in xyxy]:
                return f
    raise AssertionError(f"no finding with the box {xyxy} of {image}")


def _image_of(recs: list[dict], xyxy: list[float]) -> str:
    return next(r["relative_path"] for r in recs for d in r["detections"] if d["xyxy"] == xyxy)


# ------------------------------------------------------------------------------------------- pieces of one defect
@pytest.mark.parametrize(("where", "merged"), [("inside", True), ("beside", False)])
def test_wind_boxes_of_one_class_on_one_spot_of_a_frame_are_one_defect(
    synth_case, where: str, merged: bool
) -> None:
    case = synth_case("wind-rgb")
    base = build_findings(case.manifest, case.detections, layout=case.layout, options=NO_CROPS)
    recs, truth_box = _with_box(case, where, FRAME_CLASS, 0.4)
    ff = build_findings(case.manifest, recs, layout=case.layout, options=NO_CROPS)
    image = _image_of(recs, truth_box)
    f = _finding_with(ff, image, truth_box)
    same_frame = [e for e in f["evidence"] if e["image"] == image]
    assert len(same_frame) == (2 if merged else 1)
    assert len(ff.findings) == len(base.findings) + (0 if merged else 1)
    assert not ff.doc["suppressed"] and schema_errors(ff.doc) == []


# ------------------------------------------------------------------------------------------- same-spot
@pytest.mark.parametrize(
    ("where", "cls", "conf", "suppressed", "result", "why"),
    [
        # a crack box inside the contamination's: the less confident reading of the spot goes
        ("inside", "crack", 0.4, "crack", "failed", "one spot of the blade holds one defect"),
        # the other reading more confident: the contamination finding is the one suppressed
        ("inside", "lightning_damage", 0.9, FRAME_CLASS, "failed", "one spot of the blade holds one defect"),
        # another spot along the blade: both stand
        ("beside", "crack", 0.4, None, "passed", "no more confident finding of another class"),
        # chipped paint and dirt, confused both ways by the detector: both stand
        ("inside", "surface_damage", 0.4, None, "passed", "confuses both ways"),
    ],
)
def test_same_spot_keeps_the_more_confident_reading(
    synth_case, where: str, cls: str, conf: float, suppressed: str | None, result: str, why: str
) -> None:
    case = synth_case("wind-rgb")
    recs, truth_box = _with_box(case, where, cls, conf)
    ff = build_findings(case.manifest, recs, layout=case.layout, options=NO_CROPS)
    image = _image_of(recs, truth_box)
    truth_f = _finding_with(ff, image, truth_box)
    added = next(f for f in ff.findings + ff.doc["suppressed"] if f["class"] == cls and f is not truth_f)
    gone = list(ff.doc["suppressed"])
    if suppressed is None:
        assert gone == []
        check = next(c for c in added["checks"] if c["rule"] == "same-spot")
        assert check["result"] == result and why in check["reason"], check
        assert added in ff.findings and truth_f in ff.findings
    else:
        (f,) = gone
        assert f["class"] == suppressed and f["id"] == "S0001"
        s = f["suppression"]
        assert s["rule"] == "same-spot" and s["result"] == result and why in s["reason"], s
        assert s["ios"] >= SAME_SPOT_IOS and s["image"] == image
        assert s["other_class"] == (cls if suppressed == FRAME_CLASS else FRAME_CLASS)
        assert s["other_confidence"] > s["confidence"]
        assert ff.doc["counts"]["suppressed_by_rule"] == {"same-spot": 1}
        kept = truth_f if suppressed != FRAME_CLASS else added
        assert (
            kept in ff.findings
            and next(c for c in kept["checks"] if c["rule"] == "same-spot")["result"] == "passed"
        )
    assert schema_errors(ff.doc) == []


# ------------------------------------------------------------------------------------------- leading-edge-side
@pytest.mark.parametrize(
    ("side", "result"),
    [
        ("leading_edge", "passed"),
        ("pressure_side", "passed"),
        ("suction_side", "passed"),
        ("trailing_edge", "failed"),
        (None, "not-applied"),
    ],
)
def test_leading_edge_erosion_is_not_seen_from_the_trailing_edge(
    synth_case, side: str | None, result: str
) -> None:
    case = synth_case("wind-rgb")
    ff = build_findings(case.manifest, case.detections, layout=case.layout, options=NO_CROPS)
    f = copy.deepcopy(next(f for f in ff.findings if f["class"] == "leading_edge_erosion"))
    f["asset"]["side"] = side  # the same finding as the frames of another side would have placed it
    assert check_leading_edge_side(f)["result"] == result
    f.pop("checks", None)
    kept, gone = check_findings(Domain.WIND, [(f, [])], None)
    assert (gone == [f]) is (result == "failed") and (kept == [f]) is (result != "failed")
    assert next(c for c in f["checks"] if c["rule"] == "leading-edge-side")["result"] == result
    if result == "failed":
        assert (
            f["suppression"]["rule"] == "leading-edge-side" and "trailing edge" in f["suppression"]["reason"]
        )


# ------------------------------------------------------------------------------------------- blade-end
@pytest.mark.parametrize(
    ("cls", "to_tip", "result"),
    [
        ("surface_damage", 3.0, "passed"),
        ("surface_damage", 0.26, "passed"),  # half size 0.1 + uncertainty 0.15 = 0.25
        ("surface_damage", 0.12, "failed"),  # the rounded tip's outline
        ("crack", 0.0, "failed"),
        ("lightning_damage", 0.05, "not-applied"),  # the tip's receptor: damage at the tip itself
        ("leading_edge_erosion", 0.05, "not-applied"),
    ],
)
def test_a_box_holding_the_blades_end_is_its_outline(
    synth_case, cls: str, to_tip: float, result: str
) -> None:
    case = synth_case("wind-rgb")
    ff = build_findings(case.manifest, case.detections, layout=case.layout, options=NO_CROPS)
    f = copy.deepcopy(ff.findings[0])
    f.pop("checks", None)
    f["class"], f["size_m"] = cls, 0.2
    assert f["location"]["uncertainty_m"] == pytest.approx(0.15)
    f["asset"]["radius_m"] = f["asset"]["blade_length_m"] - to_tip
    kept, gone = check_findings(Domain.WIND, [(f, [])], None)
    check = next(c for c in f["checks"] if c["rule"] == "blade-end")
    assert check["result"] == result, check
    assert (gone == [f]) is (result == "failed") and (kept == [f]) is (result != "failed")
    if result == "failed":
        assert f["suppression"] == check and "the outline of the tip" in check["reason"]


# ------------------------------------------------------------------------------------------- periodic-structure
def _strip_image(
    kind: str, angle_deg: float, pitch_px: float = 30.0
) -> tuple[np.ndarray, list[float], np.ndarray]:
    """(a 600 x 600 grey frame with a blade-like surface and ``kind`` drawn through its centre along a span at
    ``angle_deg`` from the image's x axis, a box on the pattern, the span direction)."""
    rng = np.random.default_rng(0)
    img = np.full((600, 600), 200.0) + rng.normal(0.0, 2.0, (600, 600))
    a = np.array([np.cos(np.radians(angle_deg)), np.sin(np.radians(angle_deg))])
    n = np.array([-a[1], a[0]])
    c = np.array([300.0, 300.0])

    def line(p: np.ndarray, q: np.ndarray, width: int) -> None:
        cv2.line(img, tuple(np.rint(p).astype(int)), tuple(np.rint(q).astype(int)), 80.0, width)

    if kind == "fins":  # vortex generators: short dashes across the span, every pitch_px along it
        for k in range(-8, 9):
            p = c + k * pitch_px * a
            line(p - 8 * n, p + 8 * n, 3)
        box_half = (60, 12)
    elif kind == "crack":  # one irregular line along the span
        pts = [c + t * a + rng.normal(0, 3) * n for t in np.linspace(-60, 60, 15)]
        for p, q in itertools.pairwise(pts):
            line(p, q, 2)
        box_half = (62, 8)
    elif kind == "blob":  # dirt: one dark patch
        cv2.circle(img, (300, 300), 25, 120.0, -1)
        box_half = (28, 28)
    else:  # plain surface with a smooth shading along the span
        img += 20 * np.cos(np.radians(angle_deg)) * (np.arange(600)[None, :] - 300) / 300
        box_half = (30, 10)
    img = cv2.GaussianBlur(img.astype(np.float32), (0, 0), 1.0)
    corners = np.array([c + sa * box_half[0] * a + sn * box_half[1] * n for sa in (-1, 1) for sn in (-1, 1)])
    box = [*corners.min(0).tolist(), *corners.max(0).tolist()]
    return np.clip(img, 0, 255).astype(np.uint8), box, a


@pytest.mark.parametrize("angle", [90.0, 75.0, 0.0])
@pytest.mark.parametrize(
    ("kind", "periodic"), [("fins", True), ("crack", False), ("blob", False), ("plain", False)]
)
def test_span_periodicity_tells_a_row_of_parts_from_damage(kind: str, periodic: bool, angle: float) -> None:
    gray, box, span = _strip_image(kind, angle)
    got = span_periodicity(gray, box, span, m_per_px=0.004)  # 30 px = 0.12 m, the fins' pitch
    check = check_periodic({"class": "crack"}, got)
    assert (check["result"] == "failed") is periodic, got
    if periodic:
        assert got["pitch_m"] == pytest.approx(0.12, abs=0.01)
        assert got["correlation"] >= PERIODIC_MIN_R and got["rise"] >= PERIODIC_MIN_RISE


@pytest.mark.parametrize(("fins", "cls", "result"), [(True, "crack", "failed"), (False, "crack", "passed"),
                                                     (True, "vortex_generator_missing", None)])  # fmt: skip
def test_periodic_structure_on_a_real_frame(synth_case, fins: bool, cls: str, result: str | None) -> None:
    """A crack box on a clean place of a real blade frame, with a row of fins painted along the span there (the
    span's direction and scale from the frame's camera and the layout's rotor) or without."""
    case = synth_case("wind-rgb")
    recs, truth_box = _with_box(case, "beside", cls, 0.5)
    image = _image_of(recs, truth_box)
    box = recs[[r["relative_path"] for r in recs].index(image)]["detections"][-1]["xyxy"]
    lay = parse_layout(case.layout)
    rec = next(r for r in case.manifest["images"] if r["path"] == image)
    cam = B.frame_camera(rec, lay.local, None, None, lay.ground_alt_m)
    info = B._wind_locate(cam, box, lay)
    tb = next(t for t in lay.turbines if t.turbine_id == info["turbine_id"])
    b, _, _ = B._turbine_axes(tb, tb.blades.index(info["blade"]))
    p = info["point"]
    ends = cam.world_to_pixel(np.stack([p - 0.6 * b, p + 0.6 * b]))
    reader = case.image_reader()

    def painted(rel: str) -> np.ndarray:
        img = reader(rel)
        if fins and rel == image:
            a = (ends[1] - ends[0]) / np.hypot(*(ends[1] - ends[0]))
            n = np.array([-a[1], a[0]])
            step = np.hypot(*(ends[1] - ends[0])) / 10  # 0.12 m
            half = 0.4 * (box[2] - box[0])  # fins across the box, as the detector boxes a row of them
            for k in range(11):
                q = ends[0] + k * step * a
                p1, p2 = np.rint(q - half * n).astype(int), np.rint(q + half * n).astype(int)
                cv2.line(img, tuple(p1.tolist()), tuple(p2.tolist()), (90, 90, 90), 2)
        return img

    ff = build_findings(case.manifest, recs, layout=case.layout, image_reader=painted, options=NO_CROPS)
    f = _finding_with(ff, image, box)
    checks = [c for c in f["checks"] if c["rule"] == "periodic-structure"]
    if result is None:
        assert checks == [] and f in ff.findings
        return
    (check,) = checks
    assert check["result"] == result, check
    assert (f in ff.doc["suppressed"]) is (result == "failed")
    if result == "failed":
        assert f["suppression"] == check and check["pitch_m"] == pytest.approx(0.12, abs=0.02)
    assert schema_errors(ff.doc) == []
    # without frames to look at, the rule judges nothing
    plain = build_findings(case.manifest, recs, layout=case.layout, options=NO_CROPS)
    assert all(c["rule"] != "periodic-structure" for g in plain.findings for c in g["checks"])

"""The wind checks (findings.checks ``same-spot``, ``leading-edge-side``) and the merge of one defect's pieces
(findings.build de-duplication) on a real synthetic wind flight, its layout and the generator's truth boxes.

A second box is added to a real truth box's frame: inside it (the same spot) or beside it along the span (another
spot), of the same class (pieces of one defect) or of another class (the detector's second reading of the spot).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from detection.taxonomy import Domain
from findings.build import BuildOptions, build_findings
from findings.checks import SAME_SPOT_IOS, check_findings, check_leading_edge_side
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

"""The ``yellowing`` check (findings.checks) of PV RGB delamination findings, on a real synthetic flight's frames:
the generator's delamination boxes (yellowed encapsulant) are kept; its soiling and glass-breakage boxes, read as
delamination, are not yellowed and are suppressed."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from findings.build import BuildOptions, build_findings
from findings.checks import YELLOW_MIN, check_yellowing, yellowness
from findings.schema import schema_errors

NO_CROPS = BuildOptions(crops=False)


@pytest.mark.parametrize(
    ("bgr", "expected"),
    [
        ((0.35, 0.68, 0.85), 0.5),  # the generator's delamination colour, fully over the box
        ((0.45, 0.60, 0.70), 0.25),  # brown dust
        ((0.93, 0.95, 0.95), 0.02),  # bird droppings: white
        ((0.40, 0.20, 0.15), -0.25),  # blue cells
    ],
)
def test_yellowness_is_red_minus_blue(bgr: tuple[float, float, float], expected: float) -> None:
    img = np.zeros((100, 120, 3), np.uint8)
    img[20:60, 30:90] = np.rint(np.array(bgr) * 255).astype(np.uint8)
    assert yellowness(img, [30, 20, 90, 60]) == pytest.approx(expected, abs=0.01)
    assert yellowness(img, [0, 0, 10, 10]) == 0.0  # black
    assert yellowness(img, [50, 50, 50, 80]) is None  # empty box


@pytest.mark.parametrize(
    ("values", "result"),
    [
        ([0.3, 0.28, 0.31], "passed"),
        ([0.1, 0.2, 0.05], "failed"),
        ([YELLOW_MIN], "passed"),
        ([], "not-applied"),
    ],
)
def test_check_yellowing_takes_the_median_of_the_views(values: list[float], result: str) -> None:
    check = check_yellowing({"class": "delamination"}, values)
    assert check["result"] == result, check


@pytest.mark.parametrize(
    ("true_class", "kept"),
    [("delamination", True), ("soiling", False), ("glass_breakage", False), ("snail_trail", False)],
)
def test_delamination_must_be_yellowed(synth_case, true_class: str, kept: bool) -> None:
    case = synth_case("pv-rgb")
    recs = copy.deepcopy(case.detections)
    read: set[tuple[str, tuple[float, ...]]] = set()
    for r in recs:  # the detector reads every box of the true class as delamination
        for d in r["detections"]:
            if d["class_name"] == true_class:
                d["class_name"] = "delamination"
                d.pop("class_id", None)
                read.add((r["relative_path"], tuple(round(float(v), 1) for v in d["xyxy"])))
    ff = build_findings(
        case.manifest, recs, layout=case.layout, image_reader=case.image_reader(), options=NO_CROPS
    )
    ours = [
        f
        for f in ff.findings + ff.doc["suppressed"]
        if f["class"] == "delamination" and all((e["image"], tuple(e["xyxy"])) in read for e in f["evidence"])
    ]
    assert ours
    for f in ours:
        check = next(c for c in f["checks"] if c["rule"] == "yellowing")
        assert check["result"] == ("passed" if kept else "failed"), check
        assert (f in ff.findings) is kept
        if not kept:
            assert f["suppression"] == check and "not yellowed" in check["reason"]
            assert check["yellowness"] < YELLOW_MIN and check["views"] >= 1
    assert schema_errors(ff.doc) == []
    # without the frames the rule judges nothing
    plain = build_findings(case.manifest, recs, layout=case.layout, options=NO_CROPS)
    assert not any(c["rule"] == "yellowing" for f in plain.findings for c in f["checks"])
    assert not any(f["suppression"]["rule"] == "yellowing" for f in plain.doc["suppressed"])

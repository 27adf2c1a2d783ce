"""The ``spot-class`` correction (findings.checks.spot_class, findings.thermal.measure_spot) on a real synthetic
thermal flight: its real layout and real radiometric frames, with a hot pattern (one cell, several cells, a
junction-box disc) drawn into the temperatures of one layout module at the places the generator uses, and a
detection box over it labelled with a (possibly wrong) spot class.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pytest

from findings.build import BuildOptions, build_findings
from findings.checks import JB_FROM_END, spot_class
from findings.schema import schema_errors
from findings.thermal import as_celsius, module_geometry
from tests.findings.test_findings_checks import _frame, _record

NO_CROPS = BuildOptions(crops=False)
WARM_K = 20.0


def _cell_ring(geo: dict[str, Any], il: float, is_: float, nl: float = 1.0, ns: float = 1.0) -> np.ndarray:
    """(4, 2) ground corners of ``nl`` × ``ns`` cells from cell (il along, is_ across) of a module."""
    a0, a1 = il / geo["cells_long"] - 0.5, (il + nl) / geo["cells_long"] - 0.5
    b0, b1 = is_ / geo["cells_short"] - 0.5, (is_ + ns) / geo["cells_short"] - 0.5
    return np.array(
        [
            geo["centre"] + a * geo["long_m"] * geo["u_long"] + b * geo["short_m"] * geo["u_short"]
            for a, b in ((a0, b0), (a1, b0), (a1, b1), (a0, b1))
        ]
    )


def _disc(geo: dict[str, Any], radius_m: float) -> np.ndarray:
    """(32, 2) ground outline of a junction-box disc: JB_FROM_END of the long side from one end, centred across."""
    c = geo["centre"] + (JB_FROM_END - 0.5) * geo["long_m"] * geo["u_long"]
    t = np.linspace(0, 2 * np.pi, 32, endpoint=False)
    return c + radius_m * (np.cos(t)[:, None] * geo["u_long"] + np.sin(t)[:, None] * geo["u_short"])


PATTERNS = {
    "one cell": lambda g: [_cell_ring(g, 4, 2)],
    "three cells": lambda g: [_cell_ring(g, 4, 2, nl=2), _cell_ring(g, 5, 3)],
    "one and a half cells": lambda g: [_cell_ring(g, 4, 2, nl=1.5)],
    "junction box": lambda g: [_disc(g, 0.08)],
}


def _case(synth_case, pattern: str):
    case = synth_case("pv-thermal")
    rel, cam, lay, i = _frame(case, margin_px=3.0)
    geo = module_geometry(lay, lay.modules[i].module_id)
    rings = PATTERNS[pattern](geo)
    base = case.thermal_reader()

    def reader(path: str) -> np.ndarray:
        temp = as_celsius(base(path)).copy()
        if path == rel:
            mask = np.zeros(temp.shape, np.uint8)
            polys = [np.rint(cam.ground_to_pixel(r) * 4).astype(np.int32) for r in rings]
            cv2.fillPoly(mask, polys, 1, shift=2)
            temp[mask.astype(bool)] += WARM_K
        return temp

    px = cam.ground_to_pixel(np.concatenate(rings))
    box = [*(px.min(0) - 1.5).tolist(), *(px.max(0) + 1.5).tolist()]
    return case, rel, cam, reader, box


@pytest.mark.parametrize(
    ("pattern", "label", "found", "result"),
    [
        ("one cell", "hotspot_multi_cell", "hotspot_single_cell", "reclassified"),
        ("one cell", "hotspot_single_cell", "hotspot_single_cell", "passed"),
        ("one cell", "junction_box", "hotspot_single_cell", "reclassified"),  # far from the junction box
        ("three cells", "hotspot_single_cell", "hotspot_multi_cell", "reclassified"),
        ("three cells", "hotspot_multi_cell", "hotspot_multi_cell", "passed"),
        ("junction box", "hotspot_multi_cell", "junction_box", "reclassified"),
        ("junction box", "hotspot_single_cell", "junction_box", "reclassified"),
        ("junction box", "junction_box", "junction_box", "passed"),
        ("one and a half cells", "hotspot_single_cell", "hotspot_single_cell", "not-applied"),  # unclear
        ("one and a half cells", "hotspot_multi_cell", "hotspot_multi_cell", "not-applied"),
    ],
)
def test_spot_class_from_the_warm_area_and_its_place(
    synth_case, pattern: str, label: str, found: str, result: str
) -> None:
    case, rel, cam, reader, box = _case(synth_case, pattern)
    dets = [_record(rel, cam, [(box, label)])]
    ff = build_findings(case.manifest, dets, layout=case.layout, thermal_reader=reader, options=NO_CROPS)
    (f,) = ff.findings
    check = f["checks"][0]
    assert check["rule"] == "spot-class" and check["result"] == result, check
    assert f["class"] == found, check
    assert check["model_class"] == label and check["measurements"] == 1
    if result == "reclassified":
        assert f["class_from"] == label and label.replace("_", " ") in f["reclassified"]
        assert check["class"] == found
    else:
        assert "class_from" not in f and "reclassified" not in f
    if pattern == "junction box":
        assert check["from_end"] == pytest.approx(JB_FROM_END, abs=0.03)
        assert abs(check["across"]) < 0.03
    assert f["thermal"]["delta_t_k"] == pytest.approx(WARM_K, abs=3.0)
    assert f["grade"]["scheme"] == "iec-62446-3"
    assert schema_errors(ff.doc) == []


@pytest.mark.parametrize(
    ("radiometry", "layout"),
    [(False, True), (True, False)],
)
def test_spot_class_needs_radiometry_and_the_module(synth_case, radiometry: bool, layout: bool) -> None:
    """Without radiometric data or the layout's module the detector's class stands, and nothing crashes."""
    case, rel, cam, reader, box = _case(synth_case, "one cell")
    dets = [_record(rel, cam, [(box, "hotspot_multi_cell")])]
    ff = build_findings(
        case.manifest,
        dets,
        layout=case.layout if layout else None,
        thermal_reader=reader if radiometry else None,
        options=NO_CROPS,
    )
    (f,) = ff.findings
    check = f["checks"][0]
    assert check["rule"] == "spot-class" and check["result"] == "not-applied", check
    assert f["class"] == "hotspot_multi_cell" and "class_from" not in f
    assert schema_errors(ff.doc) == []


@pytest.mark.parametrize(
    ("spots", "cls", "found", "result"),
    [
        ([], "hotspot_multi_cell", "hotspot_multi_cell", "not-applied"),
        ([None, None], "junction_box", "junction_box", "not-applied"),
        # the warm area reaches the edge of its window everywhere: its size is unknown
        (
            [{"cells": 0.9, "cut": True, "from_end": 0.3, "across": 0.25}],
            "hotspot_multi_cell",
            None,
            "not-applied",
        ),
        # the median over the frames decides; a cut frame does not count
        (
            [
                {"cells": 1.0, "cut": False, "from_end": 0.3, "across": 0.25},
                {"cells": 0.9, "cut": False, "from_end": 0.3, "across": 0.25},
                {"cells": 3.0, "cut": True, "from_end": 0.3, "across": 0.25},
            ],
            "hotspot_multi_cell",
            "hotspot_single_cell",
            "reclassified",
        ),
        # at the junction-box place, a junction box's warm rim (up to JB_RIM_MAX_CELLS) keeps the detector's class
        (
            [{"cells": 2.0, "cut": False, "from_end": 0.125, "across": 0.0}],
            "junction_box",
            "junction_box",
            "passed",
        ),
        # ... the same area called a multi-cell hot spot by the detector stays one
        (
            [{"cells": 2.0, "cut": False, "from_end": 0.125, "across": 0.0}],
            "hotspot_multi_cell",
            "hotspot_multi_cell",
            "passed",
        ),
        # ... but a warm area of several cells there (a 2x2 cluster) is no junction box
        (
            [{"cells": 3.5, "cut": False, "from_end": 0.125, "across": 0.0}],
            "junction_box",
            "hotspot_multi_cell",
            "reclassified",
        ),
        # off the junction-box place, two cells are two cells whatever the detector said
        (
            [{"cells": 2.0, "cut": False, "from_end": 0.3, "across": 0.25}],
            "junction_box",
            "hotspot_multi_cell",
            "reclassified",
        ),
        # a junction box whose place is not clearly away from the junction-box position keeps its class
        (
            [{"cells": 0.8, "cut": False, "from_end": 0.12, "across": 0.06}],
            "junction_box",
            "junction_box",
            "not-applied",
        ),
    ],
)
def test_spot_class_rule(spots: list, cls: str, found: str | None, result: str) -> None:
    name, check = spot_class(cls, spots)
    assert name == (found or cls) and check["result"] == result, check
    assert check["rule"] == "spot-class" and check["reason"]

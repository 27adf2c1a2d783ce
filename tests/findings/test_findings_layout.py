"""Layout parsing and validation (clear errors), point-in-polygon and module assignment."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from findings.layout import LayoutError, distance_to_ring, parse_layout, point_in_polygon


def _module(mid: str, lon0: float, lat0: float, **props) -> dict:
    d = 1e-5
    ring = [[lon0, lat0], [lon0 + d, lat0], [lon0 + d, lat0 + 2 * d], [lon0, lat0 + 2 * d], [lon0, lat0]]
    return {
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "properties": {"module_id": mid, **props},
    }


def _layout() -> dict:
    feats = [_module(f"M{i}", 8.5 + i * 1.2e-5, 47.3, string_id="S1", inverter_id="I1") for i in range(5)]
    return {
        "type": "FeatureCollection",
        "properties": {"origin": {"lat": 47.3, "lon": 8.5, "alt_m": 400.0}},
        "features": feats,
    }


def _broken(change) -> dict:
    doc = _layout()
    change(doc)
    return doc


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"type": "Feature"}, "expected a GeoJSON FeatureCollection"),
        ({"type": "FeatureCollection", "features": []}, "has no features"),
        (_broken(lambda d: d["features"][1]["properties"].update(module_id="M0")), "not unique"),
        (_broken(lambda d: d["features"][2]["properties"].pop("module_id")), "'module_id' is missing"),
        (_broken(lambda d: d["features"][0]["geometry"]["coordinates"][0].pop()), "not closed"),
        (_broken(lambda d: d["features"][0]["geometry"].update(type="LineString")), "all module Polygons"),
        (
            _broken(lambda d: d["features"][0]["geometry"]["coordinates"][0][1].__setitem__(1, 95.0)),
            "outside",
        ),
        ("{not json", "not valid JSON"),
    ],
)
def test_invalid_layouts_are_refused_with_the_reason(doc, message: str) -> None:
    with pytest.raises(LayoutError, match=message):
        parse_layout(doc, "layout.geojson")


def test_modules_strings_and_assignment() -> None:
    lay = parse_layout(_layout())
    assert lay.kind == "pv" and len(lay.modules) == 5 and lay.strings["S1"] == [0, 1, 2, 3, 4]
    m0 = lay.modules[0]
    c = m0.centre
    found, dist, how = lay.locate_module(c[0], c[1], 0.5)
    assert (found.module_id, dist, how) == ("M0", 0.0, "inside")
    # in the gap between M0 and M1 (0.15 m wide here): nearest within the tolerance
    gap_e = (m0.ring[:, 0].max() + lay.modules[1].ring[:, 0].min()) / 2
    found, dist, how = lay.locate_module(gap_e, c[1], 0.5)
    assert how == "nearest" and dist < 0.1
    found, dist, how = lay.locate_module(c[0], c[1] + 50.0, 0.5)
    assert found is None and "off the as-built layout" in how


def test_wind_layout_turbines() -> None:
    doc = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [10.0, 52.0]},
                "properties": {"turbine_id": "WTG01", "hub_height_m": 90, "blade_length_m": 50},
            }
        ],
    }
    lay = parse_layout(doc)
    assert (
        lay.kind == "wind" and lay.turbines[0].turbine_id == "WTG01" and lay.turbines[0].rotor_yaw_deg is None
    )
    bad = copy.deepcopy(doc)
    bad["features"][0]["properties"]["hub_height_m"] = "tall"
    with pytest.raises(LayoutError, match="hub_height_m"):
        parse_layout(bad)


@pytest.mark.parametrize(
    ("x", "y", "inside"), [(0.5, 0.5, True), (1.5, 0.5, False), (0.99, 0.01, True), (-0.1, 0.5, False)]
)
def test_point_in_polygon(x: float, y: float, inside: bool) -> None:
    square = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], float)
    assert point_in_polygon(x, y, square) is inside


def test_distance_to_ring() -> None:
    square = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], float)
    assert distance_to_ring(2.0, 0.5, square) == pytest.approx(1.0)
    assert distance_to_ring(0.5, 0.5, square) == pytest.approx(0.5)

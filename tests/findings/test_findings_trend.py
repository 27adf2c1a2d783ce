"""Trend against a previous inspection: new, persisting, growing (with a linear time-to-next-category), resolved."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta

import pytest

from findings.build import BuildOptions
from findings.schema import schema_errors


def _earlier(doc: dict, days: float) -> dict:
    prev = copy.deepcopy(doc)
    prev["flight"] = "F0"
    prev["inspection_time"] = (
        datetime.fromisoformat(doc["inspection_time"]) - timedelta(days=days)
    ).isoformat()
    return prev


def test_new_persisting_growing_resolved_thermal(synth_case, built) -> None:
    case = synth_case("pv-thermal")
    current = built("pv-thermal").doc
    prev = _earlier(current, 60)
    by_id = {f["id"]: f for f in prev["findings"]}
    growing = next(
        f
        for f in current["findings"]
        if f["class"].startswith("hotspot") or f["class"] == "junction_box"
        if f["thermal"]["delta_t_k"] < 20
    )
    new = next(f for f in current["findings"] if f["id"] != growing["id"])
    del by_id[new["id"]]
    by_id[growing["id"]]["thermal"]["delta_t_norm_k"] -= 4.0
    gone = copy.deepcopy(by_id[growing["id"]])
    gone["id"], gone["asset"]["module_id"] = "F9999", "B9-R001-M001"
    prev["findings"] = [*by_id.values(), gone]

    ff = case.build(previous=prev, options=BuildOptions(crops=False))
    trend = {f["id"]: f["trend"] for f in ff.findings}
    assert trend[new["id"]]["status"] == "new"
    g = trend[growing["id"]]
    assert g["status"] == "growing" and g["growing_in"] == ["ΔT"]
    assert g["growth"]["delta_t_norm_k"]["change"] == pytest.approx(4.0, abs=0.01)
    dt = growing["thermal"]["delta_t_k"]
    nxt = 10.0 if dt < 10 else 20.0
    assert g["time_to_next_category_days"] == pytest.approx((nxt - dt) / (4.0 / 60), rel=0.01)
    assert "linear extrapolation" in g["time_to_next_category_method"]
    others = [t for i, t in trend.items() if i not in (new["id"], growing["id"])]
    assert others and all(t["status"] == "persisting" for t in others)
    assert [r["previous_id"] for r in ff.doc["resolved"]] == ["F9999"]
    assert ff.doc["counts"]["trend"] == {"new": 1, "growing": 1, "persisting": len(others), "resolved": 1}
    assert ff.doc["previous_flight"]["flight"] == "F0"
    assert ff.doc["previous_flight"]["days_between"] == pytest.approx(60.0)
    assert schema_errors(ff.doc) == []


def test_growing_blade_damage_extrapolates_size(synth_case, built) -> None:
    case = synth_case("wind-rgb")
    current = built("wind-rgb").doc
    crack = next((f for f in current["findings"] if f["class"] == "crack" and f["size_m"] < 1.0), None)
    if crack is None:
        pytest.fail("the wind test flight must hold a crack shorter than 1 m")
    prev = _earlier(current, 100)
    p = next(f for f in prev["findings"] if f["id"] == crack["id"])
    p["size_m"] = round(crack["size_m"] * 0.5, 3)
    ff = case.build(previous=prev, options=BuildOptions(crops=False))
    t = next(f["trend"] for f in ff.findings if f["id"] == crack["id"])
    assert t["status"] == "growing" and "size" in t["growing_in"]
    nxt = 0.3 if crack["size_m"] < 0.3 else 1.0
    rate = (crack["size_m"] - p["size_m"]) / 100
    assert t["time_to_next_category_days"] == pytest.approx((nxt - crack["size_m"]) / rate, rel=0.02)

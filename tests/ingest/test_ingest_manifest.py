"""Manifest helpers: the conditions sidecar, the kind decision, schema validation."""

from __future__ import annotations

import json

import pytest

from ingest.manifest import (
    SCHEMA_VERSION,
    ManifestError,
    decide_kind,
    parse_conditions,
    validate_manifest,
)

GOOD = {"irradiance_w_m2": 812.5, "ambient_temp_c": -3, "wind_speed_m_s": 4.2, "cloud_cover_okta": 2}


def test_good_conditions_are_kept_with_types() -> None:
    assert parse_conditions(json.dumps({**GOOD, "note": "extra keys are ignored"}).encode()) == {
        "irradiance_w_m2": 812.5,
        "ambient_temp_c": -3.0,
        "wind_speed_m_s": 4.2,
        "cloud_cover_okta": 2,
    }


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (
            json.dumps({k: v for k, v in GOOD.items() if k != "ambient_temp_c"}).encode(),
            "'ambient_temp_c' is missing",
        ),
        (json.dumps({**GOOD, "irradiance_w_m2": "high"}).encode(), "'irradiance_w_m2' must be a number"),
        (json.dumps({**GOOD, "irradiance_w_m2": True}).encode(), "'irradiance_w_m2' must be a number"),
        (json.dumps({**GOOD, "irradiance_w_m2": 5000}).encode(), "outside"),
        (json.dumps({**GOOD, "wind_speed_m_s": -1}).encode(), "outside"),
        (json.dumps({**GOOD, "cloud_cover_okta": 9}).encode(), "outside"),
        (json.dumps({**GOOD, "cloud_cover_okta": 2.5}).encode(), "whole number"),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
def test_bad_conditions_name_the_field(data: bytes, message: str) -> None:
    with pytest.raises(ManifestError, match=message) as err:
        parse_conditions(data)
    assert "conditions.json" in str(err.value)


def _rec(radiometric: bool = False, pitch: float | None = None) -> dict:
    return {"radiometric": radiometric, "gimbal_pitch_deg": pitch}


@pytest.mark.parametrize(
    ("records", "given", "kind", "method"),
    [
        ([_rec(True), _rec(True), _rec(False, -90)], "auto", "pv-thermal", "radiometric"),
        ([_rec(True), _rec(False, -90), _rec(False, -90)], "auto", "pv-rgb", "gimbal_pitch"),
        ([_rec(False, -88.0), _rec(False, -90.0), _rec(False, -20)], "auto", "pv-rgb", "gimbal_pitch"),
        ([_rec(False, 0.0), _rec(False, -15.0), _rec(False, 10.0)], "auto", "wind-rgb", "gimbal_pitch"),
        ([_rec(False, -60.0)], "auto", "pv-rgb", "gimbal_pitch"),
        ([_rec(False, -59.9)], "auto", "wind-rgb", "gimbal_pitch"),
        ([_rec(False, None)], "auto", "unknown", "undecided"),
        ([], "auto", "unknown", "undecided"),
        ([_rec(True)], "wind-rgb", "wind-rgb", "given"),
    ],
)
def test_kind_decision(records, given, kind, method) -> None:
    decided, how = decide_kind(records, given)
    assert (decided, how["method"]) == (kind, method)
    assert how["detail"]


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ManifestError, match="kind 'thermal' is not one of"):
        decide_kind([], "thermal")


def test_manifest_validation() -> None:
    good = {"schema_version": SCHEMA_VERSION, "site": "s", "flight": "f", "kind": "pv-rgb", "images": [],
            "rejected": [], "skipped": [], "counts": {}}  # fmt: skip
    assert validate_manifest(good) is good
    with pytest.raises(ManifestError, match="schema_version '0'"):
        validate_manifest({**good, "schema_version": "0"})
    with pytest.raises(ManifestError, match="'images' is missing"):
        validate_manifest({k: v for k, v in good.items() if k != "images"})

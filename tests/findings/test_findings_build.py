"""build_findings on real synthetic flights with ground-truth boxes as detections: accuracy and robustness."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from findings.build import BuildOptions, build_findings
from findings.schema import schema_errors
from findings.score import score


@pytest.mark.parametrize("kind", ["pv-thermal", "pv-rgb", "wind-rgb"])
def test_truth_boxes_give_unique_located_graded_findings(kind: str, synth_case, built) -> None:
    case = synth_case(kind)
    ff = built(kind)
    s = score(ff.doc, case.root)
    assert s["truth_defects"] >= 5, "the test flight must hold enough defects to mean something"
    assert s["recall"] >= 0.9, s
    assert s["precision"] >= 0.9, s
    assert s["duplicate_rate"] <= 0.05, s
    assert s["grade_agreement"] >= 0.9, s["grade_mismatches"]
    if kind == "wind-rgb":
        assert s["median_location_error_m"] <= 0.5, s  # 3-D point on the blade
        for f in ff.findings:
            assert f["asset"]["blade"] in ("A", "B", "C") and f["asset"]["radius_m"] > 0
    else:
        assert s["median_location_error_m"] <= 1.0, s
        assert s["module_id_accuracy"] >= 0.9, s
    # dedup merged real overlaps: fewer findings than boxes
    n_boxes = sum(len(r["detections"]) for r in case.detections)
    assert len(ff.findings) < n_boxes
    assert schema_errors(ff.doc) == []


def test_thermal_findings_carry_delta_t_normalisation_and_validity(synth_case, built) -> None:
    case = synth_case("pv-thermal")
    ff = built("pv-thermal")
    irr = case.manifest["conditions"]["irradiance_w_m2"]
    for f in ff.findings:
        t = f["thermal"]
        assert t["delta_t_k"] is not None and t["delta_t_k"] > 0
        assert t["delta_t_norm_k"] == pytest.approx(t["delta_t_k"] * 1000 / irr, abs=0.02)
        assert t["validity"]["valid"] is True
        assert f["grade"]["scheme"] == "iec-62446-3" and f["grade"]["reason"]
        assert f["power_loss_w"] is not None
    assert ff.doc["validity"]["valid"] is True
    assert ff.doc["counts"]["power_loss_w"] == pytest.approx(
        sum(f["power_loss_w"] for f in ff.findings), abs=0.5
    )


def test_measured_delta_t_is_close_to_the_rendered_one(synth_case, built) -> None:
    ff = built("pv-thermal")
    s = score(ff.doc, synth_case("pv-thermal").root)

    truth = {
        t["defect_id"]: t
        for t in json.loads((synth_case("pv-thermal").root / "truth/defects.json").read_text())
    }
    errors = []
    for f in ff.findings:
        # find the matched truth by module id (one defect per module in the synthetic plant)
        for t in truth.values():
            if (
                t["class"] == f["class"]
                and t["asset"].get("string_id") == f["asset"].get("string_id")
                and (t["asset"]["module_id"] == f["asset"]["module_id"] or t["class"] == "string_offline")
            ):
                errors.append(abs(f["thermal"]["delta_t_k"] - t["delta_t_k"]))
    assert len(errors) == s["matched"]
    assert float(np.median(errors)) < 1.0, errors


def test_frames_without_gps_give_unlocated_findings_not_a_crash(synth_case) -> None:
    case = synth_case("pv-thermal")
    manifest = copy.deepcopy(case.manifest)
    stripped = set()
    for rec in manifest["images"][:4]:
        rec["lat"] = rec["lon"] = None
        rec["dji"].pop("GpsLatitude", None)
        rec["dji"].pop("GpsLongitude", None)
        stripped.add(rec["path"])
    ff = build_findings(
        manifest,
        case.detections,
        layout=case.layout,
        thermal_reader=case.thermal_reader(),
        options=BuildOptions(crops=False),
    )
    unlocated = [f for f in ff.findings if not f["located"]]
    assert unlocated, "detections in frames without GPS must still become findings"
    for f in unlocated:
        assert f["best"]["image"] in stripped
        assert "no GPS position" in f["location"]["reason"]
        assert any(r.startswith("unlocated") for r in f["reasons"])
        assert f["asset"]["assignment"] == "unlocated"
        assert f["thermal"]["delta_t_k"] is not None  # ΔT still measured (annulus method)
    assert ff.doc["counts"]["unlocated"] == len(unlocated)
    assert schema_errors(ff.doc) == []


def test_no_radiometric_data_gives_ungraded_findings_with_reason(synth_case) -> None:
    case = synth_case("pv-thermal")

    def broken(rel: str) -> np.ndarray:
        raise OSError(f"{rel}: cannot read")

    ff = build_findings(
        case.manifest,
        case.detections,
        layout=case.layout,
        thermal_reader=broken,
        options=BuildOptions(crops=False),
    )
    offline = {"module_offline", "string_offline"}
    for f in ff.findings:
        assert f["thermal"]["delta_t_k"] is None
        if f["class"] in offline:  # graded from the pattern alone
            assert f["grade"]["value"] == 3
        else:
            assert f["graded"] is False and f["grade"]["severity"] == "ungraded"
            assert any("radiometric data unreadable" in r for r in f["reasons"])
    assert any("radiometric data unreadable" in n for n in ff.doc["notes"])


def test_off_layout_and_no_layout(synth_case) -> None:
    case = synth_case("pv-rgb")
    far = copy.deepcopy(case.layout)
    for feat in far["features"]:  # move the whole plant 200 m north: every finding is off the layout
        for ring in feat["geometry"]["coordinates"]:
            for p in ring:
                p[1] += 0.0018
    ff = build_findings(case.manifest, case.detections, layout=far, options=BuildOptions(crops=False))
    assert ff.findings and all(f["asset"]["assignment"] == "off-layout" for f in ff.findings)
    assert all("no module within" in f["asset"]["reason"] for f in ff.findings)
    assert all(f["located"] for f in ff.findings)
    none = build_findings(case.manifest, case.detections, layout=None, options=BuildOptions(crops=False))
    assert all(f["asset"]["reason"] == "no as-built layout for this site" for f in none.findings)


def test_bad_conditions_make_the_inspection_invalid_with_reasons(synth_case) -> None:
    case = synth_case("pv-thermal")
    ff = build_findings(
        case.manifest,
        case.detections,
        layout=case.layout,
        thermal_reader=case.thermal_reader(),
        conditions={"irradiance_w_m2": 450.0, "wind_speed_m_s": 9.0, "cloud_cover_okta": 5},
        options=BuildOptions(crops=False),
    )
    v = ff.doc["validity"]
    assert v["valid"] is False
    assert any("irradiance 450" in r for r in v["reasons"])
    assert any("wind speed 9" in r for r in v["reasons"])
    assert any("cloud cover 5" in r for r in v["reasons"])
    assert all(f["thermal"]["validity"]["valid"] is False for f in ff.findings)
    f = next(f for f in ff.findings if f["thermal"]["delta_t_k"])
    assert f["thermal"]["delta_t_norm_k"] == pytest.approx(f["thermal"]["delta_t_k"] * 1000 / 450, abs=0.02)


def test_unknown_classes_are_noted_and_skipped(synth_case) -> None:
    case = synth_case("pv-rgb")
    dets = copy.deepcopy(case.detections)
    dets[0]["detections"].append(
        {"xyxy": [1, 1, 9, 9], "confidence": 0.5, "class_id": 99, "class_name": "ufo"}
    )
    ff = build_findings(case.manifest, dets, layout=case.layout, options=BuildOptions(crops=False))
    assert any("ufo" in n for n in ff.doc["notes"])
    assert len(ff.findings) == len(
        build_findings(
            case.manifest, case.detections, layout=case.layout, options=BuildOptions(crops=False)
        ).findings
    )


def test_unknown_kind_is_a_clear_error(synth_case) -> None:
    case = synth_case("pv-rgb")
    manifest = dict(case.manifest, kind="unknown")
    with pytest.raises(ValueError, match="not a known domain"):
        build_findings(manifest, case.detections)


def test_crops_exist_for_every_finding(built) -> None:
    ff = built("pv-thermal")
    assert set(ff.crops) == {f["id"] for f in ff.findings}
    assert all(png[:8] == b"\x89PNG\r\n\x1a\n" for png in ff.crops.values())


def test_wind_without_rotor_geometry_names_the_turbine_and_the_reason(synth_case) -> None:
    case = synth_case("wind-rgb")
    layout = copy.deepcopy(case.layout)
    for feat in layout["features"]:
        feat["properties"].pop("rotor_yaw_deg")
    ff = build_findings(case.manifest, case.detections, layout=layout, options=BuildOptions(crops=False))
    assert ff.findings and not any(f["located"] for f in ff.findings)
    for f in ff.findings:
        assert "rotor yaw/azimuth missing" in f["location"]["reason"]
        assert f["asset"]["turbine_id"].startswith("WTG") and f["asset"]["radius_m"] is None
        assert f["grade"]["value"] is not None  # graded from class (size unknown)


def _jittered(detections: list[dict], rng: np.random.Generator, jitter: float, drop: float) -> list[dict]:
    """Detector-like detections from truth boxes: edges moved by N(0, jitter × box size), some dropped."""
    out = copy.deepcopy(detections)
    for rec in out:
        keep = []
        for det in rec["detections"]:
            if rng.random() < drop:
                continue
            x1, y1, x2, y2 = det["xyxy"]
            w, h = x2 - x1, y2 - y1
            n = rng.normal(0, jitter, 4)
            nx1, ny1 = x1 + n[0] * w, y1 + n[1] * h
            det["xyxy"] = [nx1, ny1, max(nx1 + 1, x2 + n[2] * w), max(ny1 + 1, y2 + n[3] * h)]
            det["confidence"] = float(rng.uniform(0.3, 1.0))
            keep.append(det)
        rec["detections"] = keep
    return out


@pytest.mark.parametrize("kind", ["pv-thermal", "pv-rgb", "wind-rgb"])
def test_detector_like_boxes_still_give_unique_findings(kind: str, synth_case) -> None:
    case = synth_case(kind)
    dets = _jittered(case.detections, np.random.default_rng(7), jitter=0.15, drop=0.1)
    ff = build_findings(
        case.manifest,
        dets,
        layout=case.layout,
        thermal_reader=case.thermal_reader(),
        options=BuildOptions(crops=False),
    )
    s = score(ff.doc, case.root)
    assert s["recall"] >= 0.85, s
    assert s["duplicate_rate"] <= 0.05, s
    assert s["median_location_error_m"] <= 1.0, s


def test_frames_that_are_not_radiometric_are_ungraded_with_reason(synth_case) -> None:
    case = synth_case("pv-thermal")
    manifest = copy.deepcopy(case.manifest)
    for rec in manifest["images"]:
        rec["radiometric"] = False  # e.g. an R-JPEG whose temperatures no installed library decodes
    ff = build_findings(
        manifest,
        case.detections,
        layout=case.layout,
        thermal_reader=case.thermal_reader(),
        options=BuildOptions(crops=False),
    )
    hot = [f for f in ff.findings if f["class"] not in ("module_offline", "string_offline")]
    assert hot and all(not f["graded"] for f in hot)
    assert all(
        f["thermal"]["method"] == "frame is not radiometric (no 16-bit temperatures)" for f in ff.findings
    )
    assert all(f["located"] for f in ff.findings)

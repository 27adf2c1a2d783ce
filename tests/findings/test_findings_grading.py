"""Grading rules (table-driven), inspection validity, ΔT normalisation, power loss."""

from __future__ import annotations

import pytest

from detection.taxonomy import Domain
from findings import grading


@pytest.mark.parametrize(
    ("cls", "dt", "coa"),
    [
        ("hotspot_single_cell", 8.0, 1),
        ("hotspot_single_cell", 10.0, 2),
        ("hotspot_single_cell", 19.9, 2),
        ("hotspot_single_cell", 20.0, 3),
        ("hotspot_multi_cell", 25.0, 3),
        ("junction_box", 9.0, 1),
        ("junction_box", 14.0, 2),
        ("bypass_diode", 4.0, 2),
        ("bypass_diode", 22.0, 3),
        ("pid", 5.0, 2),
        ("module_offline", 3.0, 3),
        ("string_offline", None, 3),
        ("module_offline", None, 3),
    ],
)
def test_coa_table(cls: str, dt: float | None, coa: int) -> None:
    g = grading.coa(cls, dt)
    assert g.value == coa
    assert g.critical is (coa == 3)
    assert g.reason and g.label == f"CoA {coa}"


def test_no_delta_t_is_ungraded_with_reason() -> None:
    g = grading.coa("hotspot_single_cell", None)
    assert g.value is None and g.severity == "ungraded" and "no radiometric ΔT" in g.reason


@pytest.mark.parametrize(
    ("cls", "size", "radius", "length", "cat"),
    [
        ("contamination", 0.9, 30.0, 50.0, 1),
        ("vortex_generator_missing", 0.2, 10.0, 50.0, 2),
        ("leading_edge_erosion", 0.5, 10.0, 50.0, 2),
        ("leading_edge_erosion", 1.2, 10.0, 50.0, 3),
        ("leading_edge_erosion", 1.2, 45.0, 50.0, 4),
        ("surface_damage", 0.1, 40.0, 50.0, 3),
        ("crack", 0.2, 10.0, 50.0, 3),
        ("crack", 0.5, 10.0, 50.0, 4),
        ("crack", 1.2, 10.0, 50.0, 5),
        ("lightning_damage", 0.1, 48.0, 50.0, 4),
        ("lightning_damage", 0.4, 48.0, 50.0, 5),
    ],
)
def test_wind_categories(cls: str, size: float, radius: float, length: float, cat: int) -> None:
    g = grading.wind_category(cls, size, radius, length)
    assert g.value == cat and g.critical is (cat >= 4) and cls.replace("_", " ") in g.reason


@pytest.mark.parametrize(
    ("cls", "size", "sev"),
    [("soiling", 0.1, 1), ("soiling", 0.3, 2), ("glass_breakage", 0.2, 3), ("vegetation_shading", 0.6, 3)],
)
def test_rgb_severity(cls: str, size: float, sev: int) -> None:
    assert grading.rgb_severity(cls, size).value == sev


@pytest.mark.parametrize(
    ("conditions", "valid", "fragment"),
    [
        ({"irradiance_w_m2": 800, "wind_speed_m_s": 3, "cloud_cover_okta": 1}, True, None),
        ({"irradiance_w_m2": 550, "wind_speed_m_s": 3, "cloud_cover_okta": 1}, False, "irradiance 550"),
        ({"irradiance_w_m2": 800, "wind_speed_m_s": 8.5, "cloud_cover_okta": 1}, False, "wind speed 8.5"),
        ({"irradiance_w_m2": 800, "wind_speed_m_s": 3, "cloud_cover_okta": 4}, False, "cloud cover 4"),
        ({"irradiance_w_m2": 800}, False, "wind speed not recorded"),
        (None, False, "irradiance not recorded"),
    ],
)
def test_inspection_validity(conditions, valid: bool, fragment: str | None) -> None:
    v = grading.inspection_validity(conditions)
    assert v["valid"] is valid
    if fragment:
        assert any(fragment in r for r in v["reasons"]), v["reasons"]


def test_normalisation_is_linear() -> None:
    assert grading.normalise_delta_t(8.0, 800.0) == pytest.approx(10.0)
    assert grading.normalise_delta_t(8.0, None) is None


@pytest.mark.parametrize(
    ("cls", "dt", "expected"),
    [
        ("module_offline", 3.0, 400.0),
        ("bypass_diode", 5.0, 400 / 3),
        ("hotspot_single_cell", 12.0, 12.0),
        ("hotspot_single_cell", 25.0, 132.0),
    ],
)
def test_power_loss(cls: str, dt: float, expected: float) -> None:
    loss, how = grading.power_loss_w(Domain.PV_THERMAL, cls, module_power_w=400.0, delta_t_k=dt)
    assert loss == pytest.approx(expected, rel=1e-3) and how


def test_string_power_loss_needs_the_module_count() -> None:
    loss, _ = grading.power_loss_w(
        Domain.PV_THERMAL, "string_offline", module_power_w=400.0, string_modules=20
    )
    assert loss == 8000.0
    loss, how = grading.power_loss_w(Domain.PV_THERMAL, "string_offline", module_power_w=400.0)
    assert loss is None and "unknown" in how

"""ΔT measurement on constructed radiometric frames with a known answer."""

from __future__ import annotations

import numpy as np
import pytest

from detection import radiometry
from findings.thermal import as_celsius, measure_delta_t


def _frame(dt: float, rng: np.random.Generator) -> np.ndarray:
    temp = 35.0 + rng.normal(0, 0.05, (200, 240)).astype(np.float32)
    temp[90:96, 100:106] += dt  # a 6x6 px hot cell
    temp[20:30, 20:30] += 15.0  # another defect elsewhere (excluded through its box)
    return temp


@pytest.mark.parametrize("dt", [3.0, 12.5, 30.0])
def test_annulus_delta_t_matches_the_plateau(dt: float) -> None:
    temp = _frame(dt, np.random.default_rng(1))
    out = measure_delta_t(temp, [100, 90, 106, 96], [[20, 20, 30, 30]])
    assert out["delta_t_k"] == pytest.approx(dt, abs=0.2)
    assert out["reference_c"] == pytest.approx(35.0, abs=0.05)
    assert "annulus" in out["method"]


def test_counts_are_converted_to_celsius() -> None:
    temp = _frame(10.0, np.random.default_rng(2))
    counts = radiometry.celsius_to_counts(temp)
    np.testing.assert_allclose(as_celsius(counts), temp, atol=0.006)
    out = measure_delta_t(as_celsius(counts), [100, 90, 106, 96], [])
    assert out["delta_t_k"] == pytest.approx(10.0, abs=0.2)


def test_box_outside_the_frame() -> None:
    out = measure_delta_t(np.zeros((10, 10), np.float32), [20, 20, 30, 30], [])
    assert out["delta_t_k"] is None and "outside" in out["method"]


@pytest.mark.parametrize(
    ("box", "delta_t", "area_delta_t"),
    [
        ([100, 90, 106, 96], 8.0, 8.0),  # the box is the warm area: both ΔT agree
        ([80, 70, 126, 116], 8.0, 0.0),  # a module-sized box around one hot cell: hot maximum, normal area
        ([150, 150, 190, 190], 0.0, 0.0),  # a healthy area
    ],
)
def test_area_delta_t_is_the_box_median_against_the_reference(
    box: list[int], delta_t: float, area_delta_t: float
) -> None:
    temp = _frame(8.0, np.random.default_rng(3))
    out = measure_delta_t(temp, box, [[20, 20, 30, 30]])
    assert out["delta_t_k"] == pytest.approx(delta_t, abs=0.25)
    assert out["area_delta_t_k"] == pytest.approx(area_delta_t, abs=0.1)

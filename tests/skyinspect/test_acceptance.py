"""skyinspect.acceptance: which of the findings targets apply to which kind, and the flights' seeds."""

from __future__ import annotations

import pytest

from detection.default_models import PROFILES
from skyinspect.acceptance import FLIGHTS, flight_for, meets


@pytest.mark.parametrize(
    ("kind", "key", "value", "expected"),
    [
        ("pv-thermal", "recall", 0.95, True),
        ("pv-thermal", "recall", 0.85, False),
        ("pv-rgb", "duplicate_rate", 0.05, True),
        ("pv-rgb", "duplicate_rate", 0.06, False),
        ("pv-thermal", "median_location_error_m", 0.4, True),
        ("pv-rgb", "median_location_error_m", 1.4, False),
        ("wind-rgb", "median_location_error_m", 3.0, None),  # a PV target
        ("wind-rgb", "module_id_accuracy", 0.2, None),
        ("pv-thermal", "grade_agreement", 0.93, True),  # CoA
        ("pv-rgb", "grade_agreement", 0.5, None),
        ("pv-thermal", "recall", None, None),
        ("pv-thermal", "matched", 12, None),  # not a target
    ],
)
def test_targets(kind: str, key: str, value: float | None, expected: bool | None) -> None:
    assert meets(kind, key, value) is expected


def test_acceptance_flights_were_never_trained_on() -> None:
    for kind, spec in FLIGHTS.items():
        p = PROFILES[kind]
        assert spec.kind == kind and spec.seed >= 2000
        assert spec.seed not in {*p.train_seeds, p.val_seed, p.heldout_seed}


@pytest.mark.parametrize("offset", [1, 2, 5])
def test_other_seeds_are_fresh_sites_never_trained_on(offset: int) -> None:
    specs = {k: flight_for(k, offset) for k in FLIGHTS}
    for kind, spec in specs.items():
        p = PROFILES[kind]
        assert spec.kind == kind and spec.seed == FLIGHTS[kind].seed + offset
        assert spec.seed not in {*p.train_seeds, p.val_seed, p.heldout_seed}
        assert spec.site != FLIGHTS[kind].site and str(spec.seed) in spec.site and str(spec.seed) in spec.flight
    assert len({s.site for s in specs.values()}) == len(specs)
    assert all(flight_for(k, 0) == FLIGHTS[k] for k in FLIGHTS)

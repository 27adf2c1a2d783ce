"""Tiny synthetic flights shared by the synth tests (rendered once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from datasets.synth import generate_flight

FLIGHTS = {
    "pv-thermal": {"images": 12, "seed": 3, "defect_rate": 0.12},
    "pv-rgb": {"images": 8, "seed": 5, "defect_rate": 0.12, "image_size": (1000, 750), "gsd_cm": 1.2},
    "wind-rgb": {"images": 14, "seed": 4, "defect_rate": 4.0, "image_size": (800, 600)},
}


def options(kind: str) -> dict:
    opts = dict(FLIGHTS[kind])
    return {k: v for k, v in opts.items() if k not in ("images", "seed")}


@pytest.fixture(scope="session")
def flight_dir(tmp_path_factory: pytest.TempPathFactory):
    """kind → folder of a rendered tiny flight (rendered lazily, once per session)."""
    cache: dict[str, Path] = {}

    def get(kind: str) -> Path:
        if kind not in cache:
            out = tmp_path_factory.mktemp(kind)
            spec = FLIGHTS[kind]
            generate_flight(kind, spec["images"], spec["seed"], out, progress=False, **options(kind))
            cache[kind] = out
        return cache[kind]

    return get

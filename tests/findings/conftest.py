"""Tiny synthetic flights for the findings tests, rendered once per session, with ground-truth detections.

The truth boxes (``truth/frames.json``) are fed as detections, so georeferencing, de-duplication and grading are
tested independently of any model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import pytest

from datasets.synth import generate_flight
from findings.build import FlightFindings, build_findings
from findings.local import manifest_from_folder, truth_detections
from findings.thermal import folder_reader

FLIGHTS: dict[str, dict[str, Any]] = {
    "pv-thermal": {"images": 12, "seed": 3, "defect_rate": 0.12},
    "pv-rgb": {"images": 6, "seed": 11, "defect_rate": 0.2, "image_size": (640, 480), "gsd_cm": 2.0},
    "wind-rgb": {"images": 14, "seed": 4, "defect_rate": 4.0, "image_size": (800, 600)},
}


@dataclass
class SynthCase:
    kind: str
    root: Path
    manifest: dict[str, Any]
    detections: list[dict[str, Any]]
    layout: dict[str, Any]

    @property
    def flight_dir(self) -> Path:
        return self.root / "flight"

    def thermal_reader(self):
        return folder_reader(self.flight_dir) if self.kind == "pv-thermal" else None

    def image_reader(self):
        return lambda rel: cv2.imread(str(self.flight_dir / rel), cv2.IMREAD_COLOR)

    def build(self, **kwargs: Any) -> FlightFindings:
        args: dict[str, Any] = {
            "layout": self.layout,
            "thermal_reader": self.thermal_reader(),
            "image_reader": self.image_reader(),
        }
        args.update(kwargs)
        return build_findings(self.manifest, self.detections, **args)


def render(kind: str, out: Path, seed_offset: int = 0) -> Path:
    spec = dict(FLIGHTS[kind])
    images, seed = spec.pop("images"), spec.pop("seed") + seed_offset
    generate_flight(kind, images, seed, out, progress=False, workers=1, **spec)
    return out


@pytest.fixture(scope="session")
def synth_case(tmp_path_factory: pytest.TempPathFactory):
    """kind → :class:`SynthCase` (rendered lazily, once per session)."""
    cache: dict[str, SynthCase] = {}

    def get(kind: str) -> SynthCase:
        if kind not in cache:
            root = render(kind, tmp_path_factory.mktemp(f"findings-{kind}"))
            manifest = manifest_from_folder(root / "flight", "SITE-01", "F1")
            cache[kind] = SynthCase(
                kind,
                root,
                manifest,
                truth_detections(root / "truth", kind),
                json.loads((root / "site" / "layout.geojson").read_text("utf-8")),
            )
        return cache[kind]

    return get


@pytest.fixture(scope="session")
def built(synth_case):
    """kind → the :class:`FlightFindings` of that synthetic flight (built once per session)."""
    cache: dict[str, FlightFindings] = {}

    def get(kind: str) -> FlightFindings:
        if kind not in cache:
            cache[kind] = synth_case(kind).build()
        return cache[kind]

    return get

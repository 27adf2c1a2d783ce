"""Radiometry of thermal frames: the ΔT measured in the written TIFF matches the defect registry."""

from __future__ import annotations

import json

import numpy as np
from conftest import FLIGHTS, options
from PIL import Image

from datasets.synth import build_flight
from detection import radiometry

UNIFORM = {"module_offline", "string_offline", "bypass_diode"}


def test_delta_t_in_tiff_matches_registry(flight_dir) -> None:
    root = flight_dir("pv-thermal")
    frames = json.loads((root / "truth" / "frames.json").read_text())
    registry = {d["defect_id"]: d for d in json.loads((root / "truth" / "defects.json").read_text())}
    spec = FLIGHTS["pv-thermal"]
    flight = build_flight("pv-thermal", spec["images"], spec["seed"], **options("pv-thermal"))
    errors = []
    for i, name in enumerate(flight.names):
        temp = radiometry.counts_to_celsius(np.asarray(Image.open(root / "flight" / name)))
        truth = flight.render(i, with_masks=True).truth
        healthy = truth.glass & (truth.label_map == 0)
        assert healthy.sum() > 500, f"{name}: too few healthy module pixels for a reference"
        reference = float(np.median(temp[healthy]))
        for box, row in zip(truth.boxes, frames[name], strict=True):
            mask = truth.masks[box["defect_index"]]
            if row["visibility"] < 0.99 or mask.sum() < 12:
                continue
            # uniform patterns: their median; local hot spots and PID patchworks: their peak (95th percentile)
            stat = np.median if row["class"] in UNIFORM else (lambda v: np.percentile(v, 95))
            measured = float(stat(temp[mask])) - reference
            expected = registry[row["defect_id"]]["delta_t_k"]
            errors.append((row["class"], measured, expected))
    assert errors, "no fully visible thermal defect to measure"
    bad = [e for e in errors if abs(e[1] - e[2]) > 1.0]
    assert len({e[0] for e in errors}) >= 3, errors
    assert not bad, bad


def test_modules_are_warmer_than_ambient(flight_dir) -> None:
    root = flight_dir("pv-thermal")
    ambient = json.loads((root / "flight" / "conditions.json").read_text())["ambient_temp_c"]
    spec = FLIGHTS["pv-thermal"]
    flight = build_flight("pv-thermal", spec["images"], spec["seed"], **options("pv-thermal"))
    name = flight.names[0]
    temp = radiometry.counts_to_celsius(np.asarray(Image.open(root / "flight" / name)))
    truth = flight.render(0, with_masks=True).truth
    modules = float(np.median(temp[truth.glass & (truth.label_map == 0)]))
    ground = float(np.median(temp[~truth.glass]))
    assert 12.0 <= modules - ambient <= 32.0
    assert ground < modules - 5.0

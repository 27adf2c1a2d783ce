"""detection.operating_point: the operating point (``skyinspect.conf``) chosen on a validation flight.

The chooser is driven on real findings (``findings.build`` + ``findings.score`` on a small synthetic flight) and
real onnxruntime sessions (the edge tests' tiny hand-built detector); nothing local is mocked.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from datasets.synth import generate_flight
from detection import taxonomy
from detection.detections import Detections
from detection.inference import Detector
from detection.model_meta import ModelMeta, ModelMetadataError
from detection.operating_point import (
    CONF_GRID,
    choose_operating_point,
    filter_conf,
    frame_detections,
    grid_scores,
    pick_best,
    write_conf,
)
from detection.slicing import SlicedDetector

ROOT = Path(__file__).resolve().parents[2]


def _tiny_edge_model() -> object:
    """The edge tests' fixture module (``build_tiny_onnx``, ``frame``): a hand-built ONNX detector, no torch."""
    spec = importlib.util.spec_from_file_location(
        "edge_tiny_model", ROOT / "tests" / "jetson" / "conftest.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TINY = _tiny_edge_model()


@pytest.fixture(scope="module")
def pv_flight(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 6-frame 640×480 synthetic PV RGB flight with its layout and truth (12 unique defects)."""
    out = tmp_path_factory.mktemp("op-pv-rgb")
    generate_flight("pv-rgb", 6, 11, out, progress=False, workers=1, defect_rate=0.2, image_size=(640, 480),
                    gsd_cm=2.0)  # fmt: skip
    return out


def _truth_frames(flight: Path, domain: str) -> list[tuple[str, tuple[int, int], str, Detections]]:
    """Detections from the flight's truth boxes: every third defect found at 0.9, the next at 0.3, the next only
    under the wrong class at 0.1 (a false finding, its defect missed)."""
    frames = json.loads((flight / "truth" / "frames.json").read_text("utf-8"))
    ids = sorted({r["defect_id"] for rows in frames.values() for r in rows})
    group = {d: i % 3 for i, d in enumerate(ids)}
    nc = len(taxonomy.class_names(domain))
    out = []
    for rel, rows in sorted(frames.items()):
        conf = [(0.9, 0.3, 0.1)[group[r["defect_id"]]] for r in rows]
        cls = [r["class_id"] if group[r["defect_id"]] < 2 else (r["class_id"] + 1) % nc for r in rows]
        xyxy = np.array([r["xyxy"] for r in rows], np.float32).reshape(-1, 4)
        out.append((rel, (480, 640), "whole", Detections(xyxy, np.array(conf, np.float32), np.array(cls))))
    return out


def test_the_chooser_picks_the_f1_best_threshold_on_real_findings(pv_flight: Path) -> None:
    names = dict(enumerate(taxonomy.class_names("pv-rgb")))
    rows = grid_scores(_truth_frames(pv_flight, "pv-rgb"), names, pv_flight, "pv-rgb")
    by_conf = {r["conf"]: r for r in rows}
    assert [r["conf"] for r in rows] == sorted(CONF_GRID)
    # 0.05 keeps the wrong-class boxes (false findings); 0.30 and above lose the defects found at 0.3.
    assert by_conf[0.05]["precision"] < 1.0 and by_conf[0.1]["precision"] == 1.0
    assert by_conf[0.3]["recall"] < by_conf[0.25]["recall"] == by_conf[0.05]["recall"]
    best = pick_best(rows)
    assert best["f1"] == max(r["f1"] for r in rows) > max(by_conf[0.05]["f1"], by_conf[0.3]["f1"])
    assert best["conf"] == 0.15  # the plateau 0.10-0.25 ties; the middle (lower) one is taken


@pytest.mark.parametrize(
    ("f1", "expected"),
    [
        ([0.2, 0.5, 0.4], 0.1),  # one best
        ([0.5, 0.5, 0.5], 0.1),  # all tied: the middle
        ([0.1, 0.6, 0.6, 0.6, 0.6], 0.15),  # four tied: the lower middle
        ([0.0, 0.0], 0.05),  # nothing found at all: still a threshold
    ],
)
def test_pick_best_takes_the_middle_of_a_tie(f1: list[float], expected: float) -> None:
    rows = [{"conf": round(0.05 * (i + 1), 2), "f1": v} for i, v in enumerate(f1)]
    assert pick_best(rows)["conf"] == expected


@pytest.fixture(scope="module")
def frames_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """JPEG frames the tiny 64×64 detector runs whole (96×128) and sliced (300×400: > 2 tiles along a side)."""
    folder = tmp_path_factory.mktemp("op-frames")
    for i, (h, w) in enumerate([(96, 128), (300, 400), (96, 128), (300, 400)]):
        ok, buf = cv2.imencode(".jpg", TINY.frame(h, w, seed=i))
        assert ok
        (folder / f"f{i}.jpg").write_bytes(buf.tobytes())
    return folder


@pytest.mark.parametrize("conf", [0.1, 0.3, 0.5])
def test_filtering_detections_of_a_lower_threshold_gives_the_run_at_that_threshold(
    tmp_path: Path, frames_dir: Path, conf: float
) -> None:
    model = TINY.build_tiny_onnx(tmp_path / "tiny.onnx")
    low = Detector.from_onnx(model, conf=0.05, providers=["CPUExecutionProvider"])
    at = Detector.from_onnx(model, conf=conf, providers=["CPUExecutionProvider"])
    frames = frame_detections(low, frames_dir)
    assert [m for _, _, m, _ in frames] == ["whole", "tiles", "whole", "tiles"]
    filtered = filter_conf(frames, low.names, conf, {}, SlicedDetector(low).merge_detections)
    direct_frames = frame_detections(at, frames_dir)
    merge = SlicedDetector(at).merge_detections
    direct = filter_conf(direct_frames, at.names, 0.0, {}, merge)
    assert sum(len(r["detections"]) for r in filter_conf(frames, low.names, 0.05, {}, merge)) > sum(
        len(r["detections"]) for r in direct
    ), "the tiny model should find more at 0.05 than at the grid value"
    for a, b in zip(filtered, direct, strict=True):
        assert (a["relative_path"], a["width"], a["height"]) == (b["relative_path"], b["width"], b["height"])
        assert [(d["class_id"], round(d["confidence"], 5)) for d in a["detections"]] == [
            (d["class_id"], round(d["confidence"], 5)) for d in b["detections"]
        ]
        np.testing.assert_allclose(
            [d["xyxy"] for d in a["detections"]], [d["xyxy"] for d in b["detections"]], atol=1e-3
        )


def test_choose_and_write_the_operating_point_of_an_onnx_model(tmp_path: Path) -> None:
    """End to end on a model file: a tiny wind flight (sliced frames), the grid scored, the choice written into
    the ONNX metadata and read back by the runtime."""
    flight = tmp_path / "wind"
    generate_flight("wind-rgb", 2, 5, flight, progress=False, workers=1, image_size=(640, 480))
    model = TINY.build_tiny_onnx(tmp_path / "tiny.onnx")
    point = choose_operating_point(model, flight, "wind-rgb", grid=(0.1, 0.2, 0.3))
    assert [r["conf"] for r in point["grid"]] == [0.1, 0.2, 0.3] and point["frames"] == 2
    assert point["conf"] == pick_best(point["grid"])["conf"]
    assert point["method"] == "findings-f1-on-validation-flight"
    assert ModelMeta.from_onnx(model).conf is None
    write_conf(model, point["conf"])
    assert ModelMeta.from_onnx(model).conf == point["conf"]
    assert Detector.from_onnx(model, providers=["CPUExecutionProvider"]).meta.conf == point["conf"]


@pytest.mark.parametrize("bad", [0.0, 1.0, 1.5, -0.1, float("nan")])
def test_write_conf_refuses_a_threshold_outside_0_1(tmp_path: Path, bad: float) -> None:
    model = TINY.build_tiny_onnx(tmp_path / "tiny.onnx")
    before = model.read_bytes()
    with pytest.raises(ModelMetadataError, match=r"tiny\.onnx.*'skyinspect\.conf'"):
        write_conf(model, bad)
    assert model.read_bytes() == before


def test_choose_refuses_a_bad_grid(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="grid"):
        choose_operating_point(tmp_path / "none.onnx", tmp_path, "wind-rgb", grid=(0.0, 0.2))


def test_shipped_models_carry_their_operating_point() -> None:
    """The shipped models whose card records an operating point carry the same ``skyinspect.conf``."""
    found = 0
    for card_path in sorted((ROOT / "models").glob("*/card.json")):
        card = json.loads(card_path.read_text("utf-8"))
        point = card.get("operating_point")
        if not point:
            continue
        found += 1
        onnx_file = card_path.parent / card["onnx"]["file"]
        assert ModelMeta.from_onnx(onnx_file).conf == point["conf"] == card["onnx"]["conf"]
        assert point["flight_seed"] == card["profile"]["val_seed"] != card["heldout"]["flight_seed"]
        assert point["conf"] == pick_best(point["grid"])["conf"]
    if not found:
        pytest.skip("no shipped model records an operating point")

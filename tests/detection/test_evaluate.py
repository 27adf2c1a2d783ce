"""detection.evaluate: the report, agreement with ultralytics' validator, .pt vs ONNX, slicing, flights, the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from fixtures_training import TINY_IMGSZ, make_image, tiny_model  # noqa: F401

from detection import taxonomy
from detection.evaluate import EvalConfig, EvaluateError, evaluate, load_eval_data
from detection.train import load_data_yaml, write_resolved_data_yaml

REQUIRED = {"map50", "map50_95", "per_class", "confusion_matrix", "images", "model", "dataset_version"}


def label_count(data_yaml: Path, split: str = "val") -> np.ndarray:
    counts = np.zeros(len(taxonomy.class_names("pv-rgb")), dtype=int)
    for f in (data_yaml.parent / "labels" / split).glob("*.txt"):
        for line in f.read_text().splitlines():
            counts[int(line.split()[0])] += 1
    return counts


def test_report_plots_and_counts(tiny_model, tmp_path: Path) -> None:  # noqa: F811
    from datasets.version import dataset_version

    result = evaluate(EvalConfig(model=tiny_model.weights, data=tiny_model.data_yaml, out=tmp_path / "ev"))
    report = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert report == json.loads(json.dumps(result.report))
    assert REQUIRED <= set(report)
    assert report["images"] == 12 and report["backend"] == "torch" and report["data_kind"] == "yolo"
    assert report["dataset_version"] == dataset_version(tiny_model.data_yaml)
    names = taxonomy.class_names("pv-rgb")
    assert list(report["per_class"]) == names
    support = label_count(tiny_model.data_yaml)
    assert [report["per_class"][n]["support"] for n in names] == support.tolist()
    cm = np.array(report["confusion_matrix"]["matrix"])
    assert cm.shape == (len(names) + 1,) * 2
    assert cm[:-1].sum(1).tolist() == support.tolist()  # every true object is somewhere in its row
    assert report["map50"] is not None and 0.0 <= report["map50_95"] <= report["map50"] <= 1.0
    for key in ("pr_curve", "confusion_matrix"):
        assert result.files[key].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _single_label_validator():
    """ultralytics' DetectionValidator with single-label NMS, as the inference core and ultralytics' predict do."""
    from ultralytics.models.yolo.detect import DetectionValidator
    from ultralytics.utils import nms

    class SingleLabelValidator(DetectionValidator):
        def postprocess(self, preds):
            outputs = nms.non_max_suppression(preds, self.args.conf, self.args.iou, nc=0, multi_label=False,
                                              agnostic=self.args.agnostic_nms, max_det=self.args.max_det,
                                              end2end=self.end2end)  # fmt: skip
            return [{"bboxes": x[:, :4], "conf": x[:, 4], "cls": x[:, 5], "extra": x[:, 6:]} for x in outputs]

    return SingleLabelValidator


def test_map_agrees_with_ultralytics_val(tiny_model, tmp_path: Path, record_property) -> None:  # noqa: F811
    """Our mAP (own letterbox, decode, NMS, matching, AP) against ultralytics' ``model.val()`` on the same weights.

    Like for like — square letterbox (``rect=False``), single-label NMS, ultralytics' AP integration — the two
    must agree within 0.01: the frames are at the model's native size (no resampling either side), so what is left
    is float32 box arithmetic deciding matches at the strictest IoU thresholds (measured: mAP50 identical,
    mAP50-95 within 0.001). Stock ``val()`` (rect batches padded by half a stride, multi-label NMS) is recorded for
    the report, not asserted: on an under-trained model multi-label NMS moves mAP50 by several points.
    """
    from ultralytics import YOLO

    data = write_resolved_data_yaml(load_data_yaml(tiny_model.data_yaml), tmp_path / "abs.yaml")
    common = {"data": str(data), "imgsz": TINY_IMGSZ, "batch": 8, "conf": 0.001, "iou": 0.6, "plots": False,
              "verbose": False, "device": "cpu", "project": str(tmp_path), "name": "val"}  # fmt: skip
    ours = evaluate(
        EvalConfig(model=tiny_model.weights, data=tiny_model.data_yaml, iou=0.6, ap_method="ultralytics")
    )
    theirs = YOLO(str(tiny_model.weights)).val(validator=_single_label_validator(), rect=False, **common).box
    assert ours.metrics.map50 > 0.02, "the tiny model should detect something, or agreement means nothing"
    assert ours.metrics.map50 == pytest.approx(theirs.map50, abs=0.01)
    assert ours.metrics.map50_95 == pytest.approx(theirs.map, abs=0.01)
    stock = YOLO(str(tiny_model.weights)).val(**common).box
    coco = evaluate(EvalConfig(model=tiny_model.weights, data=tiny_model.data_yaml, iou=0.6)).metrics
    numbers = {
        "ours_ultralytics_ap": [ours.metrics.map50, ours.metrics.map50_95],
        "ours_coco_ap": [coco.map50, coco.map50_95],
        "val_like_for_like": [float(theirs.map50), float(theirs.map)],
        "val_stock": [float(stock.map50), float(stock.map)],
    }
    record_property("map_agreement", json.dumps(numbers))
    print("mAP50 / mAP50-95:", json.dumps(numbers))


def test_pt_and_its_onnx_export_score_the_same(tiny_model, tmp_path: Path) -> None:  # noqa: F811
    from ultralytics import YOLO

    pt = tmp_path / "best.pt"
    shutil.copy(tiny_model.weights, pt)
    onnx = Path(
        YOLO(str(pt)).export(format="onnx", imgsz=TINY_IMGSZ, simplify=False, dynamic=False, verbose=False)
    )
    a = evaluate(EvalConfig(model=pt, data=tiny_model.data_yaml)).report
    b = evaluate(EvalConfig(model=onnx, data=tiny_model.data_yaml)).report
    assert (a["backend"], b["backend"]) == ("torch", "onnxruntime")
    # Same pre/post-processing; only the kernels differ (float32 rounding can flip a match at a threshold).
    assert b["map50"] == pytest.approx(a["map50"], abs=0.01)
    assert b["map50_95"] == pytest.approx(a["map50_95"], abs=0.01)
    assert [c["support"] for c in a["per_class"].values()] == [c["support"] for c in b["per_class"].values()]


def write_frames(root: Path, n: int, size: tuple[int, int], seed: int = 1) -> list[tuple[Path, list[tuple]]]:
    """n shape images of ``size`` (w, h) with the training objects' pixel size; returns (path, boxes)."""
    rng = np.random.default_rng(seed)
    out = []
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img, boxes = make_image(rng, size[0], size[1], shapes=(4, 8), size_px=(16, 38))
        path = root / f"DJI_{i + 1:04d}.JPG"
        cv2.imwrite(str(path), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
        out.append((path, boxes))
    return out


def yolo_lines(boxes: list[tuple], w: int, h: int) -> str:
    return "".join(f"{c} {(x1 + x2) / 2 / w:.6f} {(y1 + y2) / 2 / h:.6f} {(x2 - x1) / w:.6f} {(y2 - y1) / h:.6f}\n"
                   for c, x1, y1, x2, y2 in boxes)  # fmt: skip


def test_flight_folder_sliced_and_whole(tiny_model, tmp_path: Path) -> None:  # noqa: F811
    """A flight folder (flight/ + truth/labels + synth.json) of frames 3x the model input, tiled or not."""
    flight = tmp_path / "flight-a"
    w, h = 384, 288
    for path, boxes in write_frames(flight / "flight", 3, (w, h)):
        (flight / "truth" / "labels").mkdir(parents=True, exist_ok=True)
        (flight / "truth" / "labels" / f"{path.stem}.txt").write_text(yolo_lines(boxes, w, h))
    (flight / "synth.json").write_text(json.dumps({"kind": "pv-rgb", "seed": 1}))
    data = load_eval_data(flight)
    assert (data.kind, len(data.samples), data.names) == ("flight", 3, taxonomy.class_names("pv-rgb"))

    sliced = evaluate(EvalConfig(model=tiny_model.weights, data=flight, slice=True, overlap=0.25)).report
    whole = evaluate(EvalConfig(model=tiny_model.weights, data=flight)).report
    assert sliced["settings"]["slice"] is True and sliced["settings"]["tile"] == [TINY_IMGSZ, TINY_IMGSZ]
    assert sliced["data_kind"] == "flight" and sliced["split"] is None and sliced["images"] == 3
    assert sliced["dataset_version_method"] == "sha256(synth.json + truth labels)"
    assert sum(c["predictions"] for c in sliced["per_class"].values()) > 0
    # Objects are drawn at training scale: tiles keep them there, the whole frame shrinks them 3x.
    assert sliced["map50"] >= whole["map50"]


def test_class_names_must_match(tiny_model, tmp_path: Path) -> None:  # noqa: F811
    spec = yaml.safe_load(tiny_model.data_yaml.read_text())
    spec.update(path=str(tiny_model.data_yaml.parent), names=taxonomy.class_names("wind-rgb"))
    other = tmp_path / "wind.yaml"
    other.write_text(yaml.safe_dump(spec))
    with pytest.raises(EvaluateError, match="class names differ"):
        evaluate(EvalConfig(model=tiny_model.weights, data=other))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"model": Path("model.tflite")}, r"expected a \.pt or \.onnx"),
        ({"split": "test"}, "no images in split 'test'"),
        ({"data": Path("/nonexistent/data.yaml")}, "does not exist"),
    ],
)
def test_evaluate_rejects(tiny_model, tmp_path: Path, kwargs: dict, message: str) -> None:  # noqa: F811
    if "model" in kwargs:
        kwargs["model"] = tmp_path / kwargs["model"]
        kwargs["model"].write_bytes(b"x")
    cfg = {"model": tiny_model.weights, "data": tiny_model.data_yaml, **kwargs}
    with pytest.raises(EvaluateError, match=message):
        evaluate(EvalConfig(**cfg))


def test_cli_json_prints_one_object(tiny_model, tmp_path: Path) -> None:  # noqa: F811
    from skyinspect.cli import cli

    args = [
        "evaluate",
        str(tiny_model.weights),
        "--data",
        str(tiny_model.data_yaml),
        "--json",
        "--limit",
        "4",
    ]
    result = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "ev")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert REQUIRED <= set(report) and report["images"] == 4
    assert (tmp_path / "ev" / "confusion_matrix.png").is_file()
    table = CliRunner().invoke(
        cli, ["evaluate", str(tiny_model.weights), "--data", str(tiny_model.data_yaml)]
    )
    assert table.exit_code == 0 and "AP50-95" in table.stdout and "soiling" in table.stdout

"""``skyinspect predict``: through the real top-level CLI, on real image files and a real ONNX model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from fixtures_inference import NAMES, synthetic_frame

from detection.cli_predict import annotate, class_colours, expand_images
from detection.detections import Detections
from detection.inference import Detector
from detection.operating_point import write_conf
from skyinspect.cli import cli


@pytest.fixture
def image_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "flight"
    folder.mkdir()
    for i, (h, w) in enumerate([(512, 640), (600, 900)]):
        cv2.imwrite(str(folder / f"DJI_{i:04d}.png"), synthetic_frame(h, w, seed=40 + i))
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_json_lines_match_the_inference_core(onnx_model, image_dir: Path) -> None:
    result = CliRunner().invoke(
        cli, ["predict", str(onnx_model.path), str(image_dir), "--conf", "0.05", "--json"]
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [Path(r["image"]).name for r in lines] == ["DJI_0000.png", "DJI_0001.png"]  # the .txt is skipped
    assert lines[1]["width"] == 900 and lines[1]["height"] == 600 and lines[0]["domain"] == "wind-rgb"
    det = Detector.from_onnx(onnx_model.path, conf=0.05)
    want = det.predict(cv2.imread(str(image_dir / "DJI_0000.png")))
    got = Detections.from_records(lines[0]["detections"])
    assert len(got) == len(want) > 0
    assert {r["class_name"] for r in lines[0]["detections"]} <= set(NAMES)
    np.testing.assert_allclose(got.xyxy, want.xyxy, atol=0.01)


def test_sliced_run_writes_annotated_images_and_jsonl(onnx_model, image_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["predict", str(onnx_model.path), str(image_dir / "DJI_0001.png"), "--slice", "--tile", "320"]
    result = CliRunner().invoke(cli, [*args, "--overlap", "0.25", "--conf", "0.05", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "DJI_0001.png:" in result.output and "detections" in result.output
    rec = json.loads((out / "predictions.jsonl").read_text().splitlines()[0])
    assert rec["sliced"] is True and len(rec["detections"]) > 0
    annotated = cv2.imread(str(out / "DJI_0001.jpg"))
    assert annotated.shape == (600, 900, 3)


def test_unreadable_image_is_reported_and_fails(onnx_model, tmp_path: Path) -> None:
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 truncated")
    good = tmp_path / "ok.png"
    cv2.imwrite(str(good), synthetic_frame(64, 64))
    result = CliRunner().invoke(cli, ["predict", str(onnx_model.path), str(bad), str(good)])
    assert result.exit_code == 1
    assert f"cannot read image {bad}: not a decodable image" in result.output
    assert "1 of 2 images could not be processed" in result.output


def test_model_without_metadata_is_a_clear_error(tmp_path: Path, onnx_model) -> None:
    import onnx

    model = onnx.load(str(onnx_model.path))
    del model.metadata_props[:]
    onnx.save(model, str(tmp_path / "bare.onnx"))
    img = tmp_path / "a.png"
    cv2.imwrite(str(img), synthetic_frame(64, 64))
    result = CliRunner().invoke(cli, ["predict", str(tmp_path / "bare.onnx"), str(img)])
    assert (
        result.exit_code != 0
        and "lacks required key(s) names" in result.output
        and "Traceback" not in result.output
    )


def test_helpers(tmp_path: Path) -> None:
    (tmp_path / "b.JPG").write_bytes(b"x")
    (tmp_path / "a.tif").write_bytes(b"x")
    assert [p.name for p in expand_images((str(tmp_path),))] == ["a.tif", "b.JPG"]
    colours = class_colours(dict(enumerate(NAMES)), "wind-rgb")
    assert colours[NAMES.index("crack")] == (48, 59, 255)  # taxonomy #ff3b30 as BGR
    assert class_colours({0: "unknown"}, None)[0] == (48, 59, 255)  # fallback palette
    img = synthetic_frame(50, 80)
    dets = Detections([[5, 5, 30, 30]], [0.9], [1])
    drawn = annotate(img, dets, dict(enumerate(NAMES)), colours)
    assert drawn.shape == img.shape and (drawn != img).any() and (img == synthetic_frame(50, 80)).all()


@pytest.mark.parametrize(
    ("model_conf", "args", "want"),
    [
        (0.4, [], (0.4, "model")),  # no --conf: the model's operating point (skyinspect.conf)
        (0.4, ["--conf", "0.05"], (0.05, "config")),  # an explicit --conf is used as given
        (None, [], (0.25, "default")),  # a model without the key: 0.25
    ],
)
def test_conf_defaults_to_the_models_operating_point(
    onnx_model, image_dir: Path, tmp_path: Path, model_conf: float | None, args: list[str], want: tuple
) -> None:
    model = tmp_path / "model.onnx"
    shutil.copy(onnx_model.path, model)
    if model_conf is not None:
        write_conf(model, model_conf)
    result = CliRunner().invoke(cli, ["predict", str(model), str(image_dir), "--json", *args])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 2 and {(r["conf"], r["conf_from"]) for r in lines} == {want}
    assert all(d["confidence"] > want[0] for r in lines for d in r["detections"])
    # the human-readable run says it on stderr
    plain = CliRunner().invoke(cli, ["predict", str(model), str(image_dir / "DJI_0000.png"), *args])
    assert f"confidence threshold {want[0]:g} (from {want[1]})" in plain.stderr

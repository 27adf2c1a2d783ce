"""Bad input gets a clear error: missing/corrupt checkpoints, unknown references, opsets, calibration sets."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from detection import taxonomy
from skyinspect.cli import cli


def _calib_set(root: Path, names: list[str], domain: str | None, with_train: bool = True) -> Path:
    """A YOLO set with one real image (copied from the tiny set) in train (or nowhere)."""
    (root / "images" / "val").mkdir(parents=True)
    (root / "images" / "train").mkdir(parents=True)
    data = {"path": ".", "train": "images/train", "val": "images/val", "names": names}
    if domain:
        data["domain"] = domain
    (root / "data.yaml").write_text(yaml.safe_dump(data))
    return root / "data.yaml"


def _case(name: str, tmp: Path, tiny) -> tuple[list[str], str]:
    pt = str(tiny.weights)
    pv_rgb = taxonomy.class_names("pv-rgb")
    if name == "missing":
        return [str(tmp / "nope.pt")], "does not exist"
    if name == "empty":
        (tmp / "empty.pt").write_bytes(b"")
        return [str(tmp / "empty.pt")], "is empty"
    if name == "corrupt":
        (tmp / "bad.pt").write_bytes(b"PK\x03\x04 this is not a checkpoint" * 20)
        return [str(tmp / "bad.pt")], "not a readable ultralytics checkpoint"
    if name == "not-pt":
        (tmp / "m.onnx").write_bytes(b"x")
        return [str(tmp / "m.onnx")], "expected a .pt checkpoint"
    if name == "unknown-domain-ref":
        return ["lunar-rgb:champion"], "unknown domain 'lunar-rgb'"
    if name == "opset-too-new":
        return [pt, "--opset", "99"], "opset 99: the installed onnx"
    if name == "opset-too-old":
        return [pt, "--opset", "7"], "opset 7: the installed onnx"
    if name == "imgsz-not-stride":
        return [pt, "--imgsz", "100"], "multiples of the stride 32"
    if name == "int8-without-calib":
        return [pt, "--int8"], "--int8 needs calibration data"
    if name == "calib-missing":
        return [pt, "--int8", "--calib", str(tmp / "nothing")], "does not exist"
    if name == "calib-empty":
        return [
            pt,
            "--int8",
            "--calib",
            str(_calib_set(tmp / "c", pv_rgb, "pv-rgb")),
        ], "no images in split 'train'"
    if name == "calib-wrong-names":
        wind = taxonomy.class_names("wind-rgb")
        return [
            pt,
            "--int8",
            "--calib",
            str(_calib_set(tmp / "c", wind, "wind-rgb")),
        ], "differ from the model's"
    if name == "calib-wrong-domain":
        return [
            pt,
            "--int8",
            "--calib",
            str(_calib_set(tmp / "c", pv_rgb, "pv-thermal")),
        ], "domain pv-thermal"
    raise AssertionError(name)


CASES = ["missing", "empty", "corrupt", "not-pt", "unknown-domain-ref", "opset-too-new", "opset-too-old",
         "imgsz-not-stride", "int8-without-calib", "calib-missing", "calib-empty", "calib-wrong-names",
         "calib-wrong-domain"]  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_export_bad_input(case: str, tmp_path: Path, tiny_model) -> None:
    args, message = _case(case, tmp_path, tiny_model)
    result = CliRunner().invoke(cli, ["export", *args, "--out", str(tmp_path / "out")])
    assert result.exit_code == 1, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert not list((tmp_path / "out").glob("*.onnx"))  # nothing half-written


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--onnx", "{tmp}/missing.onnx"], "missing.onnx does not exist"),
        ([], "no ONNX file given"),
        (["--onnx", "{tmp}/garbage.onnx"], "garbage.onnx"),
    ],
)
def test_verify_bad_input(args: list[str], message: str, tmp_path: Path, tiny_model) -> None:
    (tmp_path / "garbage.onnx").write_bytes(b"\x00not onnx")
    args = [a.format(tmp=tmp_path) for a in args]
    result = CliRunner().invoke(
        cli, ["export", "verify", str(tiny_model.weights), *args, "--data", str(tiny_model.data_yaml)]
    )
    assert result.exit_code == 1, result.output
    assert message in result.output and "Traceback" not in result.output


def test_help_shows_both_spellings() -> None:
    result = CliRunner().invoke(cli, ["export", "--help"])
    assert result.exit_code == 0
    assert "export MODEL [OPTIONS]" in result.output
    assert "export verify MODEL" in result.output
    assert "--dynamic-batch" in result.output and "--int8" in result.output

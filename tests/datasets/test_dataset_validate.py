"""The validator catches each kind of bad label and file, with its path and line, and fails the set."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from datasets.cli import dataset
from datasets.validate import ERROR, WARNING, validate_dataset

GOOD = {
    "train/a.jpg": (40, 30, [(0, 4, 4, 20, 20)]),
    "train/b.jpg": (40, 30, [(1, 10, 5, 30, 25)]),
    "val/c.jpg": (40, 30, [(2, 1, 1, 9, 9)]),
}


def _corrupt_label(text: str):
    def apply(root: Path) -> None:
        (root / "labels" / "train" / "a.txt").write_text(text)

    return apply


def _truncate_image(root: Path) -> None:
    img = root / "images" / "train" / "b.jpg"
    img.write_bytes(img.read_bytes()[:200])


def _not_an_image(root: Path) -> None:
    (root / "images" / "val" / "c.jpg").write_text("this is not a jpeg")


def _orphan_label(root: Path) -> None:
    (root / "labels" / "val" / "ghost.txt").write_text("0 0.5 0.5 0.1 0.1\n")


def _duplicate_image(root: Path) -> None:
    shutil.copy(root / "images" / "train" / "a.jpg", root / "images" / "val" / "a_copy.jpg")
    shutil.copy(root / "labels" / "train" / "a.txt", root / "labels" / "val" / "a_copy.txt")


def _label_clash(root: Path) -> None:
    from PIL import Image

    Image.new("RGB", (8, 8), (1, 2, 3)).save(root / "images" / "train" / "a.png")


def _missing_split(root: Path) -> None:
    shutil.rmtree(root / "images" / "val")
    shutil.rmtree(root / "labels" / "val")


@pytest.mark.parametrize(
    ("corrupt", "code", "path", "line"),
    [
        (_corrupt_label("0 0.5 0.5 0.2\n"), "field_count", "labels/train/a.txt", 1),
        (_corrupt_label("0 0.5 0.5 0.2 0.2 0.9\n"), "field_count", "labels/train/a.txt", 1),
        (_corrupt_label("0 0.5 0.5 0.2 0.2\n0 half 0.5 0.2 0.2\n"), "not_a_number", "labels/train/a.txt", 2),
        (_corrupt_label("0 0.5 0.5 0.2 inf\n"), "not_a_number", "labels/train/a.txt", 1),
        (_corrupt_label("6 0.5 0.5 0.2 0.2\n"), "unknown_class", "labels/train/a.txt", 1),
        (_corrupt_label("0 1.5 0.5 0.2 0.2\n"), "box_out_of_range", "labels/train/a.txt", 1),
        (_corrupt_label("0 0.05 0.5 0.2 0.2\n"), "box_out_of_range", "labels/train/a.txt", 1),
        (_corrupt_label("0 0.5 0.5 0.0 0.2\n"), "degenerate_box", "labels/train/a.txt", 1),
        (_corrupt_label("0 0.5 0.5 0.2 -0.2\n"), "degenerate_box", "labels/train/a.txt", 1),
        (_truncate_image, "unreadable_image", "images/train/b.jpg", 0),
        (_not_an_image, "unreadable_image", "images/val/c.jpg", 0),
        (_orphan_label, "label_without_image", "labels/val/ghost.txt", 0),
        (_duplicate_image, "duplicate_image", "images/val/a_copy.jpg", 0),
        (_label_clash, "label_clash", "images/train/a.png", 0),
        (_missing_split, "missing_split", "images/val", 0),
    ],
)
def test_each_kind_of_problem_is_an_error(make_yolo_set, corrupt, code, path, line):
    root = make_yolo_set("s", ["a", "b", "c", "d", "e", "f"], GOOD)
    assert validate_dataset(root, progress=False).ok
    corrupt(root)
    report = validate_dataset(root, progress=False)
    assert not report.ok
    matches = [i for i in report.errors if i.code == code]
    assert [(i.path, i.line) for i in matches] == [(path, line)], report.issues
    result = CliRunner().invoke(dataset, ["validate", str(root)])
    assert result.exit_code == 1
    assert f"{path}:{line}" in result.output if line else path in result.output
    assert "FAILED" in result.output


def test_images_without_labels_are_counted_background_warnings(make_yolo_set):
    root = make_yolo_set("s", ["a", "b", "c"], GOOD)
    (root / "labels" / "train" / "b.txt").unlink()
    (root / "labels" / "val" / "c.txt").write_text("")
    report = validate_dataset(root, progress=False)
    assert report.ok
    assert (report.images, report.background_images, report.images_without_labels) == (3, 2, 1)
    assert [(i.severity, i.code, i.path) for i in report.issues] == [
        (WARNING, "no_label_file", "images/train/b.jpg")
    ]
    runner = CliRunner()
    assert runner.invoke(dataset, ["validate", str(root)]).exit_code == 0
    assert runner.invoke(dataset, ["validate", str(root), "--strict"]).exit_code == 1


def test_duplicate_box_is_a_warning(make_yolo_set):
    root = make_yolo_set("s", ["a", "b", "c"], GOOD)
    label = root / "labels" / "train" / "a.txt"
    label.write_text(label.read_text() * 2)
    report = validate_dataset(root, progress=False)
    assert report.ok
    assert [(i.code, i.line) for i in report.warnings] == [("duplicate_box", 2)]


def test_set_without_data_yaml_uses_domain_names(make_yolo_set):
    root = make_yolo_set("s", None, {"a.jpg": (40, 30, [(5, 4, 4, 20, 20)])})
    assert validate_dataset(root, progress=False).ok  # no names: any id >= 0
    report = validate_dataset(root, names=["only_one"], progress=False)
    assert [i.code for i in report.errors] == ["unknown_class"]
    result = CliRunner().invoke(dataset, ["validate", str(root), "--domain", "pv-rgb", "--json"])
    assert result.exit_code == 0
    payload = json.loads(result.output)
    assert payload["ok"] is True and payload["per_class"] == {"missing_module": 1}


def test_json_report_lists_every_issue(make_yolo_set):
    root = make_yolo_set("s", ["a"], {"a.jpg": (40, 30, [])})
    (root / "labels" / "a.txt").write_text("0 0.5\n1 0.5 0.5 0.1 0.1\n0 0.5 0.5 0.1 0.1\n")
    result = CliRunner().invoke(dataset, ["validate", str(root), "--json"])
    assert result.exit_code == 1
    payload = json.loads(result.output)
    assert payload["errors"] == 2 and payload["boxes"] == 1
    assert [(i["severity"], i["line"], i["code"]) for i in payload["issues"]] == [
        (ERROR, 1, "field_count"),
        (ERROR, 2, "unknown_class"),
    ]

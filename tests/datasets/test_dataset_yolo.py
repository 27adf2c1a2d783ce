"""YOLO label parsing, label paths and finding the files of a set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from datasets.yolo import (
    DatasetError,
    find_yolo_set,
    format_labels,
    label_path_for,
    labels_to_xyxy,
    parse_label_text,
    read_labels,
)


@pytest.mark.parametrize(
    ("text", "n_classes", "codes"),
    [
        ("0 0.5 0.5 0.2 0.2\n", 3, []),
        ("\n\n0 0.5 0.5 0.2 0.2\n\n", 3, []),
        ("0 0.5 0.5 0.2\n", 3, ["field_count"]),
        ("0 0.5 0.5 0.2 0.2 0.1\n", 3, ["field_count"]),
        ("0 0.5 abc 0.2 0.2\n", 3, ["not_a_number"]),
        ("0 0.5 nan 0.2 0.2\n", 3, ["not_a_number"]),
        ("3 0.5 0.5 0.2 0.2\n", 3, ["unknown_class"]),
        ("1.5 0.5 0.5 0.2 0.2\n", 3, ["unknown_class"]),
        ("-1 0.5 0.5 0.2 0.2\n", 3, ["unknown_class"]),
        ("7 0.5 0.5 0.2 0.2\n", None, []),  # no names known: any id >= 0
        ("0 0.5 0.5 0 0.2\n", 3, ["degenerate_box"]),
        ("0 0.5 0.5 0.2 -0.1\n", 3, ["degenerate_box"]),
        ("0 1.2 0.5 0.2 0.2\n", 3, ["box_out_of_range"]),
        ("0 0.95 0.5 0.2 0.2\n", 3, ["box_out_of_range"]),  # right edge at 1.05
        ("0 0.5 0.5 0.2 0.2\n0 0.5\n9 0.5 0.5 0.1 0.1\n", 3, ["field_count", "unknown_class"]),
    ],
)
def test_parse_label_text(text, n_classes, codes):
    boxes, problems = parse_label_text(text, n_classes)
    assert [p.code for p in problems] == codes
    assert len(boxes) + len(problems) == len([ln for ln in text.splitlines() if ln.strip()])


def test_problem_line_numbers_count_blank_lines():
    _, problems = parse_label_text("0 0.5 0.5 0.2 0.2\n\nfoo\n", 1)
    assert [(p.line, p.code) for p in problems] == [(3, "field_count")]


def test_read_labels_names_file_and_line(tmp_path: Path):
    path = tmp_path / "labels" / "a.txt"
    path.parent.mkdir()
    path.write_text("0 0.5 0.5 0.2 0.2\n0 0.5 0.5 x 0.2\n")
    with pytest.raises(DatasetError, match=r"a\.txt:2: non-numeric"):
        read_labels(path, 2)
    assert read_labels(tmp_path / "labels" / "missing.txt") == []


@pytest.mark.parametrize(
    ("image", "label"),
    [
        ("ds/images/train/a.jpg", "ds/labels/train/a.txt"),
        ("ds/images/a.b.png", "ds/labels/a.b.txt"),
        ("images/x/images/train/a.jpg", "images/x/labels/train/a.txt"),  # the last 'images' is replaced
    ],
)
def test_label_path_for(image, label):
    assert label_path_for(Path(image)) == Path(label)


def test_label_path_needs_images_folder():
    with pytest.raises(DatasetError, match="images"):
        label_path_for(Path("ds/pics/a.jpg"))


def test_format_and_parse_round_trip():
    xyxy = np.array([[10.0, 20.0, 50.0, 40.0], [0.0, 0.0, 100.0, 80.0]])
    text = format_labels(xyxy, np.array([2, 0]), 100, 80)
    boxes, problems = parse_label_text(text, 3)
    assert not problems
    back, cls = labels_to_xyxy(boxes, 100, 80)
    np.testing.assert_allclose(back, xyxy, atol=1e-3)
    assert cls.tolist() == [2, 0]


def test_find_yolo_set_with_and_without_data_yaml(make_yolo_set):
    boxes = [(0, 2, 2, 10, 10)]
    root = make_yolo_set("s", ["a", "b"], {"train/x.jpg": (32, 32, boxes), "val/y.jpg": (32, 32, boxes)})
    found = find_yolo_set(root)
    assert found.names == ["a", "b"]
    assert {p.name: s for p, s in found.images.items()} == {"x.jpg": "train", "y.jpg": "val"}
    (root / "data.yaml").unlink()
    (root / "labels" / "val" / "z.txt").write_text("")
    found = find_yolo_set(root)
    assert found.names is None
    assert {p.name: s for p, s in found.images.items()} == {"x.jpg": "train", "y.jpg": "val"}
    assert [p.name for p in found.orphan_labels] == ["z.txt"]

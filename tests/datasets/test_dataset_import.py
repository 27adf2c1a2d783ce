"""COCO / VOC / foreign YOLO imports: boxes survive in pixels, names map onto the taxonomy, unmapped reported."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from PIL import Image

from datasets.cli import dataset
from datasets.importer import UnmappedClassesError, import_dataset, resolve_class_map
from datasets.validate import validate_dataset
from datasets.version import dataset_version
from datasets.yolo import DatasetError, labels_to_xyxy, read_labels
from detection import taxonomy

# image name -> (width, height, [(their class name, x0, y0, x1, y1) in pixels])
SAMPLES = {
    "p1.jpg": (120, 80, [("Soiling", 10.0, 12.0, 50.0, 40.0), ("broken glass", 60.5, 5.0, 119.0, 79.0)]),
    "p2.jpg": (64, 96, [("soiling", 0.0, 0.0, 17.0, 23.0)]),
    "p3.jpg": (50, 50, []),
}
MAP = {"broken glass": "glass_breakage"}


def _images(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, (w, h, _) in SAMPLES.items():
        Image.new("RGB", (w, h), (90, 120, 60)).save(folder / name, quality=90)


def write_coco(root: Path, samples=SAMPLES) -> Path:
    _images(root / "images")
    cats = sorted({b[0] for _, _, boxes in samples.values() for b in boxes})
    data = {
        "images": [],
        "annotations": [],
        "categories": [{"id": 10 + i, "name": n} for i, n in enumerate(cats)],
    }
    for i, (name, (w, h, boxes)) in enumerate(samples.items(), start=1):
        data["images"].append({"id": i, "file_name": name, "width": w, "height": h})
        for c, x0, y0, x1, y1 in boxes:
            data["annotations"].append(
                {
                    "id": len(data["annotations"]) + 1,
                    "image_id": i,
                    "category_id": 10 + cats.index(c),
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "area": (x1 - x0) * (y1 - y0),
                    "iscrowd": 0,
                }
            )
    path = root / "annotations.json"
    path.write_text(json.dumps(data))
    return path


def write_voc(root: Path, samples=SAMPLES) -> Path:
    _images(root / "JPEGImages")
    (root / "Annotations").mkdir(parents=True)
    for name, (w, h, boxes) in samples.items():
        objects = "".join(
            f"<object><name>{c}</name><difficult>0</difficult><bndbox><xmin>{x0 + 1:g}</xmin><ymin>{y0 + 1:g}</ymin>"
            f"<xmax>{x1:g}</xmax><ymax>{y1:g}</ymax></bndbox></object>"
            for c, x0, y0, x1, y1 in boxes
        )
        (root / "Annotations" / f"{Path(name).stem}.xml").write_text(
            f"<annotation><folder>VOC</folder><filename>{name}</filename><size><width>{w}</width>"
            f"<height>{h}</height><depth>3</depth></size>{objects}</annotation>"
        )
    return root


def write_foreign_yolo(root: Path, samples=SAMPLES) -> Path:
    names = sorted({b[0] for _, _, boxes in samples.values() for b in boxes})
    _images(root / "images" / "train")
    (root / "labels" / "train").mkdir(parents=True)
    for name, (w, h, boxes) in samples.items():
        (root / "labels" / "train" / f"{Path(name).stem}.txt").write_text(
            "".join(
                f"{names.index(c)} {(x0 + x1) / 2 / w} {(y0 + y1) / 2 / h} {(x1 - x0) / w} {(y1 - y0) / h}\n"
                for c, x0, y0, x1, y1 in boxes
            )
        )
    (root / "data.yaml").write_text(yaml.safe_dump({"path": ".", "train": "images/train", "names": names}))
    return root


WRITERS = {"coco": write_coco, "voc": write_voc, "yolo": write_foreign_yolo}


@pytest.mark.parametrize("fmt", ["coco", "voc", "yolo"])
def test_import_round_trips_boxes_in_pixels(tmp_path, fmt):
    src = WRITERS[fmt](tmp_path / "src")
    out = tmp_path / "out"
    result = import_dataset(fmt, src, out, "pv-rgb", mapping=MAP)
    assert result.unmapped == {} and result.images == 3 and result.background_images == 1
    assert result.boxes == {"glass_breakage": 1, "soiling": 2}
    assert result.mapping == {"Soiling": "soiling", "broken glass": "glass_breakage", "soiling": "soiling"}
    ids = {c.name: c.id for c in taxonomy.classes("pv-rgb")}
    their_to_id = {
        "Soiling": ids["soiling"],
        "soiling": ids["soiling"],
        "broken glass": ids["glass_breakage"],
    }
    for name, (w, h, boxes) in SAMPLES.items():
        (img,) = list((out / "images").rglob(name))
        assert Image.open(img).size == (w, h)
        label = out / "labels" / img.relative_to(out / "images").with_suffix(".txt")
        xyxy, cls = labels_to_xyxy(read_labels(label, 6), w, h)
        expected = sorted((their_to_id[c], x0, y0, x1, y1) for c, x0, y0, x1, y1 in boxes)
        got = sorted((int(c), *b) for b, c in zip(xyxy.tolist(), cls, strict=True))
        assert [g[0] for g in got] == [e[0] for e in expected]
        np.testing.assert_allclose(
            [g[1:] for g in got], [e[1:] for e in expected] or np.zeros((0,)), atol=1.0
        )
    assert validate_dataset(out, progress=False).ok
    data = yaml.safe_load((out / "data.yaml").read_text())
    assert data["names"] == dict(enumerate(taxonomy.class_names("pv-rgb")))
    assert data["skyinspect_version"] == result.version == dataset_version(out, verify=True)


@pytest.mark.parametrize("fmt", ["coco", "voc", "yolo"])
def test_unmapped_classes_are_reported_with_counts(tmp_path, fmt):
    src = WRITERS[fmt](tmp_path / "src")
    with pytest.raises(UnmappedClassesError) as err:
        import_dataset(fmt, src, tmp_path / "out", "pv-rgb")
    assert err.value.counts == {"broken glass": 1}
    assert "'broken glass' (1 boxes)" in str(err.value)
    assert not (tmp_path / "out").exists()  # nothing written on failure
    result = import_dataset(fmt, src, tmp_path / "out", "pv-rgb", drop_unmapped=True)
    assert result.unmapped == {"broken glass": 1}
    assert result.boxes == {"soiling": 2}


def test_cli_import_fails_on_unmapped_and_reports_them(tmp_path):
    src = write_coco(tmp_path / "src")
    runner = CliRunner()
    res = runner.invoke(
        dataset,
        [
            "import",
            "--format",
            "coco",
            str(src),
            "--out",
            str(tmp_path / "o"),
            "--domain",
            "pv-rgb",
            "--json",
        ],
    )
    assert res.exit_code == 1
    assert json.loads(res.output[: res.output.rindex("}") + 1])["unmapped"] == {"broken glass": 1}
    assert "broken glass" in res.output
    map_file = tmp_path / "map.yaml"
    map_file.write_text("broken glass: null\n")
    res = runner.invoke(
        dataset,
        [
            "import",
            "--format",
            "coco",
            str(src),
            "--out",
            str(tmp_path / "o"),
            "--domain",
            "pv-rgb",
            "--map-file",
            str(map_file),
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    payload = json.loads(res.output)
    assert payload["dropped_by_map"] == {"broken glass": 1} and payload["unmapped"] == {}
    res = runner.invoke(
        dataset,
        [
            "import",
            "--format",
            "coco",
            str(src),
            "--out",
            str(tmp_path / "o2"),
            "--domain",
            "pv-rgb",
            "--map",
            "broken glass=glass_breakage",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "glass_breakage" in res.output


@pytest.mark.parametrize(
    ("names", "explicit", "expected"),
    [
        (
            ["soiling", "Snail Trails"],
            {},
            {"soiling": "soiling", "Snail Trails": "snail_trail"},
        ),  # display name
        (["GLASS-BREAKAGE"], {}, {"GLASS-BREAKAGE": "glass_breakage"}),
        (["dirt"], {"dirt": "soiling"}, {"dirt": "soiling"}),
        (["dirt", "car"], {"car": None}, {"car": None}),  # dirt unmapped (absent), car dropped on purpose
    ],
)
def test_resolve_class_map(names, explicit, expected):
    assert resolve_class_map(names, taxonomy.Domain.PV_RGB, explicit) == expected


def test_map_to_unknown_class_is_an_error():
    with pytest.raises(DatasetError, match=r"'hotspot' is not a pv-rgb class"):
        resolve_class_map(["x"], taxonomy.Domain.PV_RGB, {"x": "hotspot"})


def test_coco_boxes_outside_the_image_are_clipped_and_counted(tmp_path):
    samples = {
        "p1.jpg": (120, 80, [("soiling", -5.0, 10.0, 30.0, 90.0), ("soiling", 130.0, 0.0, 140.0, 10.0)])
    }
    samples_all = {**SAMPLES, **samples}
    src = write_coco(tmp_path / "src", samples_all)
    result = import_dataset("coco", src, tmp_path / "out", "pv-rgb", mapping=MAP)
    assert (result.clipped, result.degenerate_skipped) == (1, 1)
    xyxy, _ = labels_to_xyxy(read_labels(tmp_path / "out" / "labels" / "p1.txt"), 120, 80)
    np.testing.assert_allclose(xyxy, [[0, 10, 30, 80]], atol=1e-3)


def test_coco_missing_image_is_named(tmp_path):
    src = write_coco(tmp_path / "src")
    (tmp_path / "src" / "images" / "p2.jpg").unlink()
    with pytest.raises(DatasetError, match=r"image 'p2.jpg' not found"):
        import_dataset("coco", src, tmp_path / "out", "pv-rgb", mapping=MAP)


def test_imported_set_builds_into_a_training_set(tmp_path, make_flight):
    from datasets.build import build_dataset

    src = write_voc(tmp_path / "src")
    imported = tmp_path / "imported"
    import_dataset("voc", src, imported, "pv-rgb", mapping=MAP)
    flight = make_flight("a", frames=[(48, 32, [(1, 4, 4, 20, 20)])])
    result = build_dataset(
        [flight], tmp_path / "ds", import_sets=[imported], background_ratio=None, progress=False
    )
    assert sum(s.images for s in result.splits.values()) == 4
    assert validate_dataset(tmp_path / "ds", progress=False).ok

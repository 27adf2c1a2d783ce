"""Building a training set from flight folders: split by flight, tiling, thermal conversion, manifest, version."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import tifffile
import yaml
from PIL import Image

from datasets.build import TileOptions, assign_splits, build_dataset, parse_split
from datasets.version import dataset_version
from datasets.yolo import DatasetError, labels_to_xyxy, read_labels
from detection import taxonomy
from detection.model_meta import train_tile_of
from detection.radiometry import DEFAULT_WINDOW_C, counts_to_uint8


def _manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def _split_of_flight(out: Path) -> dict[str, set[str]]:
    """flight -> the splits its files are in, read from the manifest (sources) and file paths."""
    splits = defaultdict(set)
    for entry in _manifest(out)["files"]:
        splits[entry["source"]["flight"]].add(entry["path"].split("/")[1])
    return splits


def _frames(n: int, with_boxes: bool = True):
    return [(48, 32, [(i % 3, 4, 4, 20, 20)] if with_boxes else []) for i in range(n)]


@pytest.mark.parametrize("seed", [0, 1, 7])
@pytest.mark.parametrize("n_flights", [2, 3, 6])
def test_no_flight_lands_in_two_splits(make_flight, tmp_path, seed, n_flights):
    flights = [make_flight(f"f{k}", frames=_frames(1 + k % 3)) for k in range(n_flights)]
    out = tmp_path / f"ds{seed}"
    result = build_dataset(flights, out, seed=seed, progress=False)
    by_flight = _split_of_flight(out)
    assert set(by_flight) == {f.name for f in flights}
    assert all(len(s) == 1 for s in by_flight.values()), by_flight
    assert {"train", "val"} <= {next(iter(s)) for s in by_flight.values()}
    for split, stats in result.splits.items():  # the result's flight lists agree with the manifest
        assert sorted(stats.groups) == sorted(f for f, s in by_flight.items() if split in s)
    data = yaml.safe_load((out / "data.yaml").read_text())
    assert data["names"] == dict(enumerate(taxonomy.class_names("pv-rgb")))
    assert data["path"] == str(out.resolve())
    assert data["skyinspect_version"] == result.version == dataset_version(out)
    for split in ("train", "val", "test"):
        if split in result.splits:
            assert data[split] == f"images/{split}"
            assert len(list((out / "images" / split).iterdir())) == result.splits[split].images


def test_assign_splits_balances_image_counts():
    sizes = {f"f{i}": 10 for i in range(10)}
    assignment = assign_splits(sizes, {"train": 0.7, "val": 0.2, "test": 0.1}, seed=3)
    counts = defaultdict(int)
    for g, s in assignment.items():
        counts[s] += sizes[g]
    assert dict(counts) == {"train": 70, "val": 20, "test": 10}
    assert assignment == assign_splits(sizes, {"train": 0.7, "val": 0.2, "test": 0.1}, seed=3)


def test_one_flight_cannot_be_split_by_flight(make_flight, tmp_path):
    flight = make_flight("only", frames=_frames(4))
    with pytest.raises(DatasetError, match=r"cannot split by flight.*--val-flight.*--split-by image"):
        build_dataset([flight], tmp_path / "ds", progress=False)
    assert not (tmp_path / "ds").exists()


def test_split_by_image_warns_loudly(make_flight, tmp_path, caplog):
    flight = make_flight("only", frames=_frames(6))
    result = build_dataset([flight], tmp_path / "ds", split_by="image", progress=False)
    assert any("SPLIT BY IMAGE" in w for w in result.warnings)
    assert "SPLIT BY IMAGE" in caplog.text
    assert _split_of_flight(tmp_path / "ds")["only"] >= {"train", "val"}


def test_val_flight_pins_a_flight(make_flight, tmp_path):
    a, b, c = (make_flight(n, frames=_frames(2)) for n in ("a", "b", "c"))
    build_dataset([a, b], tmp_path / "ds", val_flights=[c], progress=False)
    assert _split_of_flight(tmp_path / "ds") == {"a": {"train"}, "b": {"train"}, "c": {"val"}}
    with pytest.raises(DatasetError, match="not both"):
        build_dataset([a, b], tmp_path / "ds2", val_flights=[c], split={"train": 0.5, "val": 0.5})


def test_flights_of_different_domains_are_refused(make_flight, tmp_path):
    a = make_flight("a", "pv-rgb")
    b = make_flight("b", "wind-rgb")
    with pytest.raises(DatasetError, match=r"share one domain.*a=pv-rgb, b=wind-rgb"):
        build_dataset([a, b], tmp_path / "ds", progress=False)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("train=0.7,val=0.2,test=0.1", {"train": 0.7, "val": 0.2, "test": 0.1}),
        ("train=8,val=2", {"train": 0.8, "val": 0.2}),
        ("train=0.8,val=0.2,test=0", {"train": 0.8, "val": 0.2}),
    ],
)
def test_parse_split(text, expected):
    assert parse_split(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["train=1", "train=0.7,dev=0.3", "train=x,val=1", "train=0.5,val=-1"])
def test_parse_split_rejects(text):
    with pytest.raises(ValueError, match="split"):
        parse_split(text)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"split": {"train": 0.8, "val": 0.0, "test": 0.2}}, "train and val need a share"),
        ({"split": {"train": 0.8, "holdout": 0.2}}, r"split names \['holdout'\] unknown"),
        ({"split_by": "frame"}, "split_by must be"),
        ({"background_ratio": -1.0}, "background ratio"),
    ],
)
def test_build_rejects_bad_arguments(make_flight, tmp_path, kwargs, message):
    flights = [make_flight(n, frames=_frames(1)) for n in ("a", "b")]
    with pytest.raises(DatasetError, match=message):
        build_dataset(flights, tmp_path / "ds", progress=False, **kwargs)
    assert not (tmp_path / "ds").exists()


def test_tiling_clips_boxes_at_tile_borders(make_flight, tmp_path):
    # 200x100 frame, tiles of 100 without overlap: a box over the border at x=100 is cut in two halves; a box
    # that shows only 5 of its 45 px in the left tile keeps its right part only; a box lies inside one tile.
    boxes = [(1, 90, 20, 110, 40), (2, 95, 60, 140, 80), (0, 150, 10, 170, 30)]
    a = make_flight("a", frames=[(200, 100, boxes)])
    b = make_flight("b", frames=[(200, 100, [(0, 10, 10, 30, 30)])])
    out = tmp_path / "ds"
    result = build_dataset(
        [a, b],
        out,
        val_flights=[b],
        tiles=TileOptions(size=100, overlap=0.0, min_visible=0.4, min_px=4),
        progress=False,
    )
    tiles = {}
    for entry in _manifest(out)["files"]:
        src = entry["source"]
        if src["flight"] == "a" and entry["path"].endswith(".txt"):
            width = src["tile"][2] - src["tile"][0]
            height = src["tile"][3] - src["tile"][1]
            xyxy, cls = labels_to_xyxy(read_labels(out / entry["path"]), width, height)
            tiles[tuple(src["tile"])] = sorted(
                (int(c), *np.round(b, 2).tolist()) for b, c in zip(xyxy, cls, strict=True)
            )
    assert tiles == {
        (0, 0, 100, 100): [(1, 90.0, 20.0, 100.0, 40.0)],
        (100, 0, 200, 100): [
            (0, 50.0, 10.0, 70.0, 30.0),
            (1, 0.0, 20.0, 10.0, 40.0),
            (2, 0.0, 60.0, 40.0, 80.0),
        ],
    }
    assert result.splits["train"].remnants_dropped == 1
    img = Image.open(next((out / "images" / "train").glob("a__DJI_0001__x100_y0.*")))
    assert img.size == (100, 100)
    assert train_tile_of(result.data_yaml) == 100  # the scale a model trained on it slices at (slice_tile)
    whole = build_dataset([a, b], tmp_path / "whole", val_flights=[b], progress=False)
    assert train_tile_of(whole.data_yaml) is None


def test_background_tiles_are_kept_at_the_given_ratio(make_flight, tmp_path):
    # one 400x100 frame = 4 tiles of 100: one with a defect, three background
    a = make_flight("a", frames=[(400, 100, [(0, 10, 10, 40, 40)])])
    b = make_flight("b", frames=[(100, 100, [(0, 10, 10, 40, 40)])])
    tiles = TileOptions(size=100, overlap=0.0)
    counts = {}
    for ratio in (0.0, 1.0, 2.0, None):
        out = tmp_path / f"ds{ratio}"
        res = build_dataset([a], out, val_flights=[b], tiles=tiles, background_ratio=ratio, progress=False)
        counts[ratio] = (res.splits["train"].images, res.splits["train"].background)
        assert len(list((out / "labels" / "train").iterdir())) == res.splits["train"].images
    assert counts == {0.0: (1, 0), 1.0: (2, 1), 2.0: (3, 2), None: (4, 3)}


def test_thermal_tiff_becomes_png_through_the_window(make_flight, tmp_path):
    a = make_flight("a", "pv-thermal", frames=[(40, 30, [(0, 5, 5, 15, 15)])])
    b = make_flight("b", "pv-thermal", frames=[(40, 30, [(1, 5, 5, 25, 15)])])
    out = tmp_path / "ds"
    build_dataset([a], out, val_flights=[b], progress=False)
    (png,) = (out / "images" / "train").iterdir()
    assert png.suffix == ".png"
    counts = tifffile.imread(a / "flight" / "DJI_0001_T.TIFF")
    pixels = np.asarray(Image.open(png))
    assert pixels.dtype == np.uint8 and pixels.shape == (30, 40)
    np.testing.assert_array_equal(pixels, counts_to_uint8(counts, DEFAULT_WINDOW_C))
    assert pixels[10, 10] == round(60 / 100 * 255)  # the 60 °C hotspot through the 0..100 °C window
    data = yaml.safe_load((out / "data.yaml").read_text())
    assert data["thermal_window_c"] == list(DEFAULT_WINDOW_C)
    assert data["names"][0] == "hotspot_single_cell"
    out2 = tmp_path / "ds2"
    build_dataset([a], out2, val_flights=[b], thermal_window_c=(20.0, 70.0), progress=False)
    (png2,) = (out2 / "images" / "train").iterdir()
    np.testing.assert_array_equal(np.asarray(Image.open(png2)), counts_to_uint8(counts, (20.0, 70.0)))
    assert yaml.safe_load((out2 / "data.yaml").read_text())["thermal_window_c"] == [20.0, 70.0]


def test_version_is_deterministic_and_follows_the_labels(make_flight, tmp_path):
    flights = [make_flight(n, frames=_frames(2)) for n in ("a", "b", "c")]
    v1 = build_dataset(flights, tmp_path / "one", seed=5, progress=False).version
    v2 = build_dataset(flights, tmp_path / "two", seed=5, progress=False).version
    assert v1 == v2 == dataset_version(tmp_path / "one") == dataset_version(tmp_path / "two" / "data.yaml")
    assert (tmp_path / "one" / "manifest.json").read_text() == (
        tmp_path / "two" / "manifest.json"
    ).read_text()
    label = flights[0] / "truth" / "labels" / "DJI_0001.txt"
    label.write_text(label.read_text().replace("0 ", "1 ", 1))
    v3 = build_dataset(flights, tmp_path / "three", seed=5, progress=False).version
    assert v3 != v1
    assert dataset_version(tmp_path / "one", verify=True) == v1


def test_output_folder_is_not_clobbered(make_flight, tmp_path):
    flights = [make_flight(n, frames=_frames(1)) for n in ("a", "b")]
    out = tmp_path / "ds"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(DatasetError, match="not empty"):
        build_dataset(flights, out, progress=False)
    with pytest.raises(DatasetError, match="also holds"):
        build_dataset(flights, out, overwrite=True, progress=False)
    assert (out / "notes.txt").read_text() == "mine"


def test_bad_flight_label_is_an_error_naming_the_file(make_flight, tmp_path):
    a = make_flight("a", frames=_frames(1))
    b = make_flight("b", frames=_frames(1))
    (a / "truth" / "labels" / "DJI_0001.txt").write_text("0 0.5 0.5 0.2\n")
    with pytest.raises(DatasetError, match=r"DJI_0001\.txt:1: expected 5 fields"):
        build_dataset([a, b], tmp_path / "ds", progress=False)


def test_import_set_is_remapped_by_name(make_flight, make_yolo_set, tmp_path):
    a = make_flight("a", frames=_frames(2))
    names = ["missing_module", "soiling"]  # ids 5 and 0 in the pv-rgb taxonomy
    reviewed = make_yolo_set(
        "reviewed", names, {"r1.jpg": (48, 32, [(0, 4, 4, 20, 20), (1, 20, 10, 40, 30)])}
    )
    out = tmp_path / "ds"
    build_dataset([a], out, import_sets=[reviewed], progress=False)
    entries = [e for e in _manifest(out)["files"] if e["source"]["flight"] == "import-reviewed"]
    (label,) = [e for e in entries if e["path"].endswith(".txt")]
    assert entries[0]["source"]["origin"] == "import"
    assert sorted(b.class_id for b in read_labels(out / label["path"])) == [0, 5]
    foreign = make_yolo_set("foreign", ["car"], {"x.jpg": (48, 32, [(0, 4, 4, 20, 20)])})
    with pytest.raises(DatasetError, match=r"\['car'\] are not in the pv-rgb taxonomy"):
        build_dataset([a], tmp_path / "ds2", import_sets=[foreign], progress=False)


def _generate_flight():
    """datasets.synth's generate_flight, or None while the renderer is not built."""
    import importlib

    for module in ("datasets.synth", "datasets.synth.generate"):
        try:
            fn = getattr(importlib.import_module(module), "generate_flight", None)
        except ImportError:
            continue
        if fn is not None:
            return fn
    return None


def test_build_from_generated_flights(tmp_path):
    """End to end on the real renderer: two tiny thermal flights → tiled set that validates, split by flight."""
    from datasets.gallery import make_gallery
    from datasets.validate import validate_dataset

    generate_flight = _generate_flight()
    if generate_flight is None:
        pytest.skip(
            "datasets.synth.generate_flight is not importable yet (the synthetic renderer is not built)"
        )
    roots = []
    for seed, name in enumerate(("g1", "g2")):
        try:
            summary = generate_flight(
                kind="pv-thermal",
                images=3,
                seed=seed,
                out=tmp_path / name,
                progress=False,
                image_size=(320, 256),
            )
        except TypeError as exc:
            pytest.skip(f"datasets.synth.generate_flight has another signature: {exc}")
        roots.append(Path(getattr(summary, "out", tmp_path / name)))
    out = tmp_path / "ds"
    result = build_dataset(roots, out, tiles=TileOptions(size=160), background_ratio=None, progress=False)
    assert all(len(s) == 1 for s in _split_of_flight(out).values())
    assert {"g1", "g2"} == {g for s in result.splits.values() for g in s.groups}
    report = validate_dataset(out, progress=False)
    assert report.ok, report.errors
    n_labels = sum(len(read_labels(p)) for p in (roots[0] / "truth" / "labels").glob("*.txt"))
    assert (n_labels == 0) or report.boxes > 0
    sheet = make_gallery(roots[0], tmp_path / "sheet.png", n=3, cell=160)
    assert Image.open(sheet.out).size == (sheet.width, sheet.height)

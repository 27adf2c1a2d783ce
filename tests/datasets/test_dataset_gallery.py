"""Contact sheets of YOLO sets and flight folders: size, boxes in taxonomy colours, thermal previews."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from datasets.build import build_dataset
from datasets.cli import dataset
from datasets.gallery import CAPTION_H, make_gallery
from datasets.yolo import DatasetError
from detection import taxonomy


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    v = hex_colour.lstrip("#")
    return int(v[0:2], 16), int(v[2:4], 16), int(v[4:6], 16)


@pytest.mark.parametrize(
    ("kind", "n", "cell", "size"),
    [
        # cols = ceil(sqrt(n)), rows = ceil(n / cols); height = rows * (cell + 18) + legend rows * 20, with
        # one legend entry per row under 400 px of width, two up to 600, three up to 800, four beyond
        ("pv-rgb", 4, 64, (128, 2 * 82 + 6 * 20)),
        ("wind-rgb", 3, 64, (128, 2 * 82 + 6 * 20)),
        ("pv-thermal", 3, 200, (400, 2 * 218 + 4 * 20)),  # 7 thermal classes, 2 per row: 4 legend rows
        ("pv-rgb", 16, 200, (400, 2 * 218 + 3 * 20)),  # only 4 frames: 2x2 cells
        ("wind-rgb", 9, 300, (600, 2 * 318 + 2 * 20)),
    ],
)
def test_gallery_of_a_flight_has_the_expected_size(make_flight, tmp_path, kind, n, cell, size):
    frames = [(96, 64, [(i % 3, 10, 10, 40, 30)]) for i in range(4)]
    flight = make_flight("f", kind, frames=frames, previews=kind == "pv-thermal")
    result = make_gallery(flight, tmp_path / "sheet.png", n=n, cell=cell)
    assert Image.open(tmp_path / "sheet.png").size == size == (result.width, result.height)
    assert result.samples == min(n, 4) and result.domain == kind


def test_boxes_are_drawn_in_taxonomy_colours(make_flight, tmp_path):
    # one 100x50 frame in a 100 px cell: scale 1, the frame is centred vertically (offset 25)
    flight = make_flight("f", "wind-rgb", frames=[(100, 50, [(1, 20, 10, 60, 40)])])
    make_gallery(flight, tmp_path / "sheet.png", n=1, cell=100)
    sheet = np.asarray(Image.open(tmp_path / "sheet.png").convert("RGB"))
    crack = _rgb(taxonomy.by_name("wind-rgb", "crack").colour)
    assert tuple(sheet[25 + 30, 20]) == crack  # left edge of the box, below its label text
    assert tuple(sheet[25 + 30, 59]) == crack  # right edge
    assert tuple(sheet[25 + 25, 40]) != crack  # inside the box: the image, not the outline
    assert tuple(sheet[5, 5]) == (24, 24, 24)  # above the letterboxed frame: sheet background
    legend_top = 100 + CAPTION_H
    assert (sheet[legend_top:, :] == crack).all(axis=2).any()  # the legend swatch of "crack"


def test_thermal_flight_uses_palette_previews(make_flight, tmp_path):
    flight = make_flight("f", "pv-thermal", frames=[(100, 50, [])], previews=True)
    make_gallery(flight, tmp_path / "with.png", n=1, cell=100)
    preview = np.asarray(Image.open(flight / "previews" / "DJI_0001_T.png").convert("RGB"))
    sheet = np.asarray(Image.open(tmp_path / "with.png").convert("RGB"))
    np.testing.assert_array_equal(sheet[25:75, 0:100], preview)
    (flight / "previews" / "DJI_0001_T.png").unlink()
    make_gallery(flight, tmp_path / "without.png", n=1, cell=100)
    grey = np.asarray(Image.open(tmp_path / "without.png").convert("RGB"))[25:75, 0:100]
    assert (grey[..., 0] == grey[..., 1]).all()  # TIFF mapped through the window: grey


def test_gallery_of_a_built_set(make_flight, tmp_path):
    flights = [make_flight(n, frames=[(96, 64, [(0, 10, 10, 40, 30)])] * 2) for n in ("a", "b")]
    build_dataset(flights, tmp_path / "ds", progress=False)
    res = CliRunner().invoke(
        dataset,
        [
            "gallery",
            str(tmp_path / "ds"),
            "--out",
            str(tmp_path / "s.png"),
            "--n",
            "4",
            "--cell",
            "64",
            "--seed",
            "3",
        ],
    )
    assert res.exit_code == 0, res.output
    assert Image.open(tmp_path / "s.png").size == (128, 2 * 82 + 6 * 20)


def test_gallery_of_nothing_is_an_error(tmp_path):
    (tmp_path / "empty" / "images").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no images"):
        make_gallery(tmp_path / "empty", tmp_path / "s.png")
    assert not Path(tmp_path / "s.png").exists()

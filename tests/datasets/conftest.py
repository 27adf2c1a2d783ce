"""Tiny flight folders and YOLO sets, written by the tests themselves (the synthetic flight contract)."""

from __future__ import annotations

import json
import sys
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# pytest's default (prepend) import mode puts tests/ on sys.path, where tests/datasets/ (no __init__.py) would be
# taken for the namespace package ``datasets`` and hide the real one (its __init__ and sub-packages such as
# datasets.synth). With the repository root first on sys.path the real, regular package wins.
_ROOT = str(Path(__file__).resolve().parents[2])
if sys.path[0] != _ROOT:
    sys.path.insert(0, _ROOT)
if getattr(sys.modules.get("datasets"), "__file__", "") is None:  # already imported as the namespace package
    for _name in [m for m in sys.modules if m == "datasets" or m.startswith("datasets.")]:
        del sys.modules[_name]

from detection.radiometry import celsius_to_counts  # noqa: E402

# A box: (class_id, x0, y0, x1, y1) in pixels.
Box = tuple[int, float, float, float, float]


def yolo_lines(boxes: Sequence[Box], width: int, height: int) -> str:
    return "".join(
        f"{c} {(x0 + x1) / 2 / width:.6f} {(y0 + y1) / 2 / height:.6f} {(x1 - x0) / width:.6f} "
        f"{(y1 - y0) / height:.6f}\n"
        for c, x0, y0, x1, y1 in boxes
    )


def rgb_frame(width: int, height: int, boxes: Sequence[Box], seed: int) -> np.ndarray:
    """(H, W, 3) uint8: a noisy grey-green ground with each box filled in a bright class colour."""
    rng = np.random.default_rng(seed)
    img = rng.integers(60, 110, size=(height, width, 3), dtype=np.uint8)
    for c, x0, y0, x1, y1 in boxes:
        img[int(y0) : int(y1), int(x0) : int(x1)] = (200, 40 + 30 * c, 40)
    return img


def thermal_counts(width: int, height: int, boxes: Sequence[Box], seed: int) -> np.ndarray:
    """(H, W) uint16 centikelvin: ~25 °C modules, boxes ~60 °C."""
    rng = np.random.default_rng(seed)
    temp = 25.0 + rng.normal(0, 0.5, size=(height, width))
    for _, x0, y0, x1, y1 in boxes:
        temp[int(y0) : int(y1), int(x0) : int(x1)] = 60.0
    return celsius_to_counts(temp)


FlightFactory = Callable[..., Path]


@pytest.fixture
def make_flight(tmp_path: Path) -> FlightFactory:
    """Write a flight folder: ``make_flight(name, kind, frames=[(w, h, boxes), ...])`` → its root ``OUT``."""

    def _make(
        name: str,
        kind: str = "pv-rgb",
        frames: Sequence[tuple[int, int, Sequence[Box]]] = ((64, 48, [(0, 10, 10, 30, 30)]),),
        previews: bool = False,
        base: Path | None = None,
    ) -> Path:
        import tifffile

        root = (base or tmp_path / "flights") / name
        (root / "flight").mkdir(parents=True)
        (root / "truth" / "labels").mkdir(parents=True)
        for i, (w, h, boxes) in enumerate(frames, start=1):
            seed = zlib.crc32(f"{name}/{i}".encode())
            if kind == "pv-thermal":
                stem = f"DJI_{i:04d}_T"
                counts = thermal_counts(w, h, boxes, seed)
                tifffile.imwrite(root / "flight" / f"{stem}.TIFF", counts)
                if previews:
                    (root / "previews").mkdir(exist_ok=True)
                    grey = (np.clip((counts.astype(np.float32) - 29315) / 10000, 0, 1) * 255).astype(np.uint8)
                    rgb = np.stack([grey, grey // 2, 255 - grey], axis=2)
                    Image.fromarray(rgb).save(root / "previews" / f"{stem}.png")
            else:
                stem = f"DJI_{i:04d}"
                Image.fromarray(rgb_frame(w, h, boxes, seed)).save(
                    root / "flight" / f"{stem}.JPG", quality=92
                )
            (root / "truth" / "labels" / f"{stem}.txt").write_text(yolo_lines(boxes, w, h), encoding="utf-8")
        (root / "synth.json").write_text(json.dumps({"kind": kind, "seed": 0, "images": len(frames)}))
        return root

    return _make


@pytest.fixture
def make_yolo_set(tmp_path: Path) -> Callable[..., Path]:
    """Write a YOLO set: ``make_yolo_set(name, names, {"train/a.jpg": (w, h, boxes), ...})`` → its root."""

    def _make(name: str, names: list[str] | None, images: dict[str, tuple[int, int, Sequence[Box]]]) -> Path:
        root = tmp_path / "sets" / name
        splits = sorted({Path(rel).parts[0] for rel in images if len(Path(rel).parts) > 1})
        for i, (rel, (w, h, boxes)) in enumerate(sorted(images.items())):
            img = root / "images" / rel
            img.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rgb_frame(w, h, boxes, i)).save(img, quality=92)
            lbl = (root / "labels" / rel).with_suffix(".txt")
            lbl.parent.mkdir(parents=True, exist_ok=True)
            lbl.write_text(yolo_lines(boxes, w, h), encoding="utf-8")
        if names is not None:
            import yaml

            data = {"path": str(root), "names": dict(enumerate(names))}
            data.update({s: f"images/{s}" for s in splits} or {"train": "images"})
            (root / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
        return root

    return _make

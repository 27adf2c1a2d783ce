"""Shared training fixtures: a tiny YOLO set of coloured shapes and a tiny model trained on it (once per session).

Import what you need in a test module (pytest registers imported fixtures)::

    from fixtures_training import shapes_dataset, tiny_model  # noqa: F401

or call the plain functions (:func:`make_shapes_dataset`, :func:`train_tiny_model`) yourself. The trained model is
memoised per pytest base temp dir, so several modules importing ``tiny_model`` still train only once.

The set uses the pv-rgb taxonomy (so models trained on it map to a domain), drawing only its first three classes:
``soiling`` (brown ellipse), ``glass_breakage`` (red rectangle), ``vegetation_shading`` (green triangle), on
grey noise. Objects are large and high-contrast so a nano model learns something in a few CPU epochs; the tests
check plumbing and agreement, never accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from detection import taxonomy

SHAPE_CLASSES = 3
IMAGE_W, IMAGE_H = 128, 96
"""Image size: equal to the training size on its long side, so no resampling happens anywhere (ultralytics' val
loader rounds resized sizes up, our letterbox rounds to nearest; at native size both are the identity)."""
TINY_EPOCHS = 30
TINY_IMGSZ = 128
_COLOURS_BGR = {0: (40, 80, 140), 1: (40, 40, 220), 2: (60, 170, 60)}


def draw_shape(img: np.ndarray, cls: int, x1: int, y1: int, x2: int, y2: int) -> None:
    """Draw class ``cls``'s shape filling the box (x1, y1, x2, y2) of a (H, W, 3) BGR image, in place."""
    colour = _COLOURS_BGR[cls]
    if cls == 0:
        cv2.ellipse(
            img, ((x1 + x2) // 2, (y1 + y2) // 2), ((x2 - x1) // 2, (y2 - y1) // 2), 0, 0, 360, colour, -1
        )
    elif cls == 1:
        cv2.rectangle(img, (x1, y1), (x2 - 1, y2 - 1), colour, -1)
    else:
        pts = np.array([[(x1 + x2) // 2, y1], [x2 - 1, y2 - 1], [x1, y2 - 1]], dtype=np.int32)
        cv2.fillPoly(img, [pts], colour)


def make_image(
    rng: np.random.Generator,
    w: int = IMAGE_W,
    h: int = IMAGE_H,
    shapes: tuple[int, int] = (1, 3),
    size_px: tuple[int, int] | None = None,
) -> tuple[np.ndarray, list[tuple]]:
    """One (h, w, 3) BGR image with ``shapes`` (min, max) non-overlapping shapes → (image, [(cls, x1, y1, x2, y2)…]).

    Shape sides are drawn from ``size_px`` (default w/8 .. 0.3 w, which at 128 px is what the tiny model learns).
    """
    img = np.clip(rng.normal(128, 18, (h, w, 3)), 0, 255).astype(np.uint8)
    boxes: list[tuple[int, int, int, int, int]] = []
    lo, hi = size_px or (max(8, w // 8), max(9, int(w * 0.3)))
    for _ in range(int(rng.integers(shapes[0], shapes[1] + 1))):
        for _attempt in range(20):
            bw, bh = int(rng.integers(lo, hi)), int(rng.integers(lo, hi))
            x1, y1 = int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh))
            box = (x1, y1, x1 + bw, y1 + bh)
            if all(box[2] <= b[1] or box[0] >= b[3] or box[3] <= b[2] or box[1] >= b[4] for b in boxes):
                cls = int(rng.integers(0, SHAPE_CLASSES))
                draw_shape(img, cls, *box)
                boxes.append((cls, *box))
                break
    return img, boxes


def make_shapes_dataset(
    root: Path, n_train: int = 24, n_val: int = 12, seed: int = 0, size: tuple[int, int] = (IMAGE_W, IMAGE_H)
) -> Path:
    """Write a YOLO set (``images/{train,val}``, ``labels/…``, ``data.yaml`` with relative paths) → data.yaml."""
    rng = np.random.default_rng(seed)
    width, height = size
    for split, n in (("train", n_train), ("val", n_val)):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            img, boxes = make_image(rng, width, height)
            stem = f"{split}_{i:03d}"
            cv2.imwrite(str(root / "images" / split / f"{stem}.png"), img)
            lines = [
                f"{c} {(x1 + x2) / 2 / width:.6f} {(y1 + y2) / 2 / height:.6f} "
                f"{(x2 - x1) / width:.6f} {(y2 - y1) / height:.6f}"
                for c, x1, y1, x2, y2 in boxes
            ]
            (root / "labels" / split / f"{stem}.txt").write_text("".join(ln + "\n" for ln in lines))
    data = {
        "path": ".",
        "train": "images/train",
        "val": "images/val",
        "names": taxonomy.class_names(taxonomy.Domain.PV_RGB),
        "domain": taxonomy.Domain.PV_RGB.value,
    }
    path = root / "data.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@dataclass(frozen=True)
class TinyModel:
    """A trained tiny model: its dataset, weights, run record and the ultralytics config dir used."""

    data_yaml: Path
    weights: Path
    record_path: Path
    record: dict
    config_dir: Path


_CACHE: dict[str, TinyModel] = {}


def train_tiny_model(work: Path, epochs: int = TINY_EPOCHS) -> TinyModel:
    """Build the shapes set in ``work/data`` and train yolo11n from its YAML on CPU (about a minute on 2 cores)."""
    from detection.offline import ensure_offline
    from detection.train import TrainConfig, train

    key = f"{work.resolve()}:{epochs}"
    if key in _CACHE:
        return _CACHE[key]
    config_dir = (
        ensure_offline()
    )  # $YOLO_CONFIG_DIR (tests/conftest.py points it into the session's temp dir)
    data_yaml = make_shapes_dataset(work / "data")
    cfg = TrainConfig(
        data=data_yaml,
        model="yolo11n",
        epochs=epochs,
        imgsz=TINY_IMGSZ,
        batch=4,
        seed=0,
        out=work / "runs",
        name="tiny",
        device="cpu",
        workers=0,
        # Few iterations from scratch: no warm-up, a high AdamW rate, no mosaic, validate only after the last epoch.
        overrides={
            "mosaic": 0.0,
            "close_mosaic": 0,
            "warmup_epochs": 0.0,
            "optimizer": "AdamW",
            "lr0": 0.01,
            "val": False,
        },
    )
    result = train(cfg, command=["pytest-fixture", "train_tiny_model"])
    model = TinyModel(data_yaml, result.weights, result.record_path, result.record, config_dir)
    _CACHE[key] = model
    return model


@pytest.fixture(scope="session")
def shapes_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh shapes set (24 train / 8 val images) → its data.yaml."""
    return make_shapes_dataset(tmp_path_factory.mktemp("shapes"))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> TinyModel:
    """yolo11n trained for a few epochs on the shapes set (shared by every test module that imports it)."""
    return train_tiny_model(tmp_path_factory.getbasetemp() / "tiny-model")

"""YOLO detection sets on disk: label files, ``data.yaml``, and finding the image/label pairs of a set.

Conventions (the ones ultralytics uses, so a set written here trains without changes):

- a label file holds one box per line, ``class_id cx cy w h``, coordinates normalised to the image (0..1);
- an image ``<root>/images/<split>/<stem>.<ext>`` has its labels in ``<root>/labels/<split>/<stem>.txt``
  (the last ``images`` path component is replaced by ``labels``);
- an image without a label file, or with an empty one, is a background image (legal, no objects);
- ``data.yaml`` holds ``path`` (the root), ``train``/``val``/``test`` (image folders relative to ``path``) and
  ``names`` (a list, or a dict ``{id: name}``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
SPLITS: tuple[str, ...] = ("train", "val", "test")
DATA_YAML = "data.yaml"


class DatasetError(ValueError):
    """A dataset (or one of its files) cannot be used; the message names the file and the reason."""


@dataclass(frozen=True)
class LabelLine:
    """One parsed label line: class id and the normalised box ``(cx, cy, w, h)``."""

    class_id: int
    cx: float
    cy: float
    w: float
    h: float


@dataclass(frozen=True)
class LabelProblem:
    """A line of a label file that is not a valid box: 1-based line number and the reason."""

    line: int
    code: str
    reason: str


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def label_path_for(image: Path) -> Path:
    """The label file of an image: the last ``images`` component of its path becomes ``labels``, suffix ``.txt``.

    Raises:
        DatasetError: the image path has no ``images`` component.
    """
    parts = list(image.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            return Path(*parts).with_suffix(".txt")
    raise DatasetError(f"{image}: not inside an 'images' folder, so its label file cannot be found")


def parse_label_text(text: str, n_classes: int | None = None) -> tuple[list[LabelLine], list[LabelProblem]]:
    """Parse a YOLO label file's text into boxes and problems (one per bad line); blank lines are skipped.

    ``n_classes`` (when known) bounds class ids to ``0..n_classes-1``. A box is out of range when a coordinate
    is outside 0..1 or the box's edges leave the image (tolerance 1e-4); degenerate when ``w <= 0`` or ``h <= 0``.
    """
    boxes: list[LabelLine] = []
    problems: list[LabelProblem] = []
    tol = 1e-4
    for number, raw in enumerate(text.splitlines(), start=1):
        fields_ = raw.split()
        if not fields_:
            continue
        if len(fields_) != 5:
            problems.append(
                LabelProblem(
                    number, "field_count", f"expected 5 fields 'class cx cy w h', got {len(fields_)}"
                )
            )
            continue
        try:
            values = [float(v) for v in fields_]
        except ValueError:
            problems.append(LabelProblem(number, "not_a_number", f"non-numeric field in {raw.strip()!r}"))
            continue
        if not all(math.isfinite(v) for v in values):
            problems.append(LabelProblem(number, "not_a_number", f"non-finite value in {raw.strip()!r}"))
            continue
        cls_f, cx, cy, w, h = values
        if cls_f != int(cls_f) or cls_f < 0:
            problems.append(
                LabelProblem(number, "unknown_class", f"class id {fields_[0]!r} is not an integer >= 0")
            )
            continue
        cls = int(cls_f)
        if n_classes is not None and cls >= n_classes:
            problems.append(
                LabelProblem(
                    number, "unknown_class", f"class id {cls} unknown (dataset has {n_classes} classes)"
                )
            )
            continue
        if w <= 0 or h <= 0:
            problems.append(
                LabelProblem(number, "degenerate_box", f"box has w={w:g} h={h:g}; both must be > 0")
            )
            continue
        if (
            min(cx, cy) < -tol
            or max(cx, cy, w, h) > 1 + tol
            or cx - w / 2 < -tol
            or cy - h / 2 < -tol
            or cx + w / 2 > 1 + tol
            or cy + h / 2 > 1 + tol
        ):
            problems.append(
                LabelProblem(
                    number,
                    "box_out_of_range",
                    f"box cx={cx:g} cy={cy:g} w={w:g} h={h:g} leaves the image (0..1)",
                )
            )
            continue
        boxes.append(LabelLine(cls, cx, cy, w, h))
    return boxes, problems


def read_labels(path: Path, n_classes: int | None = None) -> list[LabelLine]:
    """Read a label file strictly; a missing file means no boxes.

    Raises:
        DatasetError: a line is malformed (the message names the file, line and reason).
    """
    if not path.exists():
        return []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not UTF-8 text ({exc})") from exc
    boxes, problems = parse_label_text(text, n_classes)
    if problems:
        first = problems[0]
        more = f" (and {len(problems) - 1} more bad lines)" if len(problems) > 1 else ""
        raise DatasetError(f"{path}:{first.line}: {first.reason}{more}")
    return boxes


def labels_to_xyxy(boxes: Sequence[LabelLine], width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Normalised YOLO boxes → ``(N, 4)`` float64 pixel ``xyxy`` and ``(N,)`` int64 class ids."""
    if not boxes:
        return np.zeros((0, 4), dtype=np.float64), np.zeros((0,), dtype=np.int64)
    arr = np.array([[b.cx, b.cy, b.w, b.h] for b in boxes], dtype=np.float64)
    xyxy = np.stack(
        [
            (arr[:, 0] - arr[:, 2] / 2) * width,
            (arr[:, 1] - arr[:, 3] / 2) * height,
            (arr[:, 0] + arr[:, 2] / 2) * width,
            (arr[:, 1] + arr[:, 3] / 2) * height,
        ],
        axis=1,
    )
    return xyxy, np.array([b.class_id for b in boxes], dtype=np.int64)


def format_labels(xyxy: np.ndarray, class_ids: np.ndarray, width: int, height: int) -> str:
    """``(N, 4)`` pixel ``xyxy`` and ``(N,)`` class ids → YOLO label text (6 decimals, one box per line).

    Boxes are clipped to the image first.
    """
    lines = []
    for (x0, y0, x1, y1), cls in zip(np.asarray(xyxy, dtype=np.float64), np.asarray(class_ids), strict=True):
        x0, x1 = min(max(x0, 0.0), width), min(max(x1, 0.0), width)
        y0, y1 = min(max(y0, 0.0), height), min(max(y1, 0.0), height)
        cx, cy = (x0 + x1) / 2 / width, (y0 + y1) / 2 / height
        w, h = (x1 - x0) / width, (y1 - y0) / height
        lines.append(f"{int(cls)} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}")
    return "".join(line + "\n" for line in lines)


def names_list(names: Any, source: str) -> list[str]:
    """``names`` from a data.yaml (a list, or a dict ``{id: name}`` with ids 0..n-1) → list in id order.

    Raises:
        DatasetError: names missing or not a list / contiguous dict.
    """
    if isinstance(names, list):
        return [str(n) for n in names]
    if isinstance(names, dict):
        try:
            ids = sorted(int(k) for k in names)
        except (TypeError, ValueError) as exc:
            raise DatasetError(f"{source}: names keys must be integers, got {list(names)}") from exc
        if ids != list(range(len(ids))):
            raise DatasetError(f"{source}: names ids must be 0..{len(ids) - 1}, got {ids}")
        return [str(names[k] if k in names else names[str(k)]) for k in ids]
    raise DatasetError(
        f"{source}: 'names' must be a list or a mapping id -> name, got {type(names).__name__}"
    )


def read_data_yaml(path: Path) -> dict[str, Any]:
    """Load a data.yaml as a dict.

    Raises:
        DatasetError: unreadable or not a mapping.
    """
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read data.yaml ({exc})") from exc
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: data.yaml must be a mapping, got {type(data).__name__}")
    return data


def write_data_yaml(path: Path, data: dict[str, Any]) -> None:
    """Write a data.yaml with keys in the given order (``names`` as a block list)."""
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")


@dataclass
class YoloSet:
    """The files of a YOLO set as found on disk.

    ``images`` maps each image to the split it was found under (``train``/``val``/``test``, or ``""`` when the
    set has no split folders); ``orphan_labels`` are label files with no image.
    """

    root: Path
    names: list[str] | None
    images: dict[Path, str] = field(default_factory=dict)
    orphan_labels: list[Path] = field(default_factory=list)
    data_yaml: Path | None = None
    missing_split_dirs: list[tuple[str, Path]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def label_of(self, image: Path) -> Path:
        return label_path_for(image)


def _images_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and is_image(p))


def _split_of(image: Path, images_root: Path) -> str:
    rel = image.relative_to(images_root).parts
    return rel[0] if len(rel) > 1 and rel[0] in SPLITS else ""


def find_yolo_set(path: Path) -> YoloSet:
    """Find the images, labels and class names of a YOLO set.

    ``path`` is a ``data.yaml`` file, a folder holding one, or a folder with ``images/`` (and ``labels/``),
    flat or with ``train``/``val``/``test`` sub-folders. Without a data.yaml, ``names`` comes from a
    ``classes.txt`` next to the folders (one name per line) when present, else it is ``None``.

    Raises:
        DatasetError: nothing that looks like a YOLO set is there.
    """
    path = Path(path)
    yaml_path: Path | None = None
    if path.is_file() and path.suffix.lower() in {".yaml", ".yml"}:
        yaml_path = path
    elif (path / DATA_YAML).is_file():
        yaml_path = path / DATA_YAML
    elif path.is_dir():
        ymls = sorted(path.glob("*.yaml")) + sorted(path.glob("*.yml"))
        if len(ymls) == 1:
            yaml_path = ymls[0]
    if yaml_path is not None:
        return _from_yaml(yaml_path)
    if not path.is_dir():
        raise DatasetError(f"{path}: not a folder or data.yaml")
    images_root = path / "images"
    if not images_root.is_dir():
        raise DatasetError(f"{path}: no data.yaml and no images/ folder; not a YOLO set")
    names = None
    classes_txt = path / "classes.txt"
    if classes_txt.is_file():
        names = [ln.strip() for ln in classes_txt.read_text(encoding="utf-8").splitlines() if ln.strip()]
    found = YoloSet(root=path, names=names)
    for img in _images_under(images_root):
        found.images[img] = _split_of(img, images_root)
    found.orphan_labels = _orphans(path / "labels", found.images)
    return found


def _orphans(labels_root: Path, images: Iterable[Path]) -> list[Path]:
    if not labels_root.is_dir():
        return []
    expected = {label_path_for(img) for img in images}
    return sorted(
        p for p in labels_root.rglob("*.txt") if p.is_file() and p not in expected and p.name != "classes.txt"
    )


def _from_yaml(yaml_path: Path) -> YoloSet:
    data = read_data_yaml(yaml_path)
    if data.get("names") is None:
        raise DatasetError(f"{yaml_path}: 'names' is missing")
    names = names_list(data["names"], str(yaml_path))
    root = Path(str(data.get("path") or yaml_path.parent))
    if not root.is_absolute():
        root = (yaml_path.parent / root).resolve()
    if not root.is_dir():
        log.warning(
            "%s: path %s does not exist; using the data.yaml's folder %s", yaml_path, root, yaml_path.parent
        )
        root = yaml_path.parent
    found = YoloSet(root=root, names=names, data_yaml=yaml_path, extra=data)
    image_dirs: list[Path] = []
    for split in SPLITS:
        entry = data.get(split)
        if not entry:
            continue
        for item in entry if isinstance(entry, list) else [entry]:
            target = root / str(item)
            if target.is_file() and target.suffix == ".txt":  # a list of image paths
                for line in target.read_text(encoding="utf-8").splitlines():
                    if line.strip():
                        img = Path(line.strip())
                        img = img if img.is_absolute() else (root / img)
                        found.images.setdefault(img, split)
                continue
            if not target.is_dir():
                found.missing_split_dirs.append((split, target))
                continue
            image_dirs.append(target)
            for img in _images_under(target):
                found.images.setdefault(img, split)  # a folder listed twice keeps its first split
    orphans: set[Path] = set()
    for d in image_dirs:
        try:
            labels_dir = label_path_for(d / "x.jpg").parent
        except DatasetError:
            continue
        orphans.update(_orphans(labels_dir, found.images))
    found.orphan_labels = sorted(orphans)
    return found

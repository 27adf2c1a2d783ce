"""COCO detection JSON → :class:`~datasets.formats.ForeignImage` records (boxes in pixels, class names)."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from datasets.formats.common import ForeignBox, ForeignImage, locate_image
from datasets.yolo import DatasetError


def coco_json_path(src: Path) -> Path:
    """The COCO JSON of ``src``: the file itself, or the only ``*.json`` in the folder (or its annotations/).

    Raises:
        DatasetError: none or several JSON files.
    """
    if src.is_file():
        return src
    candidates = sorted(src.glob("*.json")) or sorted((src / "annotations").glob("*.json"))
    if len(candidates) != 1:
        raise DatasetError(
            f"{src}: expected one COCO *.json (in it or its annotations/), found {len(candidates)}"
        )
    return candidates[0]


def read_coco(src: Path, images_dir: Path | None = None) -> list[ForeignImage]:
    """Read a COCO detection file: every image (with or without annotations) and its boxes.

    ``bbox`` is ``[x, y, w, h]`` in pixels (top-left corner). Images are looked up in ``images_dir``, next to
    the JSON, in ``images/`` beside it, or one level up (``annotations/`` layouts).

    Raises:
        DatasetError: malformed JSON, an annotation of an unknown image or category, a missing image file.
    """
    path = coco_json_path(Path(src))
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        images = {int(im["id"]): im for im in data["images"]}
        categories = {int(c["id"]): str(c["name"]) for c in data.get("categories", [])}
        annotations = data.get("annotations", [])
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise DatasetError(f"{path}: not a COCO detection file ({exc!r})") from exc
    boxes: dict[int, list[ForeignBox]] = defaultdict(list)
    for n, ann in enumerate(annotations):
        where = f"{path}: annotations[{n}]"
        try:
            image_id, category_id = int(ann["image_id"]), int(ann["category_id"])
            x, y, w, h = (float(v) for v in ann["bbox"])
        except (KeyError, TypeError, ValueError) as exc:
            raise DatasetError(
                f"{where}: needs image_id, category_id and bbox [x, y, w, h] ({exc!r})"
            ) from exc
        if image_id not in images:
            raise DatasetError(f"{where}: image_id {image_id} is not in 'images'")
        if category_id not in categories:
            raise DatasetError(f"{where}: category_id {category_id} is not in 'categories'")
        boxes[image_id].append(
            ForeignBox(categories[category_id], (x, y, x + w, y + h), crowd=bool(ann.get("iscrowd", 0)))
        )
    roots = [
        r for r in (images_dir, path.parent, path.parent / "images", path.parent.parent) if r is not None
    ]
    out = []
    for image_id, im in sorted(images.items()):
        rel = str(im.get("file_name", ""))
        out.append(
            ForeignImage(
                path=locate_image(rel, roots, f"{path}: image {image_id}"),
                rel=Path(rel).as_posix().lstrip("/"),
                width=int(im.get("width") or 0),
                height=int(im.get("height") or 0),
                boxes=boxes.get(image_id, []),
            )
        )
    return out

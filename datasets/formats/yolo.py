"""A foreign YOLO set (its own class ids and names) → :class:`~datasets.formats.ForeignImage` records."""

from __future__ import annotations

from pathlib import Path

from datasets.formats.common import ForeignBox, ForeignImage
from datasets.sources import image_size
from datasets.yolo import DatasetError, find_yolo_set, label_path_for, labels_to_xyxy, read_labels


def read_yolo(src: Path, names: list[str] | None = None) -> list[ForeignImage]:
    """Read a YOLO set with its names (data.yaml, classes.txt, or ``names``); boxes become pixels.

    Images keep their path under ``images/`` (so ``train``/``val`` sub-folders survive the import).

    Raises:
        DatasetError: no class names anywhere, malformed label lines (file and line named).
    """
    found = find_yolo_set(Path(src))
    names = found.names or names
    if not names:
        raise DatasetError(f"{src}: no class names (no data.yaml 'names' and no classes.txt)")
    out = []
    for img in sorted(found.images):
        width, height = image_size(img)
        xyxy, cls = labels_to_xyxy(read_labels(label_path_for(img), len(names)), width, height)
        parts = img.relative_to(found.root).parts if img.is_relative_to(found.root) else (img.name,)
        rel = Path(*parts[1:]) if parts[0] == "images" and len(parts) > 1 else Path(*parts)
        boxes = [
            ForeignBox(names[int(c)], tuple(float(v) for v in b)) for b, c in zip(xyxy, cls, strict=True)
        ]
        out.append(ForeignImage(path=img, rel=rel.as_posix(), width=width, height=height, boxes=boxes))
    return out

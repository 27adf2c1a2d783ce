"""Pascal VOC XML → :class:`~datasets.formats.ForeignImage` records (boxes in pixels, class names)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from datasets.formats.common import ForeignBox, ForeignImage, locate_image
from datasets.yolo import DatasetError


def _text(node: ET.Element, tag: str, where: str) -> str:
    found = node.find(tag)
    if found is None or found.text is None:
        raise DatasetError(f"{where}: <{tag}> is missing")
    return found.text.strip()


def read_voc(src: Path, images_dir: Path | None = None) -> list[ForeignImage]:
    """Read a VOC set: ``src/Annotations/*.xml`` (or every ``*.xml`` under ``src``), one per image.

    VOC corners are 1-based inclusive pixel indices, so ``xmin..xmax`` covers pixels ``xmin-1 .. xmax`` in
    0-based edges: the box becomes ``(xmin - 1, ymin - 1, xmax, ymax)``. Images are looked up in
    ``images_dir``, ``src/JPEGImages``, next to the XML, in ``src`` and ``src/images``.

    Raises:
        DatasetError: malformed XML, missing fields, a missing image file.
    """
    src = Path(src)
    ann_dir = src / "Annotations"
    xmls = sorted(ann_dir.glob("*.xml")) if ann_dir.is_dir() else sorted(src.rglob("*.xml"))
    if not xmls:
        raise DatasetError(f"{src}: no VOC *.xml files (looked in Annotations/ and below)")
    out = []
    for xml_path in xmls:
        try:
            root = ET.parse(xml_path).getroot()
        except ET.ParseError as exc:
            raise DatasetError(f"{xml_path}: not valid XML ({exc})") from exc
        where = str(xml_path)
        filename = _text(root, "filename", where)
        size = root.find("size")
        width = int(float(_text(size, "width", where))) if size is not None else 0
        height = int(float(_text(size, "height", where))) if size is not None else 0
        boxes = []
        for k, obj in enumerate(root.findall("object")):
            ow = f"{where}: object {k + 1}"
            bnd = obj.find("bndbox")
            if bnd is None:
                raise DatasetError(f"{ow}: <bndbox> is missing")
            try:
                xmin, ymin, xmax, ymax = (float(_text(bnd, t, ow)) for t in ("xmin", "ymin", "xmax", "ymax"))
            except ValueError as exc:
                raise DatasetError(f"{ow}: non-numeric box corner ({exc})") from exc
            difficult = obj.find("difficult")
            boxes.append(
                ForeignBox(
                    _text(obj, "name", ow),
                    (xmin - 1.0, ymin - 1.0, xmax, ymax),
                    difficult=difficult is not None and (difficult.text or "0").strip() == "1",
                )
            )
        roots = [
            r for r in (images_dir, src / "JPEGImages", xml_path.parent, src, src / "images") if r is not None
        ]
        path_tag = root.find("path")
        try:
            image = locate_image(filename, roots, where)
        except DatasetError:
            if path_tag is None or not path_tag.text or not Path(path_tag.text).is_file():
                raise
            image = Path(path_tag.text)
        out.append(ForeignImage(path=image, rel=Path(filename).name, width=width, height=height, boxes=boxes))
    return out

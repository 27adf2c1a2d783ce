"""Contact sheets: random samples of a YOLO set or a flight folder with their boxes drawn, for a quick look.

Boxes are drawn in the taxonomy's colours, with display names on boxes large enough to carry one; a legend lists
the classes. Thermal frames are shown
through their palette preview (``previews/<stem>.png`` of a synthetic flight) when there is one, else mapped
through the model window to greyscale.

Sheet geometry (pixels): ``cols = ceil(sqrt(n))``, ``rows = ceil(n / cols)``; each cell is ``cell`` wide and
``cell + CAPTION_H`` high; a legend closes the sheet: ``legend_cols = clip(width // LEGEND_COL_W, 1, LEGEND_MAX_COLS)``
classes per row, ``LEGEND_ROW_H`` per row.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from datasets.sources import flight_images, image_size, load_pixels, open_flight
from datasets.yolo import DatasetError, find_yolo_set, label_path_for, labels_to_xyxy, read_labels
from detection import taxonomy
from detection.radiometry import DEFAULT_WINDOW_C

log = logging.getLogger(__name__)

CAPTION_H = 18
LABEL_MIN_BOX_PX = 24
"""Boxes narrower than this on the sheet get no text label, only their class colour."""
LEGEND_ROW_H = 20
LEGEND_COL_W = 200
LEGEND_MAX_COLS = 4
BACKGROUND = (24, 24, 24)
TEXT = (235, 235, 235)


@dataclass(frozen=True)
class _Sample:
    path: Path
    caption: str
    xyxy: np.ndarray
    class_ids: np.ndarray
    preview: Path | None = None


@dataclass(frozen=True)
class GalleryResult:
    out: Path
    width: int
    height: int
    samples: int
    domain: str | None

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "out": str(self.out)}


def legend_cols(width: int) -> int:
    return max(1, min(LEGEND_MAX_COLS, width // LEGEND_COL_W))


def sheet_size(n: int, cell: int, n_classes: int) -> tuple[int, int]:
    """``(width, height)`` of a sheet with ``n`` samples of ``cell`` px and a legend of ``n_classes`` entries."""
    cols = max(1, math.ceil(math.sqrt(n)))
    rows = max(1, math.ceil(n / cols))
    legend = math.ceil(n_classes / legend_cols(cols * cell)) * LEGEND_ROW_H
    return cols * cell, rows * (cell + CAPTION_H) + legend


def _samples_from_flight(path: Path) -> tuple[list[_Sample], taxonomy.Domain]:
    flight = open_flight(path)
    out = []
    for s in flight_images(flight):
        preview = flight.root / "previews" / f"{s.path.stem}.png"
        out.append(_Sample(s.path, s.path.name, s.xyxy, s.class_ids, preview if preview.is_file() else None))
    return out, flight.domain


def _samples_from_yolo(path: Path) -> tuple[list[_Sample], taxonomy.Domain | None, list[str] | None]:
    found = find_yolo_set(path)
    dom = None
    if found.names is not None:
        try:
            dom = taxonomy.domain_of_names(found.names)
        except taxonomy.TaxonomyError:
            dom = None
    n_classes = len(found.names) if found.names is not None else None
    out = []
    for img in sorted(found.images):
        width, height = image_size(img)
        xyxy, cls = labels_to_xyxy(read_labels(label_path_for(img), n_classes), width, height)
        split = found.images[img]
        out.append(_Sample(img, f"{split + '/' if split else ''}{img.name}", xyxy, cls))
    return out, dom, found.names


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # Pillow's bundled font: nothing downloaded
    except TypeError:  # older Pillow: fixed bitmap font
        return ImageFont.load_default()


def _fit(text: str, width: float, font: Any) -> str:
    """``text``, shortened with an ellipsis to fit ``width`` pixels."""
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "…") > width:
        text = text[:-1]
    return text + "…" if text else ""


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    v = hex_colour.lstrip("#")
    return int(v[0:2], 16), int(v[2:4], 16), int(v[4:6], 16)


def _style(
    dom: taxonomy.Domain | None, names: list[str] | None, class_id: int
) -> tuple[str, tuple[int, int, int]]:
    if dom is not None:
        c = taxonomy.by_id(dom, class_id)
        return c.display_name, _rgb(c.colour)
    palette = [(255, 59, 48), (255, 149, 0), (255, 204, 0), (52, 199, 89), (90, 200, 250), (175, 82, 222)]
    label = names[class_id] if names is not None and class_id < len(names) else str(class_id)
    return label, palette[class_id % len(palette)]


def _thumbnail(sample: _Sample, window_c: tuple[float, float]) -> np.ndarray:
    """(H, W, 3) uint8 RGB of the sample at full resolution."""
    from PIL import Image

    if sample.preview is not None:
        with Image.open(sample.preview) as im:
            arr = np.asarray(im.convert("RGB"))
        if arr.shape[:2] == (0, 0):
            raise DatasetError(f"{sample.preview}: empty preview")
        return arr
    arr = load_pixels(sample.path, window_c)
    return np.repeat(arr[:, :, None], 3, axis=2) if arr.ndim == 2 else arr


def make_gallery(
    path: Path,
    out: Path,
    n: int = 16,
    seed: int = 0,
    cell: int = 320,
    thermal_window_c: tuple[float, float] = DEFAULT_WINDOW_C,
) -> GalleryResult:
    """Draw ``n`` random samples of a YOLO set or a flight folder into a PNG contact sheet at ``out``.

    Images with boxes are sampled first; background images fill the rest when there are too few. The sheet
    has ``min(n, images available)`` cells (geometry in the module docstring).

    Raises:
        DatasetError: ``path`` is neither a flight folder nor a YOLO set, or holds no images.
    """
    from PIL import Image, ImageDraw

    if n < 1 or cell < 32:
        raise DatasetError(f"need n >= 1 and cell >= 32, got n={n} cell={cell}")
    path = Path(path)
    names: list[str] | None
    if (path / "flight").is_dir() or (path.name == "flight" and (path.parent / "truth").is_dir()):
        samples, dom = _samples_from_flight(path)
        names = taxonomy.class_names(dom)
    else:
        samples, dom, names = _samples_from_yolo(path)
    if not samples:
        raise DatasetError(f"{path}: no images to show")
    rng = np.random.default_rng(seed)
    positive = [s for s in samples if len(s.class_ids)]
    background = [s for s in samples if not len(s.class_ids)]
    chosen = [positive[i] for i in sorted(rng.permutation(len(positive))[:n])]
    if len(chosen) < n and background:
        chosen += [background[i] for i in sorted(rng.permutation(len(background))[: n - len(chosen)])]
    legend_classes = list(range(len(names))) if names is not None else []
    n = len(chosen)  # a set with fewer images than asked gives a smaller sheet
    width, height = sheet_size(n, cell, len(legend_classes))
    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font = _font(12)
    cols = max(1, math.ceil(math.sqrt(n)))
    for k, s in enumerate(chosen):
        img = _thumbnail(s, thermal_window_c)
        h, w = img.shape[:2]
        scale = min(cell / w, cell / h)
        tw, th = max(1, round(w * scale)), max(1, round(h * scale))
        thumb = Image.fromarray(img).resize((tw, th), Image.Resampling.BILINEAR)
        sw, sh = image_size(s.path) if s.preview is not None else (w, h)
        sx, sy = tw / sw, th / sh  # boxes are in the source frame's pixels (a preview may differ in size)
        ox = (k % cols) * cell + (cell - tw) // 2
        oy = (k // cols) * (cell + CAPTION_H) + (cell - th) // 2
        sheet.paste(thumb, (ox, oy))
        boxes = [
            ([ox + x0 * sx, oy + y0 * sy, ox + x1 * sx, oy + y1 * sy], *_style(dom, names, int(c)))
            for (x0, y0, x1, y1), c in zip(s.xyxy, s.class_ids, strict=True)
        ]
        for box, label, colour in boxes:  # labels first (above the box, or below it at the top edge) ...
            if box[2] - box[0] < LABEL_MIN_BOX_PX:
                continue  # small boxes: colour only (see the legend), so labels do not hide the image
            room = min((k % cols + 1) * cell - box[0] - 2, box[2] - box[0] + 40)
            at = (box[0], box[1] - 14) if box[1] - 14 >= oy else (box[0], box[3] + 2)
            text = _fit(label, room, font)
            draw.rectangle(draw.textbbox(at, text, font=font), fill=(0, 0, 0))  # readable on bright frames
            draw.text(at, text, fill=colour, font=font)
        for box, _, colour in boxes:  # ... then every outline on top, so no label hides a box
            draw.rectangle(box, outline=colour, width=2)
        cy = (k // cols) * (cell + CAPTION_H) + cell + 2
        draw.text(((k % cols) * cell + 4, cy), _fit(s.caption, cell - 8, font), fill=TEXT, font=font)
    n_cols = legend_cols(width)
    top = height - math.ceil(len(legend_classes) / n_cols) * LEGEND_ROW_H
    col_w = width // n_cols
    for k, c in enumerate(legend_classes):
        label, colour = _style(dom, names, c)
        x, y = (k % n_cols) * col_w + 6, top + (k // n_cols) * LEGEND_ROW_H + 4
        draw.rectangle([x, y, x + 12, y + 12], fill=colour)
        draw.text((x + 18, y), _fit(label, col_w - 28, font), fill=TEXT, font=font)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    log.info(
        "gallery of %d samples (%s) written to %s", len(chosen), dom.value if dom else "unknown domain", out
    )
    return GalleryResult(out, width, height, len(chosen), dom.value if dom else None)

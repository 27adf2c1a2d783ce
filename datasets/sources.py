"""Where training images come from: synthetic/annotated flight folders and imported YOLO sets.

A flight folder follows the synthetic flight contract (``skyinspect synth``)::

    OUT/flight/*.JPG | *_T.TIFF     the images (RGB JPEG, or uint16 centikelvin TIFF for pv-thermal)
    OUT/truth/labels/<stem>.txt     YOLO labels normalised to the full frame (taxonomy class ids)
    OUT/synth.json                  {"kind": <domain>, ...}

Either ``OUT`` or ``OUT/flight`` may be given. Both kinds of source become :class:`SourceImage` records (boxes in
frame pixels), which the builder tiles, converts and writes.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from datasets.yolo import DatasetError, find_yolo_set, label_path_for, labels_to_xyxy, read_labels
from detection import taxonomy
from detection.radiometry import counts_to_uint8

log = logging.getLogger(__name__)

RGB_SUFFIXES = frozenset({".jpg", ".jpeg", ".png"})
THERMAL_SUFFIXES = frozenset({".tif", ".tiff"})


@dataclass(frozen=True)
class SourceImage:
    """One source frame: its group (flight or imported set), file, size and boxes.

    ``xyxy`` is (N, 4) float64 in frame pixels, ``class_ids`` (N,) int64 taxonomy ids of ``domain``.
    """

    group: str
    kind: str
    """``flight`` or ``import``."""
    frame: str
    """The frame's path relative to its group's root (POSIX)."""
    path: Path
    width: int
    height: int
    xyxy: np.ndarray
    class_ids: np.ndarray

    @property
    def thermal(self) -> bool:
        return self.path.suffix.lower() in THERMAL_SUFFIXES


@dataclass(frozen=True)
class Flight:
    """A flight folder: its root (``OUT``), id (the root's folder name) and domain."""

    root: Path
    id: str
    domain: taxonomy.Domain

    @property
    def images_dir(self) -> Path:
        return self.root / "flight"

    @property
    def labels_dir(self) -> Path:
        return self.root / "truth" / "labels"


def open_flight(path: Path, domain: str | None = None) -> Flight:
    """Recognise a flight folder (``OUT`` or ``OUT/flight``) and read its domain from ``synth.json``.

    Raises:
        DatasetError: not a flight folder, or no domain (no synth.json ``kind`` and none given).
    """
    path = Path(path).resolve()
    root = path.parent if path.name == "flight" and (path.parent / "truth").is_dir() else path
    if not (root / "flight").is_dir():
        raise DatasetError(f"{path}: not a flight folder (expected {root / 'flight'}/ with the images)")
    kind: str | None = None
    synth = root / "synth.json"
    if synth.is_file():
        try:
            kind = json.loads(synth.read_text(encoding="utf-8")).get("kind")
        except (json.JSONDecodeError, AttributeError) as exc:
            raise DatasetError(f"{synth}: cannot read the flight's kind ({exc})") from exc
    if kind is None:
        if domain is None:
            raise DatasetError(f"{root}: no synth.json with 'kind'; give the domain (--domain)")
        kind = domain
    try:
        dom = taxonomy.domain(kind)
    except taxonomy.TaxonomyError as exc:
        raise DatasetError(f"{synth}: {exc}") from exc
    return Flight(root=root, id=root.name, domain=dom)


def image_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` of an image, read from its header.

    Raises:
        DatasetError: the file cannot be read as an image.
    """
    try:
        if path.suffix.lower() in THERMAL_SUFFIXES:
            import tifffile

            with tifffile.TiffFile(path) as tif:
                shape = tif.pages[0].shape
            return int(shape[1]), int(shape[0])
        from PIL import Image

        with Image.open(path) as im:
            return int(im.width), int(im.height)
    except Exception as exc:  # any decoder error means: not a usable image
        raise DatasetError(f"{path}: cannot read image ({exc})") from exc


def load_pixels(path: Path, thermal_window_c: tuple[float, float]) -> np.ndarray:
    """Decode an image for a training set: (H, W, 3) uint8 RGB, or (H, W) uint8 for a 16-bit thermal TIFF.

    A uint16 TIFF holds centikelvin (detection.radiometry) and is mapped through ``thermal_window_c``; an 8-bit
    TIFF is taken as it is.

    Raises:
        DatasetError: unreadable, or a TIFF of a type that is not uint16/uint8.
    """
    try:
        if path.suffix.lower() in THERMAL_SUFFIXES:
            import tifffile

            arr = tifffile.imread(path)
        else:
            from PIL import Image

            with Image.open(path) as im:
                arr = np.asarray(im.convert("RGB"))
    except Exception as exc:
        raise DatasetError(f"{path}: cannot read image ({exc})") from exc
    if arr.dtype == np.uint16:
        if arr.ndim != 2:
            raise DatasetError(f"{path}: thermal TIFF must be single-channel, got shape {arr.shape}")
        return counts_to_uint8(arr, thermal_window_c)
    if arr.dtype != np.uint8:
        raise DatasetError(f"{path}: expected uint8 or uint16 (centikelvin) pixels, got {arr.dtype}")
    return arr


def flight_images(flight: Flight) -> list[SourceImage]:
    """The labelled frames of a flight (pv-thermal: the TIFFs; RGB kinds: the JPEG/PNG files).

    A frame without a label file is a background frame (no defects).

    Raises:
        DatasetError: a label file is malformed (file and line named) or an image unreadable.
    """
    suffixes = THERMAL_SUFFIXES if flight.domain is taxonomy.Domain.PV_THERMAL else RGB_SUFFIXES
    n_classes = len(taxonomy.classes(flight.domain))
    paths = sorted(p for p in flight.images_dir.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
    if not paths:
        raise DatasetError(f"{flight.images_dir}: no {'/'.join(sorted(suffixes))} images for {flight.domain}")
    if not flight.labels_dir.is_dir():
        raise DatasetError(f"{flight.root}: no truth/labels/ folder; a flight needs labels to train on")
    out = []
    for path in paths:
        width, height = image_size(path)
        boxes = read_labels(flight.labels_dir / f"{path.stem}.txt", n_classes)
        xyxy, cls = labels_to_xyxy(boxes, width, height)
        out.append(SourceImage(flight.id, "flight", path.name, path, width, height, xyxy, cls))
    return out


def map_names_to_domain(names: list[str], dom: taxonomy.Domain, source: str) -> dict[int, int]:
    """Map a set's class ids onto the domain's ids by class name.

    Raises:
        DatasetError: a name is not in the domain's taxonomy (all such names are listed).
    """
    ours = {n: i for i, n in enumerate(taxonomy.class_names(dom))}
    unknown = [n for n in names if n not in ours]
    if unknown:
        raise DatasetError(
            f"{source}: class names {unknown} are not in the {dom.value} taxonomy "
            f"({', '.join(ours)}); convert the set with 'skyinspect dataset import --map ...' first"
        )
    return {i: ours[n] for i, n in enumerate(names)}


def import_set_images(path: Path, dom: taxonomy.Domain, group: str | None = None) -> list[SourceImage]:
    """The images of a YOLO set whose class names map onto ``dom`` (ids remapped by name).

    A set without names (no data.yaml / classes.txt) is taken to use the domain's ids already.

    Raises:
        DatasetError: names that are not in the taxonomy, malformed labels, unreadable images.
    """
    found = find_yolo_set(path)
    names = found.names if found.names is not None else taxonomy.class_names(dom)
    id_map = map_names_to_domain(names, dom, str(found.data_yaml or found.root))
    group = group or Path(path).resolve().name
    out = []
    for img in sorted(found.images):
        width, height = image_size(img)
        boxes = read_labels(label_path_for(img), len(names))
        xyxy, cls = labels_to_xyxy(boxes, width, height)
        cls = np.array([id_map[int(c)] for c in cls], dtype=np.int64)
        rel = img.relative_to(found.root).as_posix() if img.is_relative_to(found.root) else img.name
        out.append(SourceImage(group, "import", rel, img, width, height, xyxy, cls))
    if not out:
        raise DatasetError(f"{path}: the imported set has no images")
    return out

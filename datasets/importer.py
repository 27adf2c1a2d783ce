"""Import COCO / VOC / foreign YOLO annotations into a YOLO set with the taxonomy's class ids.

Class names are mapped onto the domain's taxonomy: explicitly (``--map their=our``, a YAML map file where
``their: null`` drops a class on purpose), else automatically when a name equals one of ours (compared in
lower case with spaces/hyphens as underscores, against the machine name and the display name). Names that map
to nothing are *unmapped*: they are counted per name and the import fails unless ``drop_unmapped`` is set — a
class is never lost without being reported.

Output: ``OUT/images/<rel>``, ``OUT/labels/<rel>.txt``, ``OUT/data.yaml`` (names of the domain), and
``OUT/manifest.json`` with a version, like a built set; ``dataset build --import-set OUT`` takes it in.
"""

from __future__ import annotations

import logging
import re
import shutil
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from datasets.formats.common import ForeignImage
from datasets.sources import image_size
from datasets.version import file_entry, make_manifest, write_manifest
from datasets.yolo import DATA_YAML, SPLITS, DatasetError, format_labels, write_data_yaml
from detection import taxonomy

log = logging.getLogger(__name__)

FORMATS = ("coco", "voc", "yolo")


class UnmappedClassesError(DatasetError):
    """Some source classes map onto no taxonomy class; ``counts`` holds boxes per unmapped name."""

    def __init__(self, counts: Mapping[str, int], domain: str):
        self.counts = dict(counts)
        listing = ", ".join(f"{name!r} ({n} boxes)" for name, n in sorted(self.counts.items()))
        super().__init__(
            f"classes not in the {domain} taxonomy: {listing}. Map them with --map 'their=our' or a --map-file, "
            f"or pass --drop-unmapped to leave those boxes out. Known classes: {', '.join(taxonomy.class_names(domain))}"
        )


@dataclass
class ImportResult:
    """What an import did: counts of images and boxes, what was mapped, dropped and clipped."""

    out: Path
    format: str
    domain: str
    version: str = ""
    images: int = 0
    background_images: int = 0
    boxes: dict[str, int] = field(default_factory=dict)
    mapping: dict[str, str | None] = field(default_factory=dict)
    unmapped: dict[str, int] = field(default_factory=dict)
    dropped_by_map: dict[str, int] = field(default_factory=dict)
    crowd_skipped: int = 0
    degenerate_skipped: int = 0
    clipped: int = 0

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["out"] = str(self.out)
        return d


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")


def parse_map_args(items: Sequence[str]) -> dict[str, str]:
    """``["their=our", ...]`` → dict.

    Raises:
        DatasetError: an item without ``=``.
    """
    out = {}
    for item in items:
        their, sep, our = item.partition("=")
        if not sep or not their.strip():
            raise DatasetError(f"--map {item!r}: expected 'their_name=our_name'")
        out[their.strip()] = our.strip()
    return out


def read_map_file(path: Path) -> dict[str, str | None]:
    """A YAML mapping ``their_name: our_name`` (``null`` or empty: drop that class on purpose).

    Raises:
        DatasetError: unreadable or not a mapping.
    """
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise DatasetError(f"{path}: cannot read map file ({exc})") from exc
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: a map file is a YAML mapping their_name: our_name")
    return {str(k): (str(v) if v not in (None, "") else None) for k, v in data.items()}


def resolve_class_map(
    their_names: Sequence[str], dom: taxonomy.Domain, explicit: Mapping[str, str | None]
) -> dict[str, str | None]:
    """Map every source class name to a taxonomy name (``None``: dropped on purpose); unmapped names are absent.

    Raises:
        DatasetError: an explicit target that is not a class of ``dom``.
    """
    ours = taxonomy.classes(dom)
    by_norm: dict[str, str] = {}
    for c in ours:
        by_norm.setdefault(_norm(c.name), c.name)
        by_norm.setdefault(_norm(c.display_name), c.name)
    known = {c.name for c in ours}
    for their, our in explicit.items():
        if our is not None and our not in known:
            raise DatasetError(
                f"--map {their}={our}: {our!r} is not a {dom.value} class; known: {', '.join(sorted(known))}"
            )
    out: dict[str, str | None] = {}
    for name in their_names:
        if name in explicit:
            out[name] = explicit[name]
        elif _norm(name) in by_norm:
            out[name] = by_norm[_norm(name)]
    return out


def read_foreign(fmt: str, src: Path, images_dir: Path | None = None) -> list[ForeignImage]:
    """Dispatch to the reader of ``fmt`` (coco, voc, yolo).

    Raises:
        DatasetError: unknown format, or the reader's errors.
    """
    if fmt == "coco":
        from datasets.formats.coco import read_coco

        return read_coco(src, images_dir)
    if fmt == "voc":
        from datasets.formats.voc import read_voc

        return read_voc(src, images_dir)
    if fmt == "yolo":
        from datasets.formats.yolo import read_yolo

        return read_yolo(src)
    raise DatasetError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")


def import_dataset(
    fmt: str,
    src: Path,
    out: Path,
    domain: str,
    *,
    mapping: Mapping[str, str | None] | None = None,
    drop_unmapped: bool = False,
    images_dir: Path | None = None,
    keep_crowd: bool = False,
    overwrite: bool = False,
) -> ImportResult:
    """Convert a COCO / VOC / YOLO set at ``src`` into a YOLO set in ``out`` with ``domain``'s class ids.

    Boxes reaching outside their image are clipped (counted); boxes with no area are skipped (counted); COCO
    crowd boxes are skipped unless ``keep_crowd`` (counted). Images without boxes become background images.
    Nothing is written when the import fails.

    Raises:
        UnmappedClassesError: classes that map to nothing, unless ``drop_unmapped``.
        DatasetError: unreadable source, unknown --map target, output folder in the way.
    """
    dom = taxonomy.domain(domain)
    out = Path(out).resolve()
    images = read_foreign(fmt, Path(src), images_dir)
    counts = Counter(b.name for im in images for b in im.boxes)
    class_map = resolve_class_map(sorted(counts), dom, mapping or {})
    result = ImportResult(out=out, format=fmt, domain=dom.value, mapping=dict(sorted(class_map.items())))
    result.unmapped = {n: c for n, c in sorted(counts.items()) if n not in class_map}
    result.dropped_by_map = {
        n: c for n, c in sorted(counts.items()) if n in class_map and class_map[n] is None
    }
    if result.unmapped:
        if not drop_unmapped:
            raise UnmappedClassesError(result.unmapped, dom.value)
        log.warning("dropping unmapped classes: %s", result.unmapped)
    rels = Counter(im.rel for im in images)
    clash = sorted(r for r, n in rels.items() if n > 1)
    if clash:
        raise DatasetError(
            f"{src}: several images share the path(s) {clash[:5]}; cannot import them side by side"
        )
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise DatasetError(f"{out}: output folder exists and is not empty (use --overwrite)")
        shutil.rmtree(out)
    ids = {c.name: c.id for c in taxonomy.classes(dom)}
    files: list[dict[str, Any]] = []
    box_counts: Counter[str] = Counter()
    for im in images:
        width, height = im.width, im.height
        if width <= 0 or height <= 0:
            width, height = image_size(im.path)
        xyxy, cls = [], []
        for b in im.boxes:
            target = class_map.get(b.name)
            if target is None:
                continue
            if b.crowd and not keep_crowd:
                result.crowd_skipped += 1
                continue
            x0, y0, x1, y1 = b.xyxy
            cx0, cy0 = min(max(x0, 0.0), width), min(max(y0, 0.0), height)
            cx1, cy1 = min(max(x1, 0.0), width), min(max(y1, 0.0), height)
            if cx1 - cx0 <= 0 or cy1 - cy0 <= 0:
                result.degenerate_skipped += 1
                continue
            if (cx0, cy0, cx1, cy1) != (x0, y0, x1, y1):
                result.clipped += 1
            xyxy.append((cx0, cy0, cx1, cy1))
            cls.append(ids[target])
            box_counts[target] += 1
        img_out = out / "images" / im.rel
        lbl_out = (out / "labels" / im.rel).with_suffix(".txt")
        img_out.parent.mkdir(parents=True, exist_ok=True)
        lbl_out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(im.path, img_out)
        lbl_out.write_text(
            format_labels(np.array(xyxy, dtype=np.float64).reshape(-1, 4), np.array(cls), width, height),
            encoding="utf-8",
        )
        source = {"format": fmt, "file": im.rel}
        files += [file_entry(out, img_out, source), file_entry(out, lbl_out, source)]
        result.images += 1
        result.background_images += not xyxy
    result.boxes = dict(sorted(box_counts.items()))
    names = taxonomy.class_names(dom)
    manifest = make_manifest(
        out,
        files,
        names,
        extra={"domain": dom.value, "taxonomy_version": taxonomy.TAXONOMY_VERSION},
        build={"import": {"format": fmt, "src": str(Path(src).resolve()), "mapping": result.mapping}},
    )
    write_manifest(out, manifest)
    result.version = manifest["version"]
    data: dict[str, Any] = {"path": str(out)}
    split_dirs = [s for s in SPLITS if (out / "images" / s).is_dir()]
    if split_dirs:
        data.update({s: f"images/{s}" for s in split_dirs})
    else:
        data["train"] = "images"
    data.update(
        {
            "names": dict(enumerate(names)),
            "domain": dom.value,
            "taxonomy_version": taxonomy.TAXONOMY_VERSION,
            "skyinspect_version": manifest["version"],
        }
    )
    write_data_yaml(out / DATA_YAML, data)
    log.info("imported %d images (%s) into %s, version %s", result.images, result.boxes, out, result.version)
    return result

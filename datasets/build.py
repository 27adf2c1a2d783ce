"""Build a YOLO training set from flight folders (and imported, reviewed YOLO sets), split by flight.

Output::

    OUT/data.yaml        path, train, val, [test], names (the domain's taxonomy), domain, skyinspect_version,
                         [thermal_window_c]
    OUT/images/{train,val,test}/   OUT/labels/{train,val,test}/
    OUT/manifest.json    every file with sha256 and source (flight, frame, tile window); version = its hash

Every image of a flight (or of an imported set) goes to the same split, so near-duplicate neighbouring frames
never sit on both sides of the train/val line. Thermal 16-bit TIFFs become 8-bit PNGs through the model window.
"""

from __future__ import annotations

import logging
import math
import re
import shutil
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from datasets.sources import SourceImage, flight_images, import_set_images, load_pixels, open_flight
from datasets.tiling import clip_boxes, tile_windows
from datasets.version import MANIFEST, file_entry, make_manifest, write_manifest
from datasets.yolo import DATA_YAML, SPLITS, DatasetError, format_labels, write_data_yaml
from detection import taxonomy
from detection.radiometry import DEFAULT_WINDOW_C

log = logging.getLogger(__name__)

DEFAULT_SPLIT: dict[str, float] = {"train": 0.7, "val": 0.2, "test": 0.1}
JPEG_QUALITY = 95


@dataclass(frozen=True)
class TileOptions:
    """How large frames are cut into training tiles (``size=None``: keep whole frames)."""

    size: int | None = None
    overlap: float = 0.2
    min_visible: float = 0.4
    min_px: float = 4.0


@dataclass
class SplitStats:
    groups: list[str] = field(default_factory=list)
    images: int = 0
    boxes: int = 0
    background: int = 0
    background_skipped: int = 0
    ambiguous_skipped: int = 0
    remnants_dropped: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class BuildResult:
    """What a build produced: where, its version, and per-split counts."""

    out: Path
    data_yaml: Path
    manifest: Path
    version: str
    domain: str
    splits: dict[str, SplitStats]
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "data_yaml": str(self.data_yaml),
            "manifest": str(self.manifest),
            "version": self.version,
            "domain": self.domain,
            "splits": {k: v.as_dict() for k, v in self.splits.items()},
            "warnings": list(self.warnings),
        }


def parse_split(text: str) -> dict[str, float]:
    """``"train=0.7,val=0.2,test=0.1"`` → fractions (normalised to sum 1).

    Raises:
        ValueError: unknown split name, non-number, negative, no train or val share.
    """
    fractions: dict[str, float] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or name not in SPLITS:
            raise ValueError(
                f"split {part.strip()!r}: expected name=fraction with name in {', '.join(SPLITS)}"
            )
        try:
            fractions[name] = float(value)
        except ValueError:
            raise ValueError(f"split {part.strip()!r}: {value!r} is not a number") from None
        if fractions[name] < 0:
            raise ValueError(f"split {part.strip()!r}: fraction must be >= 0")
    return normalise_split(fractions)


def normalise_split(fractions: Mapping[str, float]) -> dict[str, float]:
    """Split shares → shares of the splits that have one, summing to 1, in train/val/test order.

    Raises:
        ValueError: an unknown split name, a negative share, or no share for train or val.
    """
    unknown = sorted(set(fractions) - set(SPLITS))
    if unknown:
        raise ValueError(f"split names {unknown} unknown; use {', '.join(SPLITS)}")
    if any(v < 0 for v in fractions.values()):
        raise ValueError(f"split shares must be >= 0, got {dict(fractions)}")
    if fractions.get("train", 0) <= 0 or fractions.get("val", 0) <= 0:
        raise ValueError(f"split {dict(fractions)}: train and val need a share > 0")
    total = float(sum(fractions.values()))
    return {k: fractions[k] / total for k in SPLITS if fractions.get(k, 0.0) > 0}


def assign_splits(sizes: Mapping[str, int], fractions: Mapping[str, float], seed: int) -> dict[str, str]:
    """Assign whole groups (flights) to splits so that image counts approach ``fractions``.

    Groups are shuffled with ``seed``; each split with a share first gets one group (train first, then val,
    then test) while groups remain, then every further group goes to the split furthest below its target.
    Deterministic for the same sizes, fractions and seed.

    Raises:
        DatasetError: fewer than two groups (a split by flight needs a flight for train and one for val).
    """
    names = sorted(sizes)
    if len(names) < 2:
        raise DatasetError(
            f"cannot split by flight with {len(names)} flight(s) ({', '.join(names) or 'none'}): give a second "
            "flight with --val-flight, or use --split-by image (frames of one flight then land in several "
            "splits, which leaks near-duplicates into validation)"
        )
    order = list(np.random.default_rng(seed).permutation(len(names)))
    queue = [names[i] for i in order]
    total = float(sum(sizes.values())) or 1.0
    counts = dict.fromkeys(fractions, 0)
    out: dict[str, str] = {}
    for split in [s for s in SPLITS if s in fractions]:
        if queue:
            group = queue.pop(0)
            out[group] = split
            counts[split] += sizes[group]
    for group in queue:
        deficit = {s: fractions[s] * total - counts[s] for s in fractions}
        split = max(fractions, key=lambda s: (deficit[s], -SPLITS.index(s)))
        out[group] = split
        counts[split] += sizes[group]
    return out


@dataclass(frozen=True)
class _Item:
    src: SourceImage
    window: tuple[int, int, int, int] | None
    xyxy: np.ndarray
    class_ids: np.ndarray
    dropped: int


def _items(src: SourceImage, tiles: TileOptions) -> list[_Item]:
    if tiles.size is None:
        clipped = clip_boxes(src.xyxy, src.class_ids, (0, 0, src.width, src.height), 0.0, 0.0)
        return [_Item(src, None, clipped.xyxy, clipped.class_ids, 0)]
    out = []
    for window in tile_windows(src.width, src.height, tiles.size, tiles.overlap):
        clipped = clip_boxes(src.xyxy, src.class_ids, window, tiles.min_visible, tiles.min_px)
        out.append(_Item(src, window, clipped.xyxy, clipped.class_ids, clipped.dropped))
    return out


_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _stem(item: _Item) -> str:
    frame = Path(item.src.frame).with_suffix("")
    parts = [p for p in frame.parts if p not in {"images", *SPLITS}] or [frame.name]
    stem = _SAFE.sub("_", f"{item.src.group}__{'_'.join(parts)}")
    if item.window is not None:
        stem += f"__x{item.window[0]}_y{item.window[1]}"
    return stem


def _suffix(item: _Item) -> str:
    if item.src.thermal:
        return ".png"
    suffix = item.src.path.suffix.lower()
    return ".jpg" if suffix == ".jpeg" else suffix


def _prepare_out(out: Path, overwrite: bool) -> None:
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise DatasetError(
                f"{out}: output folder exists and is not empty (use --overwrite to replace a set)"
            )
        for name in ("images", "labels"):
            if (out / name).is_dir():
                shutil.rmtree(out / name)
        for name in (DATA_YAML, MANIFEST):
            (out / name).unlink(missing_ok=True)
        left = sorted(p.name for p in out.iterdir())
        if left:
            raise DatasetError(
                f"{out}: --overwrite replaces only a dataset, but the folder also holds {left}"
            )
    out.mkdir(parents=True, exist_ok=True)


def _collect(
    flights: Sequence[Path],
    val_flights: Sequence[Path],
    test_flights: Sequence[Path],
    import_sets: Sequence[Path],
    domain: str | None,
) -> tuple[taxonomy.Domain, dict[str, list[SourceImage]], dict[str, str]]:
    """Open every source; return the domain, images per group, and fixed splits of --val/--test flights."""
    opened = []
    fixed: dict[str, str] = {}
    for paths, split in ((flights, None), (val_flights, "val"), (test_flights, "test")):
        for p in paths:
            flight = open_flight(p, domain)
            if split is not None:
                fixed[flight.id] = split
            if all(f.root != flight.root for f in opened):
                opened.append(flight)
    ids = [f.id for f in opened]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise DatasetError(f"flight folders must have distinct names; used twice: {dupes}")
    domains = {f.domain for f in opened}
    if domain is not None:
        domains.add(taxonomy.domain(domain))
    if len(domains) > 1:
        listing = ", ".join(f"{f.id}={f.domain.value}" for f in opened)
        raise DatasetError(
            f"all flights of a dataset must share one domain; got {sorted(d.value for d in domains)} ({listing})"
            + (f", --domain {domain}" if domain else "")
        )
    if not domains:
        raise DatasetError("no domain: give --flight folders or --domain with --import-set")
    dom = domains.pop()
    groups: dict[str, list[SourceImage]] = {}
    for f in opened:
        groups[f.id] = flight_images(f)
    for p in import_sets:
        name = "import-" + Path(p).resolve().name
        if name in groups:
            raise DatasetError(f"imported sets must have distinct folder names; {p} repeats {name}")
        groups[name] = import_set_images(Path(p), dom, group=name)
    return dom, groups, fixed


def build_dataset(
    flights: Sequence[Path],
    out: Path,
    *,
    import_sets: Sequence[Path] = (),
    split: Mapping[str, float] | None = None,
    val_flights: Sequence[Path] = (),
    test_flights: Sequence[Path] = (),
    split_by: str = "flight",
    tiles: TileOptions | None = None,
    background_ratio: float | None = 0.25,
    seed: int = 0,
    domain: str | None = None,
    thermal_window_c: tuple[float, float] = DEFAULT_WINDOW_C,
    overwrite: bool = False,
    progress: bool = True,
) -> BuildResult:
    """Build a YOLO training set in ``out`` (see module docstring).

    Args:
        flights: flight folders (``OUT`` or ``OUT/flight``), split among train/val/test by ``split``.
        import_sets: YOLO sets whose class names map onto the domain; each is one group, like a flight.
        split: fractions per split (default 0.7/0.2/0.1); not allowed together with ``val_flights``.
        val_flights, test_flights: flights pinned to val / test; every other group then goes to train.
        split_by: ``flight`` (default) or ``image`` (frames shuffled individually: leaks; a warning is logged).
        tiles: cut frames into tiles (``TileOptions.size``); ``None`` keeps whole frames.
        background_ratio: per split, keep at most ``ceil(ratio × images with boxes)`` images without boxes
            (chosen with ``seed``); ``None`` keeps all. Tiles that lost a box remnant are never kept as background.
        thermal_window_c: the °C window mapping 16-bit thermal to 8-bit (recorded in data.yaml).

    Raises:
        DatasetError: mixed domains, too few flights to split, bad labels, an output folder in the way.
    """
    tiles = tiles or TileOptions()
    out = Path(out).resolve()
    if split is not None and (val_flights or test_flights):
        raise DatasetError(
            "give either a split (--split) or pinned flights (--val-flight/--test-flight), not both"
        )
    if split_by not in {"flight", "image"}:
        raise DatasetError(f"split_by must be 'flight' or 'image', got {split_by!r}")
    if split_by == "image" and (val_flights or test_flights):
        raise DatasetError(
            "--split-by image and pinned flights (--val-flight/--test-flight) exclude each other"
        )
    try:
        split = normalise_split(split) if split is not None else None
    except ValueError as exc:
        raise DatasetError(str(exc)) from exc
    if background_ratio is not None and background_ratio < 0:
        raise DatasetError(f"background ratio must be >= 0, got {background_ratio}")
    dom, groups, fixed = _collect(flights, val_flights, test_flights, import_sets, domain)
    warnings: list[str] = []

    # -- which split each source image goes to
    assignment: dict[tuple[str, str], str] = {}
    if fixed:
        for g, images in groups.items():
            for s in images:
                assignment[(g, s.frame)] = fixed.get(g, "train")
        if "train" not in assignment.values():
            raise DatasetError(
                "every flight is pinned to val/test; at least one flight must remain for train"
            )
    elif split_by == "flight":
        by_group = assign_splits({g: len(v) for g, v in groups.items()}, split or DEFAULT_SPLIT, seed)
        for g, images in groups.items():
            for s in images:
                assignment[(g, s.frame)] = by_group[g]
    else:
        msg = (
            "SPLIT BY IMAGE: frames of the same flight land in train and val; neighbouring frames overlap, so "
            "validation scores will be optimistic. Use at least two flights and split by flight for real numbers."
        )
        log.warning(msg)
        warnings.append(msg)
        every = sorted((g, s.frame) for g, v in groups.items() for s in v)
        fake_sizes = {f"{g}\x00{f}": 1 for g, f in every}
        by_image = assign_splits(fake_sizes, split or DEFAULT_SPLIT, seed)
        for key, sp in by_image.items():
            g, f = key.split("\x00", 1)
            assignment[(g, f)] = sp

    # -- items (frames or tiles) per split, background selection
    per_split: dict[str, list[_Item]] = defaultdict(list)
    stats: dict[str, SplitStats] = {}
    for g, images in sorted(groups.items()):
        for s in images:
            sp = assignment[(g, s.frame)]
            st = stats.setdefault(sp, SplitStats())
            if g not in st.groups:
                st.groups.append(g)
            per_split[sp].extend(_items(s, tiles))
    for sp in SPLITS:
        if sp not in per_split:
            continue
        st = stats[sp]
        items = per_split[sp]
        positive = [it for it in items if len(it.class_ids)]
        background = [it for it in items if not len(it.class_ids) and it.dropped == 0]
        st.ambiguous_skipped = sum(1 for it in items if not len(it.class_ids) and it.dropped > 0)
        st.remnants_dropped = sum(it.dropped for it in items)
        keep_bg = background
        if background_ratio is not None:
            n_keep = min(len(background), math.ceil(background_ratio * len(positive)))
            rng = np.random.default_rng([seed, SPLITS.index(sp)])
            chosen = sorted(rng.choice(len(background), size=n_keep, replace=False)) if n_keep else []
            keep_bg = [background[i] for i in chosen]
        st.background = len(keep_bg)
        st.background_skipped = len(background) - len(keep_bg)
        per_split[sp] = positive + keep_bg
        st.images = len(per_split[sp])
        st.boxes = sum(len(it.class_ids) for it in per_split[sp])
    for sp in ("train", "val"):
        if not per_split.get(sp):
            raise DatasetError(
                f"split {sp!r} would be empty (flights there: {stats.get(sp, SplitStats()).groups or 'none'}); "
                "add flights, raise --background-ratio, or pin flights with --val-flight"
            )
    if "test" in (split or DEFAULT_SPLIT) and not per_split.get("test") and not fixed:
        warnings.append("test split is empty: too few flights for a test share; data.yaml has no 'test'")
        log.warning(warnings[-1])

    # -- write
    _prepare_out(out, overwrite)
    files = _write_items(out, per_split, thermal_window_c, progress)
    names = taxonomy.class_names(dom)
    thermal = dom is taxonomy.Domain.PV_THERMAL
    extra: dict[str, Any] = {"domain": dom.value, "taxonomy_version": taxonomy.TAXONOMY_VERSION}
    if thermal:
        extra["thermal_window_c"] = [float(thermal_window_c[0]), float(thermal_window_c[1])]
    extra["splits"] = {sp: {k: v for k, v in stats[sp].as_dict().items()} for sp in SPLITS if sp in stats}
    build_info = {
        "split": dict(split or DEFAULT_SPLIT) if not fixed else {"pinned": fixed},
        "split_by": split_by,
        "tile": tiles.__dict__,
        "background_ratio": background_ratio,
        "seed": seed,
    }
    manifest = make_manifest(out, files, names, extra=extra, build=build_info)
    manifest_path = write_manifest(out, manifest)
    data: dict[str, Any] = {"path": str(out)}
    for sp in SPLITS:
        if per_split.get(sp):
            data[sp] = f"images/{sp}"
    data["names"] = dict(enumerate(names))
    data["domain"] = dom.value
    data["taxonomy_version"] = taxonomy.TAXONOMY_VERSION
    if thermal:
        data["thermal_window_c"] = extra["thermal_window_c"]
    if tiles is not None and tiles.size:
        data["tile"] = int(tiles.size)  # frame px per tile: the scale the model learns (ModelMeta.slice_tile)
    data["skyinspect_version"] = manifest["version"]
    write_data_yaml(out / DATA_YAML, data)
    log.info(
        "built %s: version %s, %s",
        out,
        manifest["version"],
        ", ".join(f"{sp} {stats[sp].images} images/{stats[sp].boxes} boxes" for sp in SPLITS if sp in stats),
    )
    return BuildResult(out, out / DATA_YAML, manifest_path, manifest["version"], dom.value, stats, warnings)


def _write_items(
    out: Path, per_split: Mapping[str, list[_Item]], window_c: tuple[float, float], progress: bool
) -> list[dict[str, Any]]:
    from PIL import Image
    from tqdm import tqdm

    files: list[dict[str, Any]] = []
    by_source: dict[tuple[str, Path], list[_Item]] = defaultdict(list)
    for sp, items in per_split.items():
        for it in items:
            by_source[(sp, it.src.path)].append(it)
    used: set[str] = set()
    for (sp, _), items in tqdm(
        sorted(by_source.items()), desc="dataset build", unit="frame", disable=not progress
    ):
        img_dir, lbl_dir = out / "images" / sp, out / "labels" / sp
        img_dir.mkdir(parents=True, exist_ok=True)
        lbl_dir.mkdir(parents=True, exist_ok=True)
        src = items[0].src
        needs_pixels = src.thermal or any(it.window is not None for it in items)
        pixels = load_pixels(src.path, window_c) if needs_pixels else None
        for it in items:
            stem = _stem(it)
            if stem in used:
                raise DatasetError(f"two sources give the same output name {stem!r} ({src.path})")
            used.add(stem)
            img_path = img_dir / f"{stem}{_suffix(it)}"
            if pixels is None:
                shutil.copyfile(src.path, img_path)
            else:
                x0, y0, x1, y1 = it.window or (0, 0, src.width, src.height)
                crop = np.ascontiguousarray(pixels[y0:y1, x0:x1])
                params = {"quality": JPEG_QUALITY} if img_path.suffix == ".jpg" else {}
                Image.fromarray(crop).save(img_path, **params)
            x0, y0, x1, y1 = it.window or (0, 0, src.width, src.height)
            lbl_path = lbl_dir / f"{stem}.txt"
            lbl_path.write_text(format_labels(it.xyxy, it.class_ids, x1 - x0, y1 - y0), encoding="utf-8")
            source = {
                "flight": src.group,
                "origin": src.kind,
                "frame": src.frame,
                "tile": list(it.window) if it.window is not None else None,
            }
            files.append(file_entry(out, img_path, source))
            files.append(file_entry(out, lbl_path, source))
    return files

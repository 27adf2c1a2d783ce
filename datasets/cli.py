"""``skyinspect dataset``: build, import, validate, preview and version YOLO datasets.

Thin click wrappers; the work is done by the pure functions in datasets.build / importer / validate / gallery /
version (callable from Dagster). Errors exit with status 1 and a one-line reason; ``--json`` prints the result
object on stdout.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import click

from datasets.yolo import DatasetError

log = logging.getLogger(__name__)

_PATH = click.Path(path_type=Path)
_EXISTING = click.Path(exists=True, path_type=Path)


def _emit(as_json: bool, payload: dict[str, Any], text: str) -> None:
    click.echo(json.dumps(payload, indent=2, default=str) if as_json else text)


def _window(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise click.BadParameter(f"expected LOW,HIGH in °C, got {text!r}") from None
    if not hi > lo:
        raise click.BadParameter(f"window low must be below high, got {text!r}")
    return lo, hi


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def dataset() -> None:
    """Build, import, validate and preview YOLO datasets; print a dataset's version."""


@dataset.command("build")
@click.option(
    "--flight", "flights", multiple=True, type=_EXISTING, help="Flight folder (OUT or OUT/flight). Repeat."
)
@click.option(
    "--import-set", "import_sets", multiple=True, type=_EXISTING, help="Reviewed YOLO set to include. Repeat."
)
@click.option("--out", required=True, type=_PATH, help="Output folder (new or empty).")
@click.option(
    "--split", "split_text", default=None, help="Shares per split, by flight [train=0.7,val=0.2,test=0.1]."
)
@click.option(
    "--val-flight", "val_flights", multiple=True, type=_EXISTING, help="Pin a flight to val (others train)."
)
@click.option("--test-flight", "test_flights", multiple=True, type=_EXISTING, help="Pin a flight to test.")
@click.option(
    "--split-by",
    type=click.Choice(["flight", "image"]),
    default="flight",
    show_default=True,
    help="'image' shuffles frames individually: leaks neighbouring frames into val (warned).",
)
@click.option("--tile", type=click.IntRange(min=32), default=None, help="Cut frames into TILE×TILE tiles.")
@click.option("--tile-overlap", type=click.FloatRange(0, 1, max_open=True), default=0.2, show_default=True)
@click.option(
    "--min-visible",
    type=click.FloatRange(0, 1),
    default=0.4,
    show_default=True,
    help="Drop a clipped box whose visible area share is below this.",
)
@click.option(
    "--min-px",
    type=click.FloatRange(min=0),
    default=4.0,
    show_default=True,
    help="Drop a clipped box with a side shorter than this (px).",
)
@click.option(
    "--background-ratio",
    default="0.25",
    show_default=True,
    help="Per split, keep at most RATIO × (images with boxes) background images; 'all' keeps all.",
)
@click.option("--domain", default=None, help="Domain when no flight says it (only --import-set).")
@click.option("--thermal-window", default=None, help="°C window LOW,HIGH for 16-bit thermal [model default].")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--overwrite", is_flag=True, help="Replace an existing dataset in --out.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def build_cmd(
    flights: tuple[Path, ...],
    import_sets: tuple[Path, ...],
    out: Path,
    split_text: str | None,
    val_flights: tuple[Path, ...],
    test_flights: tuple[Path, ...],
    split_by: str,
    tile: int | None,
    tile_overlap: float,
    min_visible: float,
    min_px: float,
    background_ratio: str,
    domain: str | None,
    thermal_window: str | None,
    seed: int,
    overwrite: bool,
    as_json: bool,
) -> None:
    """Build a YOLO training set from flight folders, split by flight (no flight in two splits)."""
    from datasets.build import TileOptions, build_dataset, parse_split
    from detection.radiometry import DEFAULT_WINDOW_C

    try:
        split = parse_split(split_text) if split_text else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--split") from exc
    if background_ratio.strip().lower() == "all":
        ratio: float | None = None
    else:
        try:
            ratio = float(background_ratio)
        except ValueError:
            raise click.BadParameter("a number or 'all'", param_hint="--background-ratio") from None
    if not flights and not import_sets and not val_flights:
        raise click.UsageError("give at least one --flight (or --import-set)")
    try:
        result = build_dataset(
            flights,
            out,
            import_sets=import_sets,
            split=split,
            val_flights=val_flights,
            test_flights=test_flights,
            split_by=split_by,
            tiles=TileOptions(tile, tile_overlap, min_visible, min_px),
            background_ratio=ratio,
            seed=seed,
            domain=domain,
            thermal_window_c=_window(thermal_window) if thermal_window else DEFAULT_WINDOW_C,
            overwrite=overwrite,
            progress=not as_json and sys.stderr.isatty(),
        )
    except DatasetError as exc:
        raise click.ClickException(str(exc)) from exc
    for w in result.warnings:
        click.secho(f"WARNING: {w}", fg="yellow", err=True)
    lines = [f"{result.out}  version {result.version}  ({result.domain})"]
    for sp, st in result.splits.items():
        lines.append(
            f"  {sp:5s} {st.images:6d} images {st.boxes:6d} boxes {st.background:5d} background  "
            f"flights: {', '.join(st.groups)}"
        )
    _emit(as_json, result.as_dict(), "\n".join(lines))


@dataset.command("import")
@click.option("--format", "fmt", type=click.Choice(["coco", "voc", "yolo"]), required=True)
@click.argument("src", type=_EXISTING)
@click.option("--out", required=True, type=_PATH, help="Output folder (new or empty).")
@click.option("--domain", required=True, help="Taxonomy domain: pv-thermal, pv-rgb, wind-rgb.")
@click.option("--map", "maps", multiple=True, help="their_name=our_name (repeat). Overrides --map-file.")
@click.option(
    "--map-file", type=_EXISTING, default=None, help="YAML their_name: our_name (null drops a class)."
)
@click.option("--drop-unmapped", is_flag=True, help="Leave out boxes of unmapped classes (still reported).")
@click.option(
    "--images-dir", type=_EXISTING, default=None, help="Where COCO/VOC images are, if not beside the labels."
)
@click.option("--keep-crowd", is_flag=True, help="Keep COCO iscrowd boxes (skipped by default).")
@click.option("--overwrite", is_flag=True)
@click.option("--json", "as_json", is_flag=True)
def import_cmd(
    fmt: str,
    src: Path,
    out: Path,
    domain: str,
    maps: tuple[str, ...],
    map_file: Path | None,
    drop_unmapped: bool,
    images_dir: Path | None,
    keep_crowd: bool,
    overwrite: bool,
    as_json: bool,
) -> None:
    """Import COCO JSON, Pascal VOC XML or a foreign YOLO set with the taxonomy's class ids.

    Classes that map onto nothing are reported with their box counts and fail the import unless --drop-unmapped.
    """
    from datasets.importer import UnmappedClassesError, import_dataset, parse_map_args, read_map_file
    from detection.taxonomy import TaxonomyError

    try:
        mapping: dict[str, str | None] = dict(read_map_file(map_file)) if map_file else {}
        mapping.update(parse_map_args(maps))
        result = import_dataset(
            fmt,
            src,
            out,
            domain,
            mapping=mapping,
            drop_unmapped=drop_unmapped,
            images_dir=images_dir,
            keep_crowd=keep_crowd,
            overwrite=overwrite,
        )
    except UnmappedClassesError as exc:
        if as_json:
            click.echo(json.dumps({"ok": False, "unmapped": exc.counts, "error": str(exc)}, indent=2))
        raise click.ClickException(str(exc)) from exc
    except (DatasetError, TaxonomyError) as exc:
        raise click.ClickException(str(exc)) from exc
    lines = [
        f"{result.out}  version {result.version}: {result.images} images "
        f"({result.background_images} background), boxes {result.boxes}",
    ]
    if result.unmapped:
        lines.append(f"  DROPPED unmapped classes (boxes): {result.unmapped}")
    if result.dropped_by_map:
        lines.append(f"  dropped by the map (boxes): {result.dropped_by_map}")
    if result.clipped or result.degenerate_skipped or result.crowd_skipped:
        lines.append(
            f"  clipped {result.clipped}, degenerate skipped {result.degenerate_skipped}, "
            f"crowd skipped {result.crowd_skipped}"
        )
    if result.unmapped:
        click.secho(f"WARNING: unmapped classes dropped: {result.unmapped}", fg="yellow", err=True)
    _emit(as_json, {"ok": True, **result.as_dict()}, "\n".join(lines))


@dataset.command("validate")
@click.argument("path", type=_EXISTING)
@click.option("--domain", default=None, help="Class names from this domain when the set has none.")
@click.option("--strict", is_flag=True, help="Fail on warnings too.")
@click.option(
    "--max-lines", type=int, default=200, show_default=True, help="Issues printed (all with --json)."
)
@click.option("--json", "as_json", is_flag=True)
def validate_cmd(path: Path, domain: str | None, strict: bool, max_lines: int, as_json: bool) -> None:
    """Check a YOLO set: per file and line, every bad label, image and pairing. Exit 1 when it fails."""
    from datasets.validate import validate_dataset
    from detection import taxonomy

    try:
        names = taxonomy.class_names(domain) if domain else None
        report = validate_dataset(path, names=names, progress=not as_json and sys.stderr.isatty())
    except (DatasetError, taxonomy.TaxonomyError) as exc:
        raise click.ClickException(str(exc)) from exc
    failed = not report.ok or (strict and report.warnings)
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        for issue in report.issues[:max_lines]:
            click.echo(str(issue))
        if len(report.issues) > max_lines:
            click.echo(f"... {len(report.issues) - max_lines} more issues (use --json for all)")
        click.echo(report.summary())
    if failed:
        sys.exit(1)


@dataset.command("gallery")
@click.argument("path", type=_EXISTING)
@click.option("--out", required=True, type=_PATH, help="PNG file to write.")
@click.option("--n", type=click.IntRange(min=1), default=16, show_default=True, help="Number of samples.")
@click.option("--cell", type=click.IntRange(min=32), default=320, show_default=True, help="Cell size (px).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def gallery_cmd(path: Path, out: Path, n: int, cell: int, seed: int, as_json: bool) -> None:
    """Contact sheet of random samples (YOLO set or flight folder) with boxes in taxonomy colours."""
    from datasets.gallery import make_gallery

    try:
        result = make_gallery(path, out, n=n, seed=seed, cell=cell)
    except DatasetError as exc:
        raise click.ClickException(str(exc)) from exc
    _emit(
        as_json, result.as_dict(), f"{result.out}: {result.samples} samples, {result.width}x{result.height}"
    )


@dataset.command("version")
@click.argument("path", type=_EXISTING)
@click.option("--verify", is_flag=True, help="Re-hash every file and fail if it differs from the manifest.")
def version_cmd(path: Path, verify: bool) -> None:
    """Print a dataset's version: the content hash of its manifest."""
    from datasets.version import VersionMismatchError, dataset_version

    try:
        click.echo(dataset_version(path, verify=verify))
    except (DatasetError, VersionMismatchError) as exc:
        raise click.ClickException(str(exc)) from exc

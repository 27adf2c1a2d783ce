"""``skyinspect ingest PATH --site SITE --flight FLIGHT``: upload a flight folder into the object store."""

from __future__ import annotations

import json
import logging

import click

from ingest.api import IngestError, IngestSummary, ingest_flight
from ingest.manifest import KINDS, UNKNOWN_KIND
from objectstore.client import ObjectStore, ObjectStoreError
from skyinspect.cli import get_settings

log = logging.getLogger(__name__)


def _print_summary(summary: IngestSummary) -> None:
    click.echo(
        f"{summary.site}/{summary.flight} ({summary.kind}): {summary.images} images — "
        f"{summary.uploaded} uploaded, {summary.already_present} already present, "
        f"{summary.duplicates} duplicate names, {len(summary.rejected)} rejected, {len(summary.skipped)} skipped; "
        f"{summary.bytes / 1e6:.1f} MB in {summary.seconds:.1f} s ({summary.mb_per_s:.1f} MB/s)"
    )
    for entry in summary.rejected:
        click.echo(f"  rejected  {entry['path']}: {entry['reason']} — {entry.get('detail', '')}")
    for entry in summary.skipped:
        click.echo(f"  skipped   {entry['path']}: {entry['reason']}")
    click.echo(f"manifest: {summary.manifest_key}{'' if summary.manifest_written else ' (unchanged)'}")


@click.command()
@click.argument("path", type=click.Path(exists=True, file_okay=False, dir_okay=True))
@click.option("--site", required=True, help="Site id, e.g. plant-north (letters, digits, . _ -).")
@click.option("--flight", required=True, help="Flight id, e.g. 2024-06-01_block-A.")
@click.option(
    "--kind",
    type=click.Choice(["auto", *KINDS]),
    default="auto",
    show_default=True,
    help="Imagery kind; auto: radiometric TIFFs → pv-thermal, else by gimbal pitch (nadir → pv-rgb).",
)
@click.option(
    "--workers", type=click.IntRange(min=1), default=None, help="Parallel uploads [settings: ingest_workers]."
)
@click.option(
    "--check",
    type=click.Choice(["decode", "structure"]),
    default="decode",
    show_default=True,
    help="decode: decode every image to find corrupt data; structure: JPEGs only walk their markers "
    "(finds truncated files, ~10x faster; PNG/TIFF are still decoded).",
)
@click.option("--strict", is_flag=True, help="Exit with code 2 when any file was rejected.")
@click.option(
    "--json", "as_json", is_flag=True, help="Print the summary as one JSON object (no progress bar)."
)
def ingest(
    path: str,
    site: str,
    flight: str,
    kind: str,
    workers: int | None,
    check: str,
    strict: bool,
    as_json: bool,
) -> None:
    """Upload every image under PATH as flight SITE/FLIGHT and write its manifest.

    Re-running uploads only what is missing. Rejected files are copied to quarantine/ with the reason.
    Exit codes: 0 ok, 1 error or no usable image, 2 rejected files with --strict.
    """
    settings = get_settings()
    if workers:
        settings = settings.replace(ingest_workers=workers)  # the connection pool is sized from it
    store = ObjectStore.from_settings(settings)
    try:
        summary = ingest_flight(
            path,
            site,
            flight,
            store=store,
            settings=settings,
            kind=kind,
            workers=workers,
            check=check,
            progress=not as_json,
        )
    except (IngestError, ObjectStoreError) as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(summary.to_dict(), ensure_ascii=False))
    else:
        _print_summary(summary)
    if summary.kind == UNKNOWN_KIND and summary.images:
        click.echo("warning: the flight kind could not be decided; run again with --kind", err=True)
    if summary.images == 0:
        click.echo(f"error: no usable image under {path}", err=True)
        raise SystemExit(1)
    if strict and summary.rejected:
        raise SystemExit(2)

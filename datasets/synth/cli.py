"""``skyinspect synth``: render a synthetic inspection flight with exact ground truth."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from detection.taxonomy import Domain

log = logging.getLogger(__name__)


def _size(_ctx: click.Context, _param: click.Parameter, value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    try:
        w, h = (int(x) for x in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"expected WIDTHxHEIGHT such as 1000x750, got {value!r}") from None
    if w < 64 or h < 64:
        raise click.BadParameter(f"image size must be at least 64x64, got {value}")
    return w, h


@click.command("synth")
@click.option("--kind", type=click.Choice([d.value for d in Domain]), required=True, help="Imaging domain.")
@click.option("--images", type=click.IntRange(min=1), required=True, help="Number of frames to render.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed (same seed → same bytes).")
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Output folder (flight/, truth/, site/, previews/, synth.json).",
)
@click.option(
    "--altitude",
    "altitude_m",
    type=float,
    default=None,
    help="PV: flight height above ground (m); wind: standoff distance from the blade (m).",
)
@click.option(
    "--gsd-cm",
    type=float,
    default=None,
    help="Ground sample distance in cm/px (sets the altitude/standoff; default 2.8 thermal, 1.1 PV RGB, "
    "0.2 wind).",
)
@click.option(
    "--front-overlap", type=float, default=None, help="Along-track overlap 0..0.95 (PV) / along-blade (wind)."
)
@click.option("--side-overlap", type=float, default=None, help="Overlap between lawnmower legs 0..0.95 (PV).")
@click.option(
    "--defect-rate",
    type=float,
    default=None,
    help="PV: probability that a module carries a defect (default 0.03); wind: defects per 10 m of blade "
    "per side (default 1.0).",
)
@click.option(
    "--image-size",
    callback=_size,
    default=None,
    help="WIDTHxHEIGHT readout (same lens and field of view, coarser pixels), e.g. 1000x750 for tests.",
)
@click.option("--lat", type=float, default=None, help="Site origin latitude (default: drawn from the seed).")
@click.option("--lon", type=float, default=None, help="Site origin longitude (default: drawn from the seed).")
@click.option("--site-id", default="SITE-01", show_default=True)
@click.option("--flight-id", default=None, help="Default: <site-id>-F<seed>.")
@click.option(
    "--workers", type=click.IntRange(min=1), default=None, help="Render threads (default: up to 2)."
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def synth(
    kind: str,
    images: int,
    seed: int,
    out: Path,
    altitude_m: float | None,
    gsd_cm: float | None,
    front_overlap: float | None,
    side_overlap: float | None,
    defect_rate: float | None,
    image_size: tuple[int, int] | None,
    lat: float | None,
    lon: float | None,
    site_id: str,
    flight_id: str | None,
    workers: int | None,
    quiet: bool,
) -> None:
    """Render a synthetic inspection flight (drone-like images, EXIF/XMP, YOLO labels, defect registry)."""
    from datasets.synth.generate import generate_flight

    try:
        summary = generate_flight(
            kind,
            images,
            seed,
            out,
            workers=workers,
            progress=not quiet,
            gsd_cm=gsd_cm,
            altitude_m=altitude_m,
            front_overlap=front_overlap,
            side_overlap=side_overlap,
            defect_rate=defect_rate,
            image_size=image_size,
            lat=lat,
            lon=lon,
            site_id=site_id,
            flight_id=flight_id,
        )
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"{summary.kind}: {summary.images} images, {summary.defects} defects, {summary.boxes} labelled boxes "
        f"in {summary.seconds:.1f} s → {summary.out}"
    )

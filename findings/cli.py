"""``skyinspect report``, ``skyinspect score`` and ``skyinspect site`` (the findings stage's commands)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from skyinspect.cli import get_settings


def _store():
    from objectstore.client import ObjectStore

    return ObjectStore.from_settings(get_settings())


@click.command("report")
@click.option("--site", required=True, help="Site id.")
@click.option("--flight", required=True, help="Flight id (ingested, with detections stored).")
@click.option(
    "--detections",
    "detections_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Use this detections.jsonl instead of the one in the store.",
)
@click.option(
    "--from-truth",
    "truth_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Use a synthetic flight's truth boxes (truth/frames.json) as detections: validates georeferencing, "
    "de-duplication and grading without a model.",
)
@click.option(
    "--irradiance", type=float, default=None, help="Irradiance in the module plane, W/m² (overrides)."
)
@click.option("--ambient", type=float, default=None, help="Ambient temperature, °C (overrides).")
@click.option("--wind", type=float, default=None, help="Wind speed, m/s (overrides).")
@click.option("--cloud", type=click.IntRange(0, 8), default=None, help="Cloud cover, okta (overrides).")
@click.option(
    "--module-power-w",
    type=click.FloatRange(min=1.0),
    default=None,
    help="PV module power for loss estimates [default: $SKYINSPECT_MODULE_POWER_W or 400].",
)
@click.option("--no-webhooks", is_flag=True, help="Record warnings but do not POST them.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def report(
    site,
    flight,
    detections_file,
    truth_dir,
    irradiance,
    ambient,
    wind,
    cloud,
    module_power_w,
    no_webhooks,
    as_json,
):
    """Build findings, fault warnings and reports (HTML, PDF, CSV, GeoJSON, KML, JSON) for a flight."""
    from findings.api import parse_jsonl, process_flight
    from findings.build import BuildOptions
    from findings.config import FindingsConfig, FindingsConfigError
    from findings.layout import LayoutError
    from ingest.manifest import ManifestError
    from objectstore.client import ObjectNotFound, ObjectStoreError

    settings = get_settings()
    try:
        cfg = FindingsConfig.from_env()
    except FindingsConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    opts = BuildOptions(module_power_w=module_power_w or cfg.module_power_w)
    cond = {
        "irradiance_w_m2": irradiance,
        "ambient_temp_c": ambient,
        "wind_speed_m_s": wind,
        "cloud_cover_okta": cloud,
    }
    try:
        dets = None
        if detections_file is not None:
            dets = parse_jsonl(detections_file.read_text("utf-8"), str(detections_file))
        with _store() as store:
            if truth_dir is not None:
                from findings.local import truth_detections
                from ingest.manifest import read_manifest

                truth = truth_dir / "truth" if (truth_dir / "truth" / "frames.json").exists() else truth_dir
                dets = truth_detections(truth, read_manifest(store, site, flight)["kind"])
            result = process_flight(
                store,
                site,
                flight,
                image_detections=dets,
                data_dir=settings.data_dir,
                conditions=cond,
                config=cfg,
                options=opts,
                send=not no_webhooks,
            )
    except ObjectNotFound as exc:
        raise click.ClickException(f"{exc} (was the flight ingested and detected?)") from exc
    except (ObjectStoreError, ManifestError, LayoutError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=1))
        return
    c = result.counts
    click.echo(
        f"{site}/{flight}: {c['findings']} findings ({c['critical']} critical), "
        f"{len(result.warnings)} fault warnings, est. power loss {c['power_loss_w'] / 1000:.2f} kW"
    )
    click.echo("by severity: " + ", ".join(f"{k} {v}" for k, v in c["by_severity"].items() if v))
    if result.previous_flight:
        click.echo(
            f"trend vs {result.previous_flight}: " + ", ".join(f"{k} {v}" for k, v in c["trend"].items())
        )
    failed = [d for d in result.deliveries if d["status"] == "failed"]
    if failed:
        click.echo(
            f"WARNING: {len(failed)} webhook deliveries failed (they are retried on the next run)", err=True
        )
    click.echo(f"report: {result.local_dir / 'report.html'}")
    click.echo(f"findings: {result.findings_key}")


@click.command("score")
@click.option("--site", required=True)
@click.option("--flight", required=True)
@click.option(
    "--truth",
    "truth_dir",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="A synthetic flight's folder or its truth/ folder.",
)
@click.option(
    "--findings",
    "findings_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Score this findings.json instead of the one in the store.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the scores as JSON.")
def score(site, flight, truth_dir, findings_file, as_json):
    """Score a flight's findings against the synthetic ground truth (truth/defects.json)."""
    from findings.score import score as score_fn
    from objectstore.client import ObjectNotFound, ObjectStoreError
    from objectstore.keys import findings_key

    try:
        if findings_file is not None:
            doc = json.loads(findings_file.read_text("utf-8"))
        else:
            with _store() as store:
                doc = store.get_json(findings_key(site, flight))
        result = score_fn(doc, truth_dir)
    except ObjectNotFound as exc:
        raise click.ClickException(
            f"{exc} (run 'skyinspect report --site {site} --flight {flight}' first)"
        ) from exc
    except (ObjectStoreError, FileNotFoundError, ValueError, KeyError) as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(result, indent=1))
        return

    def fmt(v):
        return "n/a" if v is None else f"{v:.3f}"

    click.echo(
        f"{site}/{flight} ({result['kind']}): {result['findings']} findings vs {result['truth_defects']} "
        f"true defects, {result['matched']} matched"
    )
    for k in (
        "recall",
        "precision",
        "duplicate_rate",
        "median_location_error_m",
        "module_id_accuracy",
        "grade_agreement",
    ):
        click.echo(f"  {k:<26} {fmt(result[k])}")


@click.group("site")
def site() -> None:
    """A site's as-built layout (PV module GeoJSON, turbine positions)."""


@site.command("import-layout")
@click.argument("site_id")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_layout_cmd(site_id: str, file: Path) -> None:
    """Validate FILE (GeoJSON) and store it as SITE_ID's layout."""
    from findings.api import import_layout
    from findings.layout import LayoutError
    from objectstore.client import ObjectStoreError
    from objectstore.keys import InvalidKey

    try:
        with _store() as store:
            store.ensure_bucket()
            info = import_layout(store, site_id, file.read_bytes(), str(file))
    except (LayoutError, InvalidKey, ObjectStoreError) as exc:
        raise click.ClickException(str(exc)) from exc
    what = (
        f"{info['modules']} modules in {info['strings']} strings"
        if info["kind"] == "pv"
        else f"{info['turbines']} turbines"
    )
    click.echo(f"layout of {site_id}: {what} → {info['key']}")


@site.command("show")
@click.argument("site_id")
@click.option("--json", "as_json", is_flag=True)
def show_cmd(site_id: str, as_json: bool) -> None:
    """Summarise SITE_ID's stored layout and processed inspections."""
    from findings.api import read_layout, site_findings
    from findings.layout import parse_layout
    from findings.reports import site_summary
    from objectstore.client import ObjectStoreError

    try:
        with _store() as store:
            doc = read_layout(store, site_id)
            docs = site_findings(store, site_id)
    except ObjectStoreError as exc:
        raise click.ClickException(str(exc)) from exc
    lay = parse_layout(doc, site_id) if doc else None
    out = {
        "site": site_id,
        "layout": None
        if lay is None
        else {
            "kind": lay.kind,
            "modules": len(lay.modules),
            "strings": len(lay.strings),
            "turbines": len(lay.turbines),
        },
        "inspections": site_summary(list(docs.values()))["inspections"] if docs else [],
    }
    if as_json:
        click.echo(json.dumps(out, indent=1))
        return
    click.echo(f"site {site_id}: layout " + ("none" if lay is None else json.dumps(out["layout"])))
    for i in out["inspections"]:
        click.echo(
            f"  {i['flight']}: {i['findings']} findings, {i['critical']} critical ({i['inspection_time']})"
        )

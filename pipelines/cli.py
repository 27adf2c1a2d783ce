"""``skyinspect run`` (one flight through the Dagster job, in-process) and ``skyinspect pipelines dev``."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import click

log = logging.getLogger(__name__)


@click.command()
@click.option("--site", required=True, help="Site id the flight was ingested under.")
@click.option("--flight", required=True, help="Flight id.")
@click.option("--json", "as_json", is_flag=True, help="Print the result and where the outputs are, as JSON.")
@click.option("--only", type=click.Choice(["manifest", "detections", "findings", "reports"]), default=None,
              help="Stop after this asset (default: run the whole job).")  # fmt: skip
@click.option("--batch-size", type=click.IntRange(1, 256), default=None, help="Frames per model call.")
@click.option("--workers", type=click.IntRange(1, 64), default=None, help="Download + decode threads.")
@click.option("--models-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder of shipped default models (default: the repository's models/).")  # fmt: skip
def run(
    site: str, flight: str, as_json: bool, only: str | None, batch_size: int | None, workers: int | None,
    models_dir: Path | None,
) -> None:  # fmt: skip
    """Process one ingested flight through the flight job (manifest → detections → findings → reports).

    Runs in this process on the Dagster instance under {data_dir}/dagster, so the run also shows up in
    `skyinspect pipelines dev`. Exit code 1 when a step or a blocking check failed.
    """
    from objectstore.keys import InvalidKey
    from pipelines.definitions import resources_for
    from pipelines.resources import ModelRegistryResource, SettingsResource
    from pipelines.runner import run_flight
    from skyinspect.cli import get_settings

    settings = get_settings()
    order = ["manifest", "detections", "findings", "reports"]
    assets = [f"flight_{a}" for a in order[: order.index(only) + 1]] if only else None
    det = {k: v for k, v in {"batch_size": batch_size, "workers": workers}.items() if v is not None}
    run_config = {"ops": {"flight_detections": {"config": det}}} if det else None
    resources = resources_for(SettingsResource.from_settings(settings))
    if models_dir is not None:
        resources["models"] = ModelRegistryResource(store=resources["store"], models_dir=str(models_dir))
    level = "DEBUG" if logging.getLogger().isEnabledFor(logging.DEBUG) else "CRITICAL"
    try:
        result = run_flight(settings, site, flight, resources=resources, assets=assets, run_config=run_config,
                            log_level=level)  # fmt: skip
    except InvalidKey as exc:
        raise click.BadParameter(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2, default=str))
    else:
        click.echo(format_result(result))
    if not result.success:
        sys.exit(1)


def format_result(result) -> str:
    """A short, readable summary of a :class:`~pipelines.runner.FlightRunResult`."""
    lines = [f"{result.site}/{result.flight}: {'done' if result.success else 'FAILED'} (run {result.run_id})"]
    det = result.metadata.get("flight_detections", {})
    if det:
        model = det.get("model", {})
        lines.append(
            f"  detections: {det.get('detections')} in {det.get('images')} images ({det.get('errors')} unreadable), "
            f"model {model.get('domain')} {model.get('source')} {model.get('version') or ''}".rstrip()
        )
    fnd = result.metadata.get("flight_findings", {})
    if fnd:
        sev = ", ".join(f"{k} {v}" for k, v in (fnd.get("by_severity") or {}).items()) or "none"
        lines.append(f"  findings: {fnd.get('findings')} ({sev}); warnings: {fnd.get('warnings')}")
    for name, check in sorted(result.checks.items()):
        if not check["passed"]:
            lines.append(f"  check failed: {name} {json.dumps(check['metadata'], default=str)[:200]}")
    for failure in result.failures:
        lines.append(f"  step failed: {failure.splitlines()[0]}")
    out = result.outputs
    if out.get("html_reports"):
        lines.append(f"  report: {out['html_reports'][0]}")
    lines.append(f"  results: s3://{out['bucket']}/{out['reports_prefix'].rsplit('reports/', 1)[0]}")
    return "\n".join(lines)


@click.group()
def pipelines() -> None:
    """Dagster webserver and daemon for the whole flow (sensor, schedules, the UI)."""


def ensure_store(settings) -> bool:
    """Start the embedded store when the settings point at it and it is not running → True if started here."""
    from objectstore.client import ObjectStore
    from objectstore.server import LOCAL_HOSTS, EmbeddedStore

    with ObjectStore.from_settings(settings) as store:
        if store.ping():
            store.ensure_bucket()
            return False
    if settings.s3_endpoint_host not in LOCAL_HOSTS:
        raise click.ClickException(f"the S3 endpoint {settings.s3_endpoint} does not answer")
    EmbeddedStore(settings).start()
    with ObjectStore.from_settings(settings) as store:
        store.ensure_bucket()
    return True


@pipelines.command()
@click.option(
    "--port", type=click.IntRange(1, 65535), default=3000, show_default=True, help="Webserver port."
)
@click.option("--no-store", is_flag=True, help="Do not start the embedded store.")
def dev(port: int, no_store: bool) -> None:
    """Run `dagster dev` (webserver + daemon) on 127.0.0.1 with this project's workspace.

    DAGSTER_HOME is {data_dir}/dagster (the same instance `skyinspect run` records into); the embedded object
    store is started first when the settings point at it and it is not running.
    """
    from pipelines.runner import dagster_home, local_instance
    from skyinspect.cli import get_settings

    settings = get_settings()
    if not no_store:
        started = ensure_store(settings)
        click.echo(f"object store: {settings.s3_endpoint} ({'started' if started else 'running'})")
    local_instance(settings)  # writes {data_dir}/dagster/dagster.yaml on first use
    home = dagster_home(settings)
    workspace = home / "workspace.yaml"
    workspace.write_text(
        "load_from:\n  - python_module:\n      module_name: pipelines.definitions\n"
        f"      working_directory: {Path(__file__).resolve().parent.parent}\n",
        encoding="utf-8",
    )
    exe = Path(sys.executable).parent / "dagster"
    cmd = [str(exe) if exe.exists() else (shutil.which("dagster") or "dagster"), "dev", "-h", "127.0.0.1",
           "-p", str(port), "-w", str(workspace)]  # fmt: skip
    env = {**os.environ, "DAGSTER_HOME": str(home), "SKYINSPECT_DATA_DIR": str(settings.data_dir)}
    click.echo(f"Dagster UI: http://127.0.0.1:{port}  (DAGSTER_HOME={home}; Ctrl-C stops it)")
    try:
        raise SystemExit(subprocess.call(cmd, env=env))
    except KeyboardInterrupt:
        raise SystemExit(130) from None

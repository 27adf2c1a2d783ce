"""``skyinspect store up | down | status``: the embedded SeaweedFS S3 server."""

from __future__ import annotations

import json

import click

from objectstore.server import EmbeddedStore, EmbeddedStoreError
from skyinspect.cli import get_settings


def _store() -> EmbeddedStore:
    try:
        return EmbeddedStore(get_settings())
    except EmbeddedStoreError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group()
def store() -> None:
    """Run the embedded S3 object store (SeaweedFS) on SKYINSPECT_S3_ENDPOINT, data under SKYINSPECT_DATA_DIR."""


@store.command()
@click.option(
    "--timeout", "timeout_s", default=60.0, show_default=True, help="Seconds to wait for S3 to answer."
)
def up(timeout_s: float) -> None:
    """Start the store in the background and return once its S3 API answers (idempotent)."""
    embedded = _store()
    try:
        status = embedded.start(timeout_s=timeout_s)
    except EmbeddedStoreError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"store running: pid {status.pid}, S3 on http://{status.endpoint}, bucket {status.bucket}, "
        f"data in {status.data_dir}, log {status.log_file}"
    )


@store.command()
@click.option("--timeout", "timeout_s", default=10.0, show_default=True, help="Seconds before SIGKILL.")
def down(timeout_s: float) -> None:
    """Stop the store (SIGTERM, then SIGKILL after --timeout)."""
    if _store().stop(timeout_s=timeout_s):
        click.echo("store stopped")
    else:
        click.echo("store was not running")


@store.command()
@click.option("--json", "as_json", is_flag=True, help="Print the status as one JSON object.")
def status(as_json: bool) -> None:
    """Whether the store runs, its pid, endpoint, ports and data folder. Exit code 1 when it is not running."""
    result = _store().status()
    if as_json:
        click.echo(json.dumps(result.to_dict()))
    elif result.running:
        click.echo(
            f"running: pid {result.pid}, S3 on http://{result.endpoint} "
            f"({'ready' if result.s3_ready else 'not answering'}), data in {result.data_dir}"
        )
    else:
        click.echo(f"not running (S3 endpoint {result.endpoint}, data in {result.data_dir})")
    if not result.running:
        raise SystemExit(1)

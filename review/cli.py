"""``skyinspect review``: serve the review app, import findings, manage users, export reviewed labels."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from skyinspect.cli import get_settings

log = logging.getLogger(__name__)

DB_HELP = "Database URL: sqlite:///PATH or postgresql://... (default: sqlite under data_dir/review/)."


def _engine(db_url: str | None):
    from review import db

    try:
        return db.connect(db_url or db.default_url(get_settings()))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc


def _store():
    from objectstore.client import ObjectStore

    return ObjectStore.from_settings(get_settings())


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def review() -> None:
    """Engineers' review of findings: web app, import, users, YOLO export of decisions."""


@review.command()
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to bind (keep 127.0.0.1 behind a proxy)."
)
@click.option("--port", default=8700, show_default=True, type=click.IntRange(1, 65535))
@click.option("--db", "db_url", default=None, help=DB_HELP)
@click.option("--secure-cookie", is_flag=True, help="Mark the session cookie Secure (serving behind HTTPS).")
def serve(host: str, port: int, db_url: str | None, secure_cookie: bool) -> None:
    """Serve the review web application."""
    import uvicorn

    from review.app import create_app

    settings = get_settings()
    try:
        app = create_app(settings, db_url=db_url, secure_cookie=secure_cookie)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    if host not in ("127.0.0.1", "localhost", "::1"):
        log.warning(
            "binding %s: the review app is reachable from other machines; put HTTPS in front of it", host
        )
    click.echo(f"review app on http://{host}:{port}/ (Ctrl-C to stop)")
    uvicorn.run(app, host=host, port=port, log_level="warning", server_header=False)


@review.command("import")
@click.option("--site", required=True, help="Site id.")
@click.option("--flight", default=None, help="Only this flight (default: every flight with findings).")
@click.option("--db", "db_url", default=None, help=DB_HELP)
def import_cmd(site: str, flight: str | None, db_url: str | None) -> None:
    """Import a site's findings from the store into the review database (idempotent)."""
    from objectstore.client import ObjectNotFound, ObjectStoreError
    from objectstore.keys import InvalidKey
    from review.importer import import_site

    engine = _engine(db_url)
    try:
        result = import_site(engine, _store(), site, flight)
    except (InvalidKey, ObjectNotFound, ObjectStoreError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps(result.to_dict(), indent=1))


@review.group()
def user() -> None:
    """Review users (roles: viewer, reviewer, admin)."""


@user.command("add")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(["viewer", "reviewer", "admin"]))
@click.option("--replace", is_flag=True, help="Reset role and password of an existing user.")
@click.option("--db", "db_url", default=None, help=DB_HELP)
def user_add(name: str, role: str, replace: bool, db_url: str | None) -> None:
    """Add a user. The password is prompted for (twice) or, when stdin is not a terminal, read from its first line."""
    from review.auth import AuthError, add_user

    if sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    try:
        created = add_user(_engine(db_url), name, role, password, replace=replace)
    except AuthError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"user {created.name} ({created.role}) saved")


@user.command("list")
@click.option("--db", "db_url", default=None, help=DB_HELP)
def user_list(db_url: str | None) -> None:
    """List users and roles."""
    from review.auth import list_users

    for u in list_users(_engine(db_url)):
        click.echo(f"{u.name}\t{u.role}")


@review.command()
@click.option("--site", required=True, help="Site id.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for the export (default: data_dir/review/exports/SITE/).",
)
@click.option("--to-store", is_flag=True, help="Also upload it under reviews/SITE/EXPORT_ID/ in the store.")
@click.option("--db", "db_url", default=None, help=DB_HELP)
def export(site: str, out: Path | None, to_store: bool, db_url: str | None) -> None:
    """Export reviewed decisions as YOLO sets (one per domain) for retraining."""
    from objectstore.client import ObjectStoreError
    from objectstore.keys import InvalidKey
    from review.export import export_site
    from review.images import ImageError

    folder = out or get_settings().data_dir / "review" / "exports" / site
    try:
        result = export_site(_engine(db_url), _store(), site, folder, to_store=to_store)
    except (InvalidKey, ImageError, ObjectStoreError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps(result.to_dict(), indent=1))

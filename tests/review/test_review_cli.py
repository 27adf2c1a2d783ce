"""``skyinspect review``: user add (password from stdin, never argv), import, export, serve --help."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from objectstore import keys
from review import db
from skyinspect.cli import cli
from tests.review.conftest import SITE, write_site


@pytest.fixture
def env(object_store, s3_settings, tmp_path: Path) -> dict[str, str]:
    write_site(object_store)
    return {
        "SKYINSPECT_S3_ENDPOINT": s3_settings.s3_endpoint,
        "SKYINSPECT_S3_ACCESS_KEY": s3_settings.s3_access_key,
        "SKYINSPECT_S3_SECRET_KEY": s3_settings.s3_secret_key,
        "SKYINSPECT_S3_BUCKET": object_store.bucket,
        "SKYINSPECT_DATA_DIR": str(tmp_path / "data"),
    }


def _run(env: dict[str, str], *args: str, stdin: str | None = None):
    return CliRunner().invoke(cli, ["review", *args], env=env, input=stdin, catch_exceptions=False)


@pytest.mark.parametrize(
    ("args", "stdin", "code", "text"),
    [
        (["user", "add", "alice", "--role", "reviewer"], "s3cret-enough\n", 0, "user alice (reviewer) saved"),
        (["user", "add", "bob", "--role", "viewer"], "short\n", 1, "at least 8 characters"),
        (["user", "add", "bad name", "--role", "viewer"], "s3cret-enough\n", 1, "user name"),
        (["user", "add", "carol", "--role", "boss"], "s3cret-enough\n", 2, "boss"),
    ],
)
def test_user_add(env, args, stdin, code, text) -> None:
    r = _run(env, *args, stdin=stdin)
    assert r.exit_code == code, r.output
    assert text in r.output and "Traceback" not in r.output


def test_user_add_list_and_duplicate(env, tmp_path: Path) -> None:
    assert _run(env, "user", "add", "alice", "--role", "admin", stdin="s3cret-enough\n").exit_code == 0
    r = _run(env, "user", "add", "alice", "--role", "viewer", stdin="another-pass\n")
    assert r.exit_code == 1 and "exists already" in r.output
    assert (
        _run(env, "user", "add", "alice", "--role", "viewer", "--replace", stdin="another-pass\n").exit_code
        == 0
    )
    assert _run(env, "user", "list").stdout.splitlines() == ["alice\tviewer"]
    raw = (tmp_path / "data" / "review" / "review.db").read_bytes()
    assert b"another-pass" not in raw and b"s3cret-enough" not in raw


def test_import_and_export_commands(env, object_store, tmp_path: Path) -> None:
    r = _run(env, "import", "--site", SITE)
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["inserted"] == 5
    assert json.loads(_run(env, "import", "--site", SITE, "--flight", "F1").stdout)["unchanged"] == 3
    r = _run(env, "import", "--site", SITE, "--flight", "F7")
    assert r.exit_code == 1 and "F7" in r.output
    r = _run(env, "import", "--site", "../x")
    assert r.exit_code == 1 and "not a safe id" in r.output
    r = _run(env, "export", "--site", SITE)
    assert r.exit_code == 1 and "no reviewed finding" in r.output
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'data' / 'review' / 'review.db'}")
    with engine.begin() as conn:
        conn.execute(sa.update(db.findings).where(db.findings.c.flight == "F2").values(status="confirmed"))
    engine.dispose()
    r = _run(env, "export", "--site", SITE, "--out", str(tmp_path / "out"), "--to-store")
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["images"] == 1 and res["boxes"] == 2 and res["domains"] == ["pv-thermal"]
    assert object_store.exists(keys.review_export_prefix(SITE, res["export_id"]) + "pv-thermal/data.yaml")
    assert (tmp_path / "out" / res["export_id"] / "export.json").exists()


def test_serve_help_and_bad_db(env) -> None:
    r = _run(env, "serve", "--help")
    assert r.exit_code == 0 and "127.0.0.1" in r.output and "--db" in r.output
    r = _run(env, "user", "list", "--db", "mysql://x")
    assert r.exit_code == 1 and "not supported" in r.output


def test_serve_binds_localhost_and_answers(env) -> None:
    import os
    import subprocess
    import sys
    import time
    import urllib.request

    from objectstore.server import free_port

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "skyinspect.cli", "review", "serve", "--port", str(port)],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=2) as r:
                    page = r.read().decode()
                    headers = dict(r.headers)
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.2)
        assert 'id="login"' in page and "default-src 'self'" in headers["content-security-policy"]
        assert "server" not in {k.lower() for k in headers}
        listening = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True).stdout
        if listening:  # ss is there: the app listens on the loopback address only
            assert [line.split()[3] for line in listening.splitlines()] == [f"127.0.0.1:{port}"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)

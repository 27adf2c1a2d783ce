"""Shared fixtures: an isolated environment and ONE real SeaweedFS S3 server for the whole test session.

* ``_isolated_environment`` (autouse, session): SKYINSPECT_* variables from the user's shell are removed and
  SKYINSPECT_DATA_DIR, XDG_CONFIG_HOME, XDG_DATA_HOME and YOLO_CONFIG_DIR point into a temporary folder, so no
  test reads or writes the user's config, data or keys.
* ``s3_settings`` (session): :class:`~skyinspect.config.Settings` pointing at an embedded SeaweedFS started on a
  free port with random keys and a temporary data dir; stopped at the end of the session, also on failure.
* ``object_store`` (function): an :class:`~objectstore.client.ObjectStore` on a fresh, unique bucket that is
  deleted (with its objects) afterwards.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from skyinspect.config import ENV_PREFIX, Settings


@pytest.fixture(scope="session", autouse=True)
def _isolated_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("env")
    saved = dict(os.environ)
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX):
            del os.environ[name]
    os.environ["SKYINSPECT_DATA_DIR"] = str(home / "data")
    os.environ["XDG_CONFIG_HOME"] = str(home / "config")
    os.environ["XDG_DATA_HOME"] = str(home / "share")
    os.environ["YOLO_CONFIG_DIR"] = str(home / "yolo")
    for sub in ("data", "config", "share", "yolo"):
        (home / sub).mkdir()
    try:
        yield home
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(scope="session")
def s3_settings(tmp_path_factory: pytest.TempPathFactory, _isolated_environment: Path) -> Iterator[Settings]:
    """Settings for a real SeaweedFS S3 server running for this test session."""
    from objectstore.server import EmbeddedStore, free_port

    data_dir = tmp_path_factory.mktemp("s3")
    settings = Settings(
        s3_endpoint=f"127.0.0.1:{free_port()}",
        s3_access_key="test-" + secrets.token_hex(6),
        s3_secret_key=secrets.token_urlsafe(24),
        s3_bucket="skyinspect-test",
        data_dir=data_dir,
        ingest_workers=4,
    )
    store = EmbeddedStore(settings)
    try:
        store.start(tied_to_parent=True)
        yield settings
    finally:
        store.stop()


@pytest.fixture
def object_store(s3_settings: Settings, request: pytest.FixtureRequest) -> Iterator:
    """An ObjectStore on a fresh bucket of the session's server; the bucket is removed afterwards."""
    from objectstore.client import ObjectStore

    bucket = f"t-{secrets.token_hex(6)}"
    store = ObjectStore.from_settings(s3_settings, bucket=bucket)
    store.ensure_bucket()
    yield store
    try:
        store.remove_bucket(force=True)
    except Exception as exc:  # a failed clean-up must not hide the test's own result
        print(f"could not remove test bucket {bucket}: {exc}")

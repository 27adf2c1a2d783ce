"""``skyinspect store up / status / down`` in subprocesses, on their own port and data dir."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from objectstore.client import ObjectStore
from objectstore.server import free_port
from skyinspect.config import load_settings


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "skyinspect.cli", *args], env=env, capture_output=True, text=True, timeout=90
    )


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["SKYINSPECT_DATA_DIR"] = str(tmp_path / "data")
    env["SKYINSPECT_S3_ENDPOINT"] = f"127.0.0.1:{free_port()}"
    return env


def test_up_status_down_keeps_data_across_restarts(cli_env: dict[str, str]) -> None:
    try:
        up = _run(cli_env, "store", "up")
        assert up.returncode == 0, up.stderr
        assert "store running" in up.stdout
        status = _run(cli_env, "store", "status", "--json")
        assert status.returncode == 0, status.stderr
        info = json.loads(status.stdout)
        assert info["running"] and info["s3_ready"]
        assert info["endpoint"] == cli_env["SKYINSPECT_S3_ENDPOINT"]

        # the server outlived the CLI that started it; keys come from <data_dir>/store/credentials.json
        settings = load_settings(environ=cli_env)
        store = ObjectStore.from_settings(settings)
        store.put_bytes("persist/me.txt", b"still here")
        assert _run(cli_env, "store", "up").returncode == 0  # idempotent

        down = _run(cli_env, "store", "down")
        assert down.returncode == 0 and "stopped" in down.stdout
        stopped = _run(cli_env, "store", "status")
        assert stopped.returncode == 1 and "not running" in stopped.stdout
        assert not store.ping()

        assert _run(cli_env, "store", "up").returncode == 0
        assert store.get_bytes("persist/me.txt") == b"still here"
    finally:
        _run(cli_env, "store", "down")


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("SKYINSPECT_S3_ENDPOINT", "no-port", "s3_endpoint"),
        ("SKYINSPECT_S3_ENDPOINT", "http://127.0.0.1:9000", "s3_endpoint"),
        ("SKYINSPECT_INGEST_WORKERS", "many", "ingest_workers"),
        ("SKYINSPECT_S3_ENDPOINT", "10.1.2.3:9000", "127.0.0.1 only"),
    ],
)
def test_config_errors_are_clear(cli_env: dict[str, str], variable: str, value: str, message: str) -> None:
    cli_env[variable] = value
    result = _run(cli_env, "store", "up")
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr

"""``skyinspect ingest`` through click: --json, --strict, exit codes, config errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ingest.samples import write_flight
from objectstore.client import ObjectStore
from skyinspect.cli import cli
from skyinspect.config import Settings


@pytest.fixture
def env(object_store: ObjectStore, ingest_settings: Settings) -> dict[str, str]:
    return {
        "SKYINSPECT_S3_ENDPOINT": ingest_settings.s3_endpoint,
        "SKYINSPECT_S3_ACCESS_KEY": ingest_settings.s3_access_key,
        "SKYINSPECT_S3_SECRET_KEY": ingest_settings.s3_secret_key,
        "SKYINSPECT_S3_BUCKET": object_store.bucket,
        "SKYINSPECT_DATA_DIR": str(ingest_settings.data_dir),
    }


def _flight(tmp_path: Path, broken: bool = False) -> Path:
    folder = tmp_path / "flight"
    write_flight(folder, 3)
    if broken:
        (folder / "broken.jpg").write_bytes(b"")
    return folder


def _invoke(env: dict[str, str], *args: str):
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def test_json_prints_one_object_and_a_rerun_uploads_nothing(tmp_path: Path, env: dict[str, str]) -> None:
    folder = _flight(tmp_path)
    args = ("ingest", str(folder), "--site", "s1", "--flight", "f1", "--json")
    first = _invoke(env, *args)
    assert first.exit_code == 0, first.output
    summary = json.loads(first.stdout)
    assert summary["uploaded"] == 3 and summary["manifest_key"] == "raw/s1/f1/manifest.json"
    assert {"already_present", "rejected", "skipped", "bytes", "seconds", "mb_per_s"} <= set(summary)
    second = json.loads(_invoke(env, *args).stdout)
    assert (second["uploaded"], second["already_present"], second["bytes"]) == (0, 3, 0)


@pytest.mark.parametrize(("strict", "code"), [(False, 0), (True, 2)])
def test_strict_fails_on_rejects(tmp_path: Path, env: dict[str, str], strict: bool, code: int) -> None:
    folder = _flight(tmp_path, broken=True)
    args = ["ingest", str(folder), "--site", "s1", "--flight", "f1", "--kind", "pv-rgb"] + (
        ["--strict"] if strict else []
    )
    result = _invoke(env, *args)
    assert result.exit_code == code, result.output
    assert "rejected  broken.jpg: empty_file" in result.stdout
    assert "3 images" in result.stdout


def test_folder_without_images_exits_1(tmp_path: Path, env: dict[str, str]) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "notes.txt").write_text("nothing here")
    result = CliRunner().invoke(cli, ["ingest", str(folder), "--site", "s1", "--flight", "f1"], env=env)
    assert result.exit_code == 1
    assert "no usable image" in result.stderr


@pytest.mark.parametrize(
    ("extra_env", "args", "message"),
    [
        ({"SKYINSPECT_S3_ENDPOINT": "localhost"}, [], "s3_endpoint"),
        ({"SKYINSPECT_INGEST_WORKERS": "0"}, [], "ingest_workers"),
        ({}, ["--site", "a b"], "not a safe id"),
        ({}, ["--workers", "0"], "--workers"),
        ({"SKYINSPECT_S3_SECRET_KEY": "wrong-secret-xyz"}, [], "SKYINSPECT_S3_SECRET_KEY"),
    ],
)
def test_config_and_argument_errors_are_clear(tmp_path: Path, env, extra_env, args, message) -> None:
    folder = _flight(tmp_path)
    base = ["ingest", str(folder), "--site", "s1", "--flight", "f1"]
    result = CliRunner().invoke(cli, [*base, *args], env={**env, **extra_env})
    assert result.exit_code in (1, 2), result.output
    assert message in result.output + result.stderr
    assert "wrong-secret-xyz" not in result.output + result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)

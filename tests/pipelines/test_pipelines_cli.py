"""`skyinspect run` through the top-level CLI against the real store: JSON output, a missing model, bad ids."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from pipeline_support import SITE, ingest

from skyinspect.cli import cli
from skyinspect.config import Settings


@pytest.fixture
def cli_env(pipeline_settings: Settings) -> dict[str, str]:
    s = pipeline_settings
    return {
        "SKYINSPECT_S3_ENDPOINT": s.s3_endpoint,
        "SKYINSPECT_S3_ACCESS_KEY": s.s3_access_key,
        "SKYINSPECT_S3_SECRET_KEY": s.s3_secret_key,
        "SKYINSPECT_S3_BUCKET": s.s3_bucket,
        "SKYINSPECT_DATA_DIR": str(s.data_dir),
    }


def test_run_json_says_where_the_outputs_are(
    object_store, pipeline_settings: Settings, cli_env: dict, wind_flight: Path, shipped_models: Path
) -> None:
    ingest(wind_flight / "flight", object_store, pipeline_settings, "F-cli")
    args = ["run", "--site", SITE, "--flight", "F-cli", "--json", "--models-dir", str(shipped_models),
            "--only", "detections", "--batch-size", "2"]  # fmt: skip
    result = CliRunner().invoke(cli, args, env=cli_env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output[result.output.index("{") :])
    assert doc["success"] and doc["materialized"] == ["flight_manifest", "flight_detections"]
    assert doc["outputs"]["detections"] == f"results/{SITE}/F-cli/detections.jsonl"
    assert doc["outputs"]["findings"] == f"results/{SITE}/F-cli/findings.json"
    assert object_store.exists(doc["outputs"]["detections"])
    # the run is recorded in the instance under data_dir, where `skyinspect pipelines dev` looks
    assert (pipeline_settings.data_dir / "dagster" / "dagster.yaml").is_file()


def test_run_without_a_model_fails_and_says_what_to_run(
    object_store, pipeline_settings: Settings, cli_env: dict, wind_flight: Path, tmp_path: Path
) -> None:
    ingest(wind_flight / "flight", object_store, pipeline_settings, "F-nomodel")
    empty = tmp_path / "no-models"
    empty.mkdir()
    args = ["run", "--site", SITE, "--flight", "F-nomodel", "--models-dir", str(empty)]
    result = CliRunner().invoke(cli, args, env=cli_env, catch_exceptions=False)
    assert result.exit_code == 1
    assert (
        "FAILED" in result.output and "no wind-rgb model" in result.output and "make models" in result.output
    )


def test_run_refuses_unsafe_ids(cli_env: dict) -> None:
    result = CliRunner().invoke(cli, ["run", "--site", "../etc", "--flight", "F"], env=cli_env)
    assert result.exit_code == 2 and "not a safe id" in result.output

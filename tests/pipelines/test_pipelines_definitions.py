"""The one Definitions loads, every job resolves, deployments pick their resources."""

from __future__ import annotations

import dagster as dg
import pytest

from pipelines.definitions import DEPLOYMENTS, build_definitions


@pytest.mark.parametrize("deployment", DEPLOYMENTS)
def test_definitions_load_and_every_job_resolves(deployment: str) -> None:
    defs = build_definitions(deployment, environ={})
    for name in ("flight_job", "retrain_job"):
        job = defs.resolve_job_def(name)
        assert job.name == name
    flight_nodes = set(defs.resolve_job_def("flight_job").graph.node_dict)
    assert {"flight_manifest", "flight_detections", "flight_findings", "flight_reports"} <= flight_nodes
    assert any(n.endswith("has_images") for n in flight_nodes)
    assert defs.resolve_sensor_def("flight_sensor").job_name == "flight_job"
    assert set(defs.resources) == {"store", "models"}


def test_prod_takes_endpoint_and_secret_from_env_vars() -> None:
    store = build_definitions("prod", environ={}).resources["store"]
    # EnvVars are kept unresolved in the definitions: the secret is read by Dagster at launch, not at import
    secret = store.settings.s3_secret_key
    assert isinstance(secret, dg.EnvVar) and secret.env_var_name == "SKYINSPECT_S3_SECRET_KEY"


@pytest.mark.parametrize(
    ("environ", "cron"),
    [({}, "0 3 * * 1"), ({"SKYINSPECT_RETRAIN_CRON": "30 1 * * 0"}, "30 1 * * 0")],
)
def test_retraining_cron_is_configurable(environ: dict, cron: str) -> None:
    defs = build_definitions(environ=environ)
    assert defs.resolve_schedule_def("weekly_retrain").cron_schedule == cron


def test_an_unknown_deployment_is_refused() -> None:
    with pytest.raises(ValueError, match="SKYINSPECT_DEPLOYMENT"):
        build_definitions(environ={"SKYINSPECT_DEPLOYMENT": "staging"})


def test_dagster_itself_loads_the_module(tmp_path) -> None:
    """What the webserver and code server do: `dagster definitions validate -m pipelines.definitions`."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    exe = Path(sys.executable).parent / "dagster"
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    done = subprocess.run(
        [str(exe), "definitions", "validate", "-m", "pipelines.definitions"],
        capture_output=True, text=True, env=env, timeout=120, cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr

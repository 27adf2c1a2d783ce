"""The ONE Dagster ``Definitions`` of skyinspect, assembled from the per-stage pieces.

    dagster dev -m pipelines.definitions          # or: skyinspect pipelines dev

Pieces: the flight assets and their checks (:mod:`pipelines.flight_assets`), the flight sensor
(:mod:`pipelines.sensors`), the retraining assets, job and schedule (:mod:`pipelines.retraining`).

Resources are chosen per deployment, by name, when the definitions are loaded (:func:`build_definitions`; the
module-level ``defs`` is a lazy ``@dg.definitions`` function, so importing this module reads nothing):

* ``local`` (default): settings from the config file / ``SKYINSPECT_*`` / the embedded store's generated keys,
  resolved when a run starts; shipped default models under the repository's ``models/``.
* ``prod``: endpoint, bucket and keys from ``EnvVar("SKYINSPECT_S3_*")``, resolved by Dagster at launch (the
  secret never appears in the UI or in run config); ``SKYINSPECT_DATA_DIR`` names the scratch folder.

The deployment is ``SKYINSPECT_DEPLOYMENT`` (``local`` | ``prod``); the retraining cron is
``SKYINSPECT_RETRAIN_CRON`` (default weekly, Monday 03:00 UTC). Both are read in :func:`build_definitions`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import dagster as dg

from pipelines.flight_assets import FLIGHT_ASSETS, FLIGHT_CHECKS, flight_job
from pipelines.resources import ModelRegistryResource, ObjectStoreResource, SettingsResource
from pipelines.retraining import DEFAULT_CRON, RETRAIN_ASSETS, build_retrain_schedule, retrain_job
from pipelines.sensors import build_flight_sensor

DEPLOYMENTS = ("local", "prod")


def resources_for(settings: SettingsResource) -> dict[str, Any]:
    """The resource set for one settings resource: ``store`` and ``models``."""
    store = ObjectStoreResource(settings=settings)
    return {"store": store, "models": ModelRegistryResource(store=store)}


def resources_by_deployment_name() -> dict[str, dict[str, Any]]:
    """Resource sets per deployment (EnvVars are resolved by Dagster at launch, not here)."""
    prod = SettingsResource(
        s3_endpoint=dg.EnvVar("SKYINSPECT_S3_ENDPOINT"),
        s3_access_key=dg.EnvVar("SKYINSPECT_S3_ACCESS_KEY"),
        s3_secret_key=dg.EnvVar("SKYINSPECT_S3_SECRET_KEY"),
        s3_bucket=dg.EnvVar("SKYINSPECT_S3_BUCKET"),
        data_dir=dg.EnvVar("SKYINSPECT_DATA_DIR"),
    )
    return {"local": resources_for(SettingsResource()), "prod": resources_for(prod)}


def build_definitions(
    deployment: str | None = None,
    *,
    resources: Mapping[str, Any] | None = None,
    retrain_cron: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> dg.Definitions:
    """Assemble the Definitions.

    Args:
        deployment: ``local`` or ``prod`` (default: ``SKYINSPECT_DEPLOYMENT``, else ``local``).
        resources: explicit resources (tests, `skyinspect run`); replaces the deployment's set.
        retrain_cron: cron of the weekly retraining (default ``SKYINSPECT_RETRAIN_CRON``, else Monday 03:00).
        environ: the environment to read (default ``os.environ``).

    Raises:
        ValueError: an unknown deployment name.
    """
    env = os.environ if environ is None else environ
    name = deployment or env.get("SKYINSPECT_DEPLOYMENT") or "local"
    if name not in DEPLOYMENTS:
        raise ValueError(f"SKYINSPECT_DEPLOYMENT={name!r}: expected one of {', '.join(DEPLOYMENTS)}")
    cron = retrain_cron or env.get("SKYINSPECT_RETRAIN_CRON") or DEFAULT_CRON
    return dg.Definitions(
        assets=[*FLIGHT_ASSETS, *RETRAIN_ASSETS],
        asset_checks=FLIGHT_CHECKS,
        jobs=[flight_job, retrain_job],
        sensors=[build_flight_sensor(flight_job)],
        schedules=[build_retrain_schedule(cron)],
        resources=dict(resources) if resources is not None else resources_by_deployment_name()[name],
    )


@dg.definitions
def defs() -> dg.Definitions:
    """What ``dagster dev -m pipelines.definitions`` and the code server load."""
    return build_definitions()

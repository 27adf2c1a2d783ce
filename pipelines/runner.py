"""Run the flight job for one flight, in-process: what ``skyinspect run``, ``make demo`` and the tests call.

It executes the very ``flight_job`` of :mod:`pipelines.definitions` (same assets, checks and resources), on a
persistent ``DagsterInstance`` under ``{data_dir}/dagster`` (so runs show up in ``skyinspect pipelines dev``),
after adding the flight's partition to it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from objectstore import keys
from skyinspect.config import Settings

log = logging.getLogger(__name__)
FAILURE_PREFIX = "dagster._core.definitions.events.Failure: "


@dataclass
class FlightRunResult:
    """What one in-process run of the flight job did, and where its outputs are."""

    site: str
    flight: str
    partition: str
    run_id: str
    success: bool
    materialized: list[str] = field(default_factory=list)
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "site": self.site,
            "flight": self.flight,
            "partition": self.partition,
            "run_id": self.run_id,
            "success": self.success,
            "materialized": self.materialized,
            "checks": self.checks,
            "failures": self.failures,
            "outputs": self.outputs,
        }


def dagster_home(settings: Settings) -> Path:
    """``{data_dir}/dagster``: DAGSTER_HOME for local runs and ``skyinspect pipelines dev``."""
    return settings.data_dir / "dagster"


def local_instance(settings: Settings) -> Any:
    """A persistent DagsterInstance (SQLite) under :func:`dagster_home`."""
    import dagster as dg

    logging.getLogger("alembic").setLevel(logging.WARNING)  # schema migrations of the SQLite storages
    home = dagster_home(settings)
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text("telemetry:\n  enabled: false\n", encoding="utf-8")
    return dg.DagsterInstance.from_config(str(home))


def _plain(value: Any) -> Any:
    inner = getattr(value, "value", value)
    if isinstance(inner, dict):
        return {k: _plain(v) for k, v in inner.items()}
    if isinstance(inner, list):
        return [_plain(v) for v in inner]
    return inner


def outputs_of(settings: Settings, site: str, flight: str) -> dict[str, Any]:
    """Where a processed flight's outputs are (object keys, bucket, local report copies)."""
    local = settings.data_dir / "reports" / site / flight
    html = sorted(str(p) for p in local.glob("*.html")) if local.is_dir() else []
    return {
        "bucket": settings.s3_bucket,
        "endpoint": settings.s3_endpoint,
        "manifest": keys.manifest_key(site, flight),
        "detections": keys.detections_key(site, flight),
        "findings": keys.findings_key(site, flight),
        "warnings": keys.warnings_key(site, flight),
        "reports_prefix": keys.report_key(site, flight, "x")[:-1],
        "reports_local_dir": str(local),
        "html_reports": html,
    }


def run_flight(
    settings: Settings,
    site: str,
    flight: str,
    *,
    resources: dict[str, Any] | None = None,
    instance: Any | None = None,
    assets: list[str] | None = None,
    run_config: dict[str, Any] | None = None,
    log_level: str = "WARNING",
) -> FlightRunResult:
    """Materialize the flight job's assets for ``site/flight`` in this process.

    Args:
        settings: where the store is, and ``data_dir`` (instance, caches, local report copies).
        resources: explicit resources (default: those of ``settings``, shipped models under models/).
        instance: a DagsterInstance (default: :func:`local_instance`).
        assets: only these asset names (and their checks), e.g. ``["flight_manifest", "flight_detections"]``.
        run_config: Dagster run config (e.g. ``{"ops": {"flight_detections": {"config": {"batch_size": 4}}}}``).
        log_level: level of Dagster's console log for this run (the event log in the instance keeps everything).

    Raises:
        InvalidKey: unsafe ids.
    """
    import dagster as dg

    from pipelines.definitions import build_definitions, resources_for
    from pipelines.flight_assets import flights_partitions, partition_key
    from pipelines.resources import SettingsResource

    pk = partition_key(site, flight)
    res = resources if resources is not None else resources_for(SettingsResource.from_settings(settings))
    defs = build_definitions(resources=res)
    job = defs.resolve_job_def("flight_job")
    instance = instance or local_instance(settings)
    if not instance.has_dynamic_partition(flights_partitions.name, pk):
        instance.add_dynamic_partitions(flights_partitions.name, [pk])
    selection = [dg.AssetKey(a) for a in assets] if assets else None
    result = job.execute_in_process(
        partition_key=pk,
        instance=instance,
        raise_on_error=False,
        asset_selection=selection,
        run_config={
            "loggers": {"console": {"config": {"log_level": log_level.upper()}}},
            **(run_config or {}),
        },
        tags={"skyinspect/site": site, "skyinspect/flight": flight, "skyinspect/trigger": "skyinspect run"},
    )
    out = FlightRunResult(site, flight, pk, result.run_id, result.success)
    for event in result.get_asset_materialization_events():
        mat = event.step_materialization_data.materialization
        if mat is not None:
            name = mat.asset_key.to_user_string()
            out.materialized.append(name)
            out.metadata[name] = {k: _plain(v) for k, v in mat.metadata.items()}
    for ev in result.get_asset_check_evaluations():
        out.checks[f"{ev.asset_key.to_user_string()}:{ev.check_name}"] = {
            "passed": ev.passed,
            "severity": ev.severity.value,
            "metadata": {k: _plain(v) for k, v in ev.metadata.items()},
        }
    for event in result.get_step_failure_events():
        error = event.step_failure_data.error if event.step_failure_data else None
        message = error.message.strip() if error else "failed"
        out.failures.append(f"{event.step_key}: {message.removeprefix(FAILURE_PREFIX)}")
    out.outputs = outputs_of(settings, site, flight)
    return out

"""The flight job, materialized in-process against the real embedded S3 server with a real ONNX model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import dagster as dg
import pytest
from pipeline_support import SITE, ingest, mkdir

from objectstore import keys
from pipelines.flight_assets import finding_problem, parse_partition_key, partition_key
from pipelines.runner import run_flight
from skyinspect.config import Settings


def _has_findings_stage() -> bool:
    try:
        from findings.api import process_flight  # noqa: F401
    except ImportError:
        return False
    return True


def test_manifest_and_detections_materialize_with_the_shipped_model(
    object_store, pipeline_settings: Settings, pipeline_resources: dict, wind_flight: Path, tmp_path: Path
) -> None:
    ingest(wind_flight / "flight", object_store, pipeline_settings, "F-det")
    instance = dg.DagsterInstance.local_temp(mkdir(tmp_path / "dagster"))
    result = run_flight(
        pipeline_settings, SITE, "F-det", resources=pipeline_resources, instance=instance,
        assets=["flight_manifest", "flight_detections"],
    )  # fmt: skip
    assert result.success, result.failures
    assert result.materialized == ["flight_manifest", "flight_detections"]
    assert all(c["passed"] for c in result.checks.values()), result.checks
    assert {"flight_manifest:has_images", "flight_detections:every_image_has_record"} <= set(result.checks)
    meta = result.metadata["flight_detections"]
    assert meta["images"] == 2 and meta["errors"] == 0
    assert meta["model"]["source"] == "shipped" and meta["model"]["domain"] == "wind-rgb"
    lines = object_store.get_bytes(keys.detections_key(SITE, "F-det")).decode().splitlines()
    assert len(lines) == 2 and sum(len(json.loads(x)["detections"]) for x in lines) == meta["detections"]
    assert instance.has_dynamic_partition("flights", partition_key(SITE, "F-det"))
    assert result.outputs["detections"] == keys.detections_key(SITE, "F-det")


@pytest.mark.parametrize(
    ("model_conf", "run_conf", "want"),
    [
        (0.4, None, (0.4, "model")),  # no threshold in the run config: the model's operating point
        (0.4, 0.05, (0.05, "config")),  # an explicit one is used exactly as before
        (None, None, (0.25, "default")),  # a model without skyinspect.conf: 0.25
    ],
)
def test_the_detection_threshold_is_the_models_unless_configured(
    object_store, pipeline_settings: Settings, wind_onnx: Path, wind_flight: Path, tmp_path: Path,
    model_conf: float | None, run_conf: float | None, want: tuple[float, str],
) -> None:  # fmt: skip
    from detection.operating_point import write_conf
    from pipelines.resources import ModelRegistryResource, ObjectStoreResource, SettingsResource

    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(wind_onnx, models / "wind-rgb.onnx")
    if model_conf is not None:
        write_conf(models / "wind-rgb.onnx", model_conf)
    store = ObjectStoreResource(settings=SettingsResource.from_settings(pipeline_settings))
    resources = {"store": store, "models": ModelRegistryResource(store=store, models_dir=str(models))}
    ingest(wind_flight / "flight", object_store, pipeline_settings, "F-conf")
    run_config = None if run_conf is None else {"ops": {"flight_detections": {"config": {"conf": run_conf}}}}
    result = run_flight(
        pipeline_settings, SITE, "F-conf", resources=resources, assets=["flight_manifest", "flight_detections"],
        run_config=run_config, instance=dg.DagsterInstance.local_temp(mkdir(tmp_path / "dagster")),
    )  # fmt: skip
    assert result.success, result.failures
    meta = result.metadata["flight_detections"]
    assert (meta["conf"], meta["conf_from"]) == want
    lines = object_store.get_bytes(keys.detections_key(SITE, "F-conf")).splitlines()
    assert all(d["confidence"] > want[0] for x in lines for d in json.loads(x)["detections"])


@pytest.mark.skipif(not _has_findings_stage(), reason="findings.api.process_flight has not landed")
def test_the_whole_flight_job_writes_findings_and_reports(
    object_store, pipeline_settings: Settings, pipeline_resources: dict, wind_flight: Path, tmp_path: Path
) -> None:
    ingest(wind_flight / "flight", object_store, pipeline_settings, "F-all")
    instance = dg.DagsterInstance.local_temp(mkdir(tmp_path / "dagster"))
    result = run_flight(pipeline_settings, SITE, "F-all", resources=pipeline_resources, instance=instance)
    assert result.success, result.failures
    assert result.materialized == [
        "flight_manifest",
        "flight_detections",
        "flight_findings",
        "flight_reports",
    ]
    assert result.checks["flight_reports:report_parses"]["passed"]
    doc = object_store.get_json(keys.findings_key(SITE, "F-all"))
    meta = result.metadata["flight_findings"]  # what Dagster's UI and `make demo` show
    assert (meta["findings"], meta["suppressed"]) == (len(doc["findings"]), len(doc.get("suppressed") or []))
    assert sum(meta["suppressed_by_rule"].values()) == meta["suppressed"]
    assert result.outputs["html_reports"] and Path(result.outputs["html_reports"][0]).is_file()


def test_a_flight_without_images_stops_at_the_blocking_check(
    object_store, pipeline_settings: Settings, pipeline_resources: dict, tmp_path: Path
) -> None:
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "DJI_0001.JPG").write_bytes(b"\xff\xd8\xff\xe0 truncated, not a JPEG")
    ingest(folder, object_store, pipeline_settings, "F-empty")
    manifest = object_store.get_json(keys.manifest_key(SITE, "F-empty"))
    assert manifest["images"] == [] and len(manifest["rejected"]) == 1
    instance = dg.DagsterInstance.local_temp(mkdir(tmp_path / "dagster"))
    result = run_flight(pipeline_settings, SITE, "F-empty", resources=pipeline_resources, instance=instance)
    assert not result.success
    assert result.checks["flight_manifest:has_images"]["passed"] is False
    assert result.checks["flight_manifest:rejects_listed"]["passed"] is True
    assert result.materialized == ["flight_manifest"]  # nothing downstream ran
    assert not object_store.exists(keys.detections_key(SITE, "F-empty"))


def test_a_flight_that_was_never_ingested_fails_without_retrying(
    pipeline_settings: Settings, pipeline_resources: dict, tmp_path: Path
) -> None:
    instance = dg.DagsterInstance.local_temp(mkdir(tmp_path / "dagster"))
    result = run_flight(pipeline_settings, SITE, "F-none", resources=pipeline_resources, instance=instance)
    assert not result.success and result.materialized == []
    assert any("flight_manifest" in f and "NoSuchKey" in f for f in result.failures), result.failures
    retries = [e for e in instance.all_logs(result.run_id) if "retry" in (e.user_message or "").lower()]
    assert not retries


@pytest.mark.parametrize(
    ("site", "flight", "ok"),
    [("plant-north", "2024-06-01_block-A", True), ("a", "b", True), ("bad site", "F1", False),
     ("s", "a...b", False), ("s|x", "F", False)],
)  # fmt: skip
def test_partition_keys_round_trip_or_are_refused(site: str, flight: str, ok: bool) -> None:
    if ok:
        assert parse_partition_key(partition_key(site, flight)) == (site, flight)
    else:
        with pytest.raises(keys.InvalidKey):
            partition_key(site, flight)


@pytest.mark.parametrize(
    ("finding", "ok"),
    [
        ({"asset": {"module_id": "M-1", "assignment": "inside"}}, True),
        ({"asset": {"turbine_id": "WTG-02", "blade": 1}}, True),
        ({"asset": {"assignment": "unlocated", "reason": "no GPS in the image"}}, True),
        (
            {
                "asset": {"assignment": "off-layout"},
                "location": {"located": False, "reason": "outside the site"},
            },
            True,
        ),
        ({"asset": {}, "reasons": ["no site layout uploaded"]}, True),
        ({"asset": {"assignment": "unlocated"}, "reasons": []}, False),
        ({}, False),
    ],
)
def test_findings_need_an_asset_or_a_reason(finding: dict, ok: bool) -> None:
    assert (finding_problem(finding) is None) is ok

"""The flight sensor against the real S3 server: new flight → run, same again → nothing, restart → nothing missed."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest
from pipeline_support import SITE, ingest, mkdir

from objectstore import keys
from pipelines.flight_assets import partition_key
from pipelines.sensors import build_flight_sensor, make_cursor, parse_cursor
from skyinspect.config import Settings


def _has_findings() -> bool:
    try:
        from findings.api import process_flight  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture
def instance(tmp_path: Path):
    with dg.DagsterInstance.local_temp(mkdir(tmp_path / "dagster")) as inst:
        yield inst


def _tick(sensor, instance, resources: dict, cursor: str | None) -> dg.SensorResult:
    resources = {"store": resources["store"]}
    with dg.build_sensor_context(cursor=cursor, instance=instance, resources=resources) as context:
        result = sensor(context)
    assert isinstance(result, dg.SensorResult)
    return result


def _apply(instance, result: dg.SensorResult) -> None:
    """What the daemon does with a result: add the requested partitions."""
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))


def test_new_flight_same_again_and_restart(
    object_store, pipeline_settings: Settings, pipeline_resources: dict, wind_flight: Path, instance
) -> None:
    sensor = build_flight_sensor()
    first = _tick(sensor, instance, pipeline_resources, None)
    assert not first.run_requests and first.skip_reason is not None
    assert parse_cursor(first.cursor) == {}

    ingest(wind_flight / "flight", object_store, pipeline_settings, "F-1")
    second = _tick(sensor, instance, pipeline_resources, first.cursor)
    pk = partition_key(SITE, "F-1")
    assert [r.partition_key for r in second.run_requests] == [pk]
    etag = object_store.stat(keys.manifest_key(SITE, "F-1")).etag
    assert second.run_requests[0].run_key == f"{pk}@{etag}"
    assert [list(r.partition_keys) for r in second.dynamic_partitions_requests] == [[pk]]
    assert parse_cursor(second.cursor) == {keys.manifest_key(SITE, "F-1"): etag}
    _apply(instance, second)

    again = _tick(sensor, instance, pipeline_resources, second.cursor)
    assert not again.run_requests and not again.dynamic_partitions_requests
    assert again.cursor == second.cursor

    # The daemon is down while two flights arrive; a fresh sensor with the saved cursor misses neither.
    ingest(wind_flight / "flight", object_store, pipeline_settings, "F-2")
    ingest(wind_flight / "flight", object_store, pipeline_settings, "F-3", site="other-site")
    restarted = build_flight_sensor()
    after = _tick(restarted, instance, pipeline_resources, second.cursor)
    assert sorted(r.partition_key for r in after.run_requests) == sorted(
        [partition_key(SITE, "F-2"), partition_key("other-site", "F-3")]
    )
    assert len(parse_cursor(after.cursor)) == 3


def test_a_reingested_changed_manifest_runs_again_but_an_existing_partition_is_not_re_added(
    object_store, pipeline_settings: Settings, pipeline_resources: dict, wind_flight: Path, instance, tmp_path
) -> None:
    sensor = build_flight_sensor()
    ingest(wind_flight / "flight", object_store, pipeline_settings, "F-1")
    first = _tick(sensor, instance, pipeline_resources, None)
    _apply(instance, first)
    old_etag = parse_cursor(first.cursor)[keys.manifest_key(SITE, "F-1")]

    # Re-ingest with one image fewer: the manifest changes, so the flight is processed again.
    smaller = tmp_path / "smaller"
    smaller.mkdir()
    image = sorted((wind_flight / "flight").glob("*.JPG"))[0]
    (smaller / image.name).write_bytes(image.read_bytes())
    ingest(smaller, object_store, pipeline_settings, "F-1")
    second = _tick(sensor, instance, pipeline_resources, first.cursor)
    new_etag = object_store.stat(keys.manifest_key(SITE, "F-1")).etag
    assert new_etag != old_etag
    assert [r.run_key for r in second.run_requests] == [f"{partition_key(SITE, 'F-1')}@{new_etag}"]
    assert second.run_requests[0].tags["skyinspect/reason"] == "re-ingested"
    assert not second.dynamic_partitions_requests  # the partition exists already


def test_objects_that_are_not_flight_manifests_are_ignored(
    object_store, pipeline_resources: dict, instance
) -> None:
    object_store.put_bytes(
        "raw/site/flight/images/manifest.json", b"{}"
    )  # an image folder's file, not a manifest
    object_store.put_bytes("raw/site/manifest.json", b"{}")
    object_store.put_bytes("raw/bad..id/ok/manifest.json".replace("..", "..."), b"{}")
    result = _tick(build_flight_sensor(), instance, pipeline_resources, None)
    assert not result.run_requests


@pytest.mark.parametrize("cursor", ["not json", json.dumps({"v": 99, "manifests": {}}), json.dumps([1, 2])])
def test_a_foreign_cursor_is_refused(cursor: str) -> None:
    with pytest.raises(ValueError, match="cursor"):
        parse_cursor(cursor)


def test_cursor_round_trip_is_canonical() -> None:
    state = {"raw/b/f/manifest.json": "e2", "raw/a/f/manifest.json": "e1"}
    assert parse_cursor(make_cursor(state)) == state
    assert make_cursor(state) == make_cursor(dict(reversed(list(state.items()))))


@pytest.mark.skipif(not _has_findings(), reason="findings.api.process_flight has not landed")
def test_a_flight_already_processed_by_skyinspect_run_is_not_run_again(
    object_store, pipeline_settings: Settings, pipeline_resources: dict, wind_flight: Path, instance
) -> None:
    from pipelines.runner import run_flight

    ingest(wind_flight / "flight", object_store, pipeline_settings, "F-done")
    ingest(wind_flight / "flight", object_store, pipeline_settings, "F-partial")
    assert run_flight(
        pipeline_settings, SITE, "F-done", resources=pipeline_resources, instance=instance
    ).success
    partial = run_flight(pipeline_settings, SITE, "F-partial", resources=pipeline_resources, instance=instance,
                         assets=["flight_manifest", "flight_detections"])  # fmt: skip
    assert partial.success
    result = _tick(build_flight_sensor(), instance, pipeline_resources, None)
    assert [r.partition_key for r in result.run_requests] == [partition_key(SITE, "F-partial")]
    assert len(parse_cursor(result.cursor)) == 2  # both recorded: neither is looked at again

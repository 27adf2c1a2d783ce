"""The flight sensor: new or re-ingested manifests under ``raw/`` → a flight partition and a run of the flight job.

Built by :func:`build_flight_sensor` (a factory, so tests and deployments choose the job, name and interval).

**Cursor.** A JSON object ``{"v": 1, "manifests": {manifest key: ETag}}`` — every manifest already requested,
with the ETag it had. Each tick lists ``raw/``, and a manifest whose key is new or whose ETag changed (the
flight was re-ingested with different content) gets a run; the cursor then holds the current set. The cursor is
committed by Dagster together with the run requests, and each run request carries the run key
``"{partition}@{etag}"``, which Dagster never launches twice — so after a restart (or a lost cursor) no flight is
processed twice, and nothing ingested while the daemon was down is missed. A flight whose current manifest was
already processed completely by some other run (``skyinspect run``) is recorded without a new run.

Cost: one recursive listing of ``raw/`` per tick (S3 returns 1,000 keys a page); on very large buckets raise
``minimum_interval_seconds``.
"""

import json
import logging
from typing import Any

import dagster as dg

from objectstore import keys
from pipelines.flight_assets import flight_job, flights_partitions, partition_key
from pipelines.resources import ObjectStoreResource

log = logging.getLogger(__name__)
CURSOR_VERSION = 1
RAW_PREFIX = "raw/"


def parse_cursor(cursor: str | None) -> dict[str, str]:
    """The ``{manifest key: etag}`` map held in a cursor (empty for ``None``).

    Raises:
        ValueError: a cursor that is not this sensor's JSON format.
    """
    if not cursor:
        return {}
    try:
        doc = json.loads(cursor)
    except json.JSONDecodeError as exc:
        raise ValueError(f"flight sensor cursor is not JSON: {exc}") from exc
    if (
        not isinstance(doc, dict)
        or doc.get("v") != CURSOR_VERSION
        or not isinstance(doc.get("manifests"), dict)
    ):
        raise ValueError(f"flight sensor cursor has an unknown format (expected v={CURSOR_VERSION})")
    return {str(k): str(v) for k, v in doc["manifests"].items()}


def make_cursor(manifests: dict[str, str]) -> str:
    """Serialise ``{manifest key: etag}`` (sorted, so equal states give equal cursors)."""
    return json.dumps(
        {"v": CURSOR_VERSION, "manifests": dict(sorted(manifests.items()))}, separators=(",", ":")
    )


def list_manifests(store: Any) -> dict[str, tuple[str, str, str]]:
    """``{manifest key: (site, flight, etag)}`` for every ``raw/{site}/{flight}/manifest.json`` in the store."""
    found: dict[str, tuple[str, str, str]] = {}
    for obj in store.list(RAW_PREFIX):
        parts = obj.key.split("/")
        if len(parts) != 4 or parts[3] != keys.MANIFEST_NAME:
            continue
        site, flight = parts[1], parts[2]
        try:
            partition_key(site, flight)
        except keys.InvalidKey as exc:
            log.warning("ignoring %s: %s", obj.key, exc)
            continue
        found[obj.key] = (site, flight, obj.etag)
    return found


DATA_VERSION_TAG = "dagster/data_version"


def already_processed(instance: Any, pk: str, etag: str) -> bool:
    """True when one run materialized both ``flight_manifest`` (at data version = ``etag``) and ``flight_reports``
    for partition ``pk`` — e.g. `skyinspect run` did it before the daemon saw the flight."""
    latest: dict[str, Any] = {}
    for name in ("flight_manifest", "flight_reports"):
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(name), asset_partitions=[pk]), limit=1
        ).records
        if not records:
            return False
        latest[name] = records[0]
    manifest = latest["flight_manifest"]
    version = (manifest.asset_materialization.tags or {}).get(DATA_VERSION_TAG)
    return version == etag and manifest.run_id == latest["flight_reports"].run_id


def evaluate_flights(
    store: Any, cursor: str | None, existing_partitions: set[str], instance: Any | None = None
) -> dg.SensorResult:
    """The sensor's decision for the current store contents (pure apart from the listing and the instance).

    With ``instance``, a flight whose current manifest was already processed completely (:func:`already_processed`)
    is recorded in the cursor without a new run.
    """
    seen = parse_cursor(cursor)
    current = list_manifests(store)
    runs: list[dg.RunRequest] = []
    new_partitions: list[str] = []
    for key, (site, flight, etag) in sorted(current.items()):
        if seen.get(key) == etag:
            continue
        pk = partition_key(site, flight)
        if instance is not None and pk in existing_partitions and already_processed(instance, pk, etag):
            log.info("%s: manifest %s already processed; not requesting a run", pk, etag)
            continue
        if pk not in existing_partitions and pk not in new_partitions:
            new_partitions.append(pk)
        runs.append(
            dg.RunRequest(
                run_key=f"{pk}@{etag}",
                partition_key=pk,
                tags={
                    "skyinspect/site": site,
                    "skyinspect/flight": flight,
                    "skyinspect/manifest_etag": etag,
                    "skyinspect/reason": "re-ingested" if key in seen else "new flight",
                },
            )
        )
    new_cursor = make_cursor({key: etag for key, (_, _, etag) in current.items()})
    if not runs:
        return dg.SensorResult(
            skip_reason=f"no new or changed manifests ({len(current)} known)", cursor=new_cursor
        )
    requests = [flights_partitions.build_add_request(new_partitions)] if new_partitions else []
    return dg.SensorResult(run_requests=runs, dynamic_partitions_requests=requests, cursor=new_cursor)


def build_flight_sensor(
    job: Any = flight_job,
    *,
    name: str = "flight_sensor",
    minimum_interval_seconds: int = 30,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.RUNNING,
) -> dg.SensorDefinition:
    """A sensor that adds a ``flights`` partition and requests ``job`` for each new or re-ingested manifest."""

    @dg.sensor(
        name=name,
        job=job,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description="Watches raw/*/*/manifest.json; a new or changed manifest starts the flight job.",
    )
    def _sensor(context: dg.SensorEvaluationContext, store: ObjectStoreResource) -> dg.SensorResult:
        existing: set[str] = set()
        instance = context.instance if _has_instance(context) else None
        if instance is not None:
            existing = set(instance.get_dynamic_partitions(flights_partitions.name))
        with store.client() as client:
            return evaluate_flights(client, context.cursor, existing, instance)

    return _sensor


def _has_instance(context: dg.SensorEvaluationContext) -> bool:
    try:
        context.instance  # noqa: B018 - raises when the context was built without one
    except dg.DagsterInvariantViolationError:
        return False
    return True

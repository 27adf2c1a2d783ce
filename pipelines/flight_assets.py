"""The per-flight assets: ``flight_manifest → flight_detections → flight_findings → flight_reports``.

One dynamic partition per ingested flight (:data:`flights_partitions`, key ``"{site}|{flight}"``). The assets are
thin: the work happens in the stage packages (ingest.manifest, detection.flight, findings.api), and every result
lives in the object store under ``results/{site}/{flight}/`` — the assets return no Python values, so any
executor (in-process, multiprocess, one pod per step) sees the same data.

Each asset has checks beside it; the blocking ones stop the flight's downstream assets when they fail:

* ``flight_manifest``: ``has_images`` (blocking), ``rejects_listed``;
* ``flight_detections``: ``every_image_has_record`` (blocking);
* ``flight_findings``: ``findings_located_or_explained`` (every finding has an asset or a reason why not);
* ``flight_reports``: ``report_parses`` (the HTML report exists, the JSON report parses).

Transient object-store failures (:func:`objectstore.client.is_transient`) are retried by the step's
:data:`STORAGE_RETRY`; anything else fails the step at once (``Failure(allow_retries=False)``).
"""

import contextlib
import json
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from typing import Any, Literal

import dagster as dg
from pydantic import Field

from objectstore import keys
from pipelines.resources import ModelRegistryResource, ObjectStoreResource

GROUP = "flight"
# Partitioned asset checks (one result per flight) are a Dagster "preview" feature in 1.13; we rely on them.
warnings.filterwarnings(
    "ignore", message=".*partitions_def on an AssetCheckSpec.*", category=dg.PreviewWarning
)
PARTITION_SEPARATOR = "|"
flights_partitions = dg.DynamicPartitionsDefinition(name="flights")
STORAGE_RETRY = dg.RetryPolicy(
    max_retries=3, delay=2, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)
ASSET_ID_FIELDS = ("module_id", "string_id", "inverter_id", "turbine_id")


# -------------------------------------------------------------------------------------------------- keys
def partition_key(site: str, flight: str) -> str:
    """``"{site}|{flight}"`` for two safe ids (:func:`objectstore.keys.validate_id`).

    Raises:
        InvalidKey: an unsafe id, or one containing ``...`` (Dagster refuses that in partition keys).
    """
    keys.validate_id(site, "site")
    keys.validate_id(flight, "flight")
    key = f"{site}{PARTITION_SEPARATOR}{flight}"
    if "..." in key:
        raise keys.InvalidKey(f"partition key {key!r}: Dagster partition keys cannot contain '...'")
    return key


def parse_partition_key(key: str) -> tuple[str, str]:
    """Inverse of :func:`partition_key`.

    Raises:
        InvalidKey: not of the form ``site|flight`` with safe ids.
    """
    site, sep, flight = key.partition(PARTITION_SEPARATOR)
    if not sep:
        raise keys.InvalidKey(f"partition key {key!r} is not of the form 'site{PARTITION_SEPARATOR}flight'")
    return keys.validate_id(site, "site"), keys.validate_id(flight, "flight")


@contextlib.contextmanager
def _storage_errors() -> Iterator[None]:
    """Let transient store errors propagate (the RetryPolicy retries them); fail others without retrying."""
    from objectstore.client import is_transient

    try:
        yield
    except dg.Failure:
        raise
    except Exception as exc:
        if is_transient(exc):
            raise
        raise dg.Failure(description=f"{type(exc).__name__}: {exc}", allow_retries=False) from exc


def _count(items: list[dict[str, Any]], field: str) -> dict[str, int]:
    return dict(sorted(Counter(str(i.get(field)) for i in items if i.get(field) is not None).items()))


class DetectionConfig(dg.Config):
    """How a flight's images are run through the model (defaults suit a 2-8 core CPU box)."""

    batch_size: int = Field(default=8, description="Whole frames per model call.")
    workers: int = Field(default=4, description="Download + decode threads.")
    conf: float | None = Field(
        default=None,
        description="Keep detections scoring above this. None: the model's operating point (its skyinspect.conf "
        "metadata, chosen on its validation flight), else 0.25.",
    )
    iou: float = Field(default=0.45, description="NMS IoU threshold.")
    slice_factor: float = Field(default=2.0, description="Slice frames larger than this many slicing tiles.")
    intra_op_threads: int | None = Field(default=None, description="CPU inference threads (None: default).")
    hint: Literal["latency", "throughput"] = Field(
        default="throughput",
        description="CPU inference: one single-thread model stream per core with each batch of frames or tiles split "
        "across them (throughput: 1.05x the frames per second on pv-rgb tiles, the same on whole pv-thermal frames on 2 "
        "cores, `python -m bench cpu`) or one stream using every thread (latency).",
    )


# -------------------------------------------------------------------------------------------------- manifest
@dg.asset(
    partitions_def=flights_partitions,
    group_name=GROUP,
    retry_policy=STORAGE_RETRY,
    kinds={"s3", "json"},
    description="The manifest `skyinspect ingest` wrote for the flight (raw/{site}/{flight}/manifest.json).",
)
def flight_manifest(context: dg.AssetExecutionContext, store: ObjectStoreResource) -> dg.MaterializeResult:
    from ingest.manifest import read_manifest

    site, flight = parse_partition_key(context.partition_key)
    with _storage_errors(), store.client() as client:
        manifest = read_manifest(client, site, flight)
        info = client.stat(keys.manifest_key(site, flight))
    return dg.MaterializeResult(
        metadata={
            "site": site,
            "flight": flight,
            "kind": manifest["kind"],
            "images": len(manifest["images"]),
            "rejected": len(manifest["rejected"]),
            "skipped": len(manifest["skipped"]),
            "bytes": int(manifest["counts"].get("bytes", 0)),
            "key": keys.manifest_key(site, flight),
            "url": client.url(keys.manifest_key(site, flight)),
        },
        data_version=dg.DataVersion(info.etag) if info is not None and info.etag else None,
    )


@dg.asset_check(
    asset=flight_manifest,
    blocking=True,
    partitions_def=flights_partitions,
    description="The flight has at least one ingested image.",
)
def has_images(context: dg.AssetCheckExecutionContext, store: ObjectStoreResource) -> dg.AssetCheckResult:
    from ingest.manifest import read_manifest

    site, flight = parse_partition_key(context.partition_key)
    with store.client() as client:
        manifest = read_manifest(client, site, flight)
    n = len(manifest["images"])
    return dg.AssetCheckResult(
        passed=n > 0,
        metadata={"images": n, "rejected": len(manifest["rejected"])},
        description=None
        if n
        else f"{site}/{flight}: the manifest lists no images (all rejected or skipped?)",
    )


@dg.asset_check(
    asset=flight_manifest,
    partitions_def=flights_partitions,
    description="Every rejected file is listed with a reason and its quarantine key.",
)
def rejects_listed(context: dg.AssetCheckExecutionContext, store: ObjectStoreResource) -> dg.AssetCheckResult:
    from ingest.manifest import read_manifest

    site, flight = parse_partition_key(context.partition_key)
    with store.client() as client:
        manifest = read_manifest(client, site, flight)
    rejected = manifest["rejected"]
    bad = [r.get("path") for r in rejected if not r.get("reason") or not r.get("quarantine_key")]
    counted = int(manifest["counts"].get("rejected", len(rejected)))
    ok = not bad and counted == len(rejected)
    return dg.AssetCheckResult(
        passed=ok,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "rejected": len(rejected),
            "counted": counted,
            "without_reason": bad[:20],
            "reasons": _count(rejected, "reason"),
        },
    )


# -------------------------------------------------------------------------------------------------- detection
@dg.asset(
    partitions_def=flights_partitions,
    group_name=GROUP,
    deps=[flight_manifest],
    retry_policy=STORAGE_RETRY,
    kinds={"onnx", "s3"},
    description="Defect detections for every image, one JSON line each (results/{site}/{flight}/detections.jsonl). "
    "All images are batched inside this one step; the model is the domain's champion, else the shipped default.",
)
def flight_detections(
    context: dg.AssetExecutionContext,
    config: DetectionConfig,
    store: ObjectStoreResource,
    models: ModelRegistryResource,
) -> dg.MaterializeResult:
    from detection.flight import FlightDetectionStats, detect_flight
    from detection.model_meta import DEFAULT_CONF, resolve_conf
    from ingest.manifest import read_manifest
    from pipelines.resources import open_detector

    site, flight = parse_partition_key(context.partition_key)
    with _storage_errors(), store.client() as client:
        manifest = read_manifest(client, site, flight)
        kind = manifest["kind"]
        if kind == "unknown":
            raise dg.Failure(
                description=f"{site}/{flight}: the flight's kind is unknown "
                f"({manifest.get('kind_decision', {}).get('detail', '')}); re-ingest it with --kind",
                allow_retries=False,
            )
        resolved = models.resolve(kind)
        context.log.info("model for %s: %s", kind, resolved.reason)
        detector = open_detector(
            resolved.path,
            conf=DEFAULT_CONF if config.conf is None else config.conf,
            iou=config.iou,
            batch_size=config.batch_size,
            intra_op_threads=config.intra_op_threads,
            hint=config.hint,
        )
        # the threshold: the run config's, else the model's own operating point (skyinspect.conf), else 0.25;
        # detect_flight puts it in the run tag of its parts
        detector.conf, conf_from = resolve_conf(config.conf, detector.meta)
        context.log.info("confidence threshold %.3g (from %s)", detector.conf, conf_from)
        stats = FlightDetectionStats()
        model = {"domain": resolved.domain, "version": resolved.version, "sha256": resolved.sha256}
        detect_flight(
            client,
            site,
            flight,
            detector,
            batch_size=config.batch_size,
            workers=config.workers,
            slice_factor=config.slice_factor,
            model=model,
            progress=False,
            stats=stats,
        )
    return dg.MaterializeResult(
        metadata={
            "images": stats.images,
            "errors": stats.errors,
            "detections": stats.detections,
            "by_class": stats.by_class,
            "sliced_images": stats.sliced_images,
            "parts_reused": stats.parts_reused,
            "seconds": round(stats.seconds, 2),
            "ms_per_image": round(1000 * stats.inference_s / max(stats.images, 1), 1),
            "model": resolved.to_dict(),
            "conf": detector.conf,
            "conf_from": conf_from,
            "key": stats.key,
        }
    )


@dg.asset_check(
    asset=flight_detections,
    blocking=True,
    partitions_def=flights_partitions,
    description="Every manifest image has a detection record (detections or an error).",
)
def every_image_has_record(
    context: dg.AssetCheckExecutionContext, store: ObjectStoreResource
) -> dg.AssetCheckResult:
    from detection.flight import read_detections
    from ingest.manifest import read_manifest

    site, flight = parse_partition_key(context.partition_key)
    with store.client() as client:
        manifest = read_manifest(client, site, flight)
        records = read_detections(client, site, flight)
    expected = Counter(im["key"] for im in manifest["images"])
    got = Counter(r.get("image_key") for r in records)
    malformed = [
        r.get("image_key")
        for r in records
        if not isinstance(r.get("detections"), list) and not r.get("error")
    ]
    missing = sorted((expected - got).elements())
    extra = sorted(str(k) for k in (got - expected).elements())
    errors = [r for r in records if r.get("error")]
    return dg.AssetCheckResult(
        passed=not missing and not extra and not malformed,
        metadata={
            "images": sum(expected.values()),
            "records": len(records),
            "missing": missing[:20],
            "unexpected_or_duplicated": extra[:20],
            "malformed": malformed[:20],
            "error_records": len(errors),
        },
    )


# -------------------------------------------------------------------------------------------------- findings
@dg.asset(
    partitions_def=flights_partitions,
    group_name=GROUP,
    deps=[flight_detections],
    retry_policy=STORAGE_RETRY,
    kinds={"python", "s3"},
    description="Unique, located, graded findings, fault warnings and reports (findings.api.process_flight).",
)
def flight_findings(context: dg.AssetExecutionContext, store: ObjectStoreResource) -> dg.MaterializeResult:
    try:
        from findings.api import process_flight
    except ImportError as exc:
        raise dg.Failure(
            description=f"findings.api.process_flight is not available ({exc}); the findings stage is missing",
            allow_retries=False,
        ) from exc

    site, flight = parse_partition_key(context.partition_key)
    started = time.perf_counter()
    with _storage_errors(), store.client() as client:
        result = process_flight(client, site, flight, data_dir=store.settings.get().data_dir)
        findings = _findings_list(client.get_json(keys.findings_key(site, flight)))
    counts = result.counts or {}
    return dg.MaterializeResult(
        metadata={
            "findings": len(findings),
            "critical": counts.get("critical"),
            "by_class": counts.get("by_class") or _count(findings, "class"),
            "by_severity": {k: v for k, v in (counts.get("by_severity") or {}).items() if v},
            "suppressed": counts.get("suppressed", 0),
            "suppressed_by_rule": counts.get("suppressed_by_rule") or {},
            "located": sum(1 for f in findings if is_located(f)),
            "power_loss_w": counts.get("power_loss_w"),
            "warnings": len(result.warnings),
            "warnings_delivered": len(result.deliveries),
            "previous_flight": result.previous_flight,
            "reports": sorted(k for k in result.report_keys if not k.startswith("crop:")),
            "crops": sum(1 for k in result.report_keys if k.startswith("crop:")),
            "stage_seconds": {k: round(v, 2) for k, v in (result.timings or {}).items()},
            "seconds": round(time.perf_counter() - started, 2),
            "key": keys.findings_key(site, flight),
        }
    )


def _findings_list(doc: Any) -> list[dict[str, Any]]:
    """The findings of a findings.json document (a list, or an object with a ``findings`` list)."""
    if isinstance(doc, list):
        return doc
    if isinstance(doc, dict) and isinstance(doc.get("findings"), list):
        return doc["findings"]
    raise ValueError("findings.json: expected a list or an object with a 'findings' list")


def _warnings_list(client: Any, site: str, flight: str) -> list[dict[str, Any]]:
    from objectstore.client import ObjectNotFound

    try:
        doc = client.get_json(keys.warnings_key(site, flight))
    except ObjectNotFound:
        return []
    if isinstance(doc, dict):
        doc = doc.get("warnings", [])
    return doc if isinstance(doc, list) else []


def finding_problem(finding: dict[str, Any]) -> str | None:
    """Why a finding fails the "located or explained" check, or None when it passes.

    A finding passes when its ``asset`` names a module, string, inverter or turbine, or when it says why not:
    ``asset.reason``, ``location.reason`` or a non-empty ``reasons`` list (findings/findings.schema.json).
    """
    asset = finding.get("asset") if isinstance(finding.get("asset"), dict) else {}
    if any(asset.get(k) for k in ASSET_ID_FIELDS):
        return None
    location = finding.get("location") if isinstance(finding.get("location"), dict) else {}
    for why in (asset.get("reason"), location.get("reason")):
        if isinstance(why, str) and why.strip():
            return None
    if any(isinstance(r, str) and r.strip() for r in finding.get("reasons") or []):
        return None
    return "no asset and no reason why not"


def is_located(finding: dict[str, Any]) -> bool:
    asset = finding.get("asset") if isinstance(finding.get("asset"), dict) else {}
    return any(asset.get(k) for k in ASSET_ID_FIELDS)


@dg.asset_check(
    asset=flight_findings,
    partitions_def=flights_partitions,
    description="findings.json follows its schema; every finding is tied to an asset (module/string/turbine) "
    "or says why not.",
)
def findings_located_or_explained(
    context: dg.AssetCheckExecutionContext, store: ObjectStoreResource
) -> dg.AssetCheckResult:
    site, flight = parse_partition_key(context.partition_key)
    with store.client() as client:
        doc = client.get_json(keys.findings_key(site, flight))
    findings = _findings_list(doc)
    try:
        from findings.schema import schema_errors

        schema = schema_errors(doc)
    except ImportError:
        schema = []
    bad = [str(f.get("id") or i) for i, f in enumerate(findings) if finding_problem(f)]
    return dg.AssetCheckResult(
        passed=not bad and not schema,
        metadata={
            "findings": len(findings),
            "located": sum(1 for f in findings if is_located(f)),
            "unexplained": bad[:20],
            "schema_errors": schema[:20],
        },
    )


# -------------------------------------------------------------------------------------------------- reports
@dg.asset(
    partitions_def=flights_partitions,
    group_name=GROUP,
    deps=[flight_findings],
    retry_policy=STORAGE_RETRY,
    kinds={"html", "s3"},
    description="The flight's reports (results/{site}/{flight}/reports/) and warnings; the HTML report is also "
    "copied under {data_dir}/reports/{site}/{flight}/ to open locally.",
)
def flight_reports(context: dg.AssetExecutionContext, store: ObjectStoreResource) -> dg.MaterializeResult:
    site, flight = parse_partition_key(context.partition_key)
    with _storage_errors(), store.client() as client:
        index = collect_reports(client, store.settings.get().data_dir, site, flight)
    if not index["reports"]:
        raise dg.Failure(
            description=f"{site}/{flight}: no reports under {index['prefix']}", allow_retries=False
        )
    return dg.MaterializeResult(
        metadata={
            "reports": sorted(index["reports"]),
            "html": dg.MetadataValue.path(index["html_local"]) if index["html_local"] else None,
            "warnings": index["warnings"],
            "warnings_key": keys.warnings_key(site, flight),
            "local_dir": dg.MetadataValue.path(index["local_dir"]),
        }
    )


def collect_reports(client: Any, data_dir: Any, site: str, flight: str) -> dict[str, Any]:
    """List a flight's reports, copy them under ``{data_dir}/reports/{site}/{flight}/``; return their index."""
    from pathlib import Path

    prefix = keys.report_key(site, flight, "x")[:-1]
    local = Path(data_dir) / "reports" / site / flight
    reports: dict[str, str] = {}
    html_local = None
    for obj in client.list(prefix):
        name = obj.key[len(prefix) :]
        reports[name] = obj.key
        target = client.download_file(obj.key, local / name)
        if name.endswith(".html") and (html_local is None or name in {"report.html", "index.html"}):
            html_local = str(target)
    warnings = _warnings_list(client, site, flight)
    return {
        "prefix": prefix,
        "reports": reports,
        "html_local": html_local,
        "local_dir": str(local),
        "warnings": len(warnings),
    }


@dg.asset_check(
    asset=flight_reports,
    blocking=True,
    partitions_def=flights_partitions,
    description="An HTML report exists and is not empty; every JSON report parses.",
)
def report_parses(context: dg.AssetCheckExecutionContext, store: ObjectStoreResource) -> dg.AssetCheckResult:
    site, flight = parse_partition_key(context.partition_key)
    prefix = keys.report_key(site, flight, "x")[:-1]
    problems: list[str] = []
    html = 0
    with store.client() as client:
        objs = list(client.list(prefix))
        for obj in objs:
            if obj.key.endswith(".html"):
                text = client.get_bytes(obj.key).decode("utf-8", errors="replace")
                html += 1
                if "<html" not in text.lower() or obj.size == 0:
                    problems.append(f"{obj.key}: not an HTML document")
            elif obj.key.endswith((".json", ".geojson")):
                try:
                    json.loads(client.get_bytes(obj.key))
                except ValueError as exc:
                    problems.append(f"{obj.key}: {exc}")
    if not html:
        problems.append(f"no HTML report under {prefix}")
    return dg.AssetCheckResult(
        passed=not problems, metadata={"reports": len(objs), "problems": problems[:20]}
    )


FLIGHT_ASSETS = [flight_manifest, flight_detections, flight_findings, flight_reports]
FLIGHT_CHECKS = [
    has_images,
    rejects_listed,
    every_image_has_record,
    findings_located_or_explained,
    report_parses,
]
flight_job = dg.define_asset_job(
    "flight_job",
    selection=dg.AssetSelection.assets(*FLIGHT_ASSETS),
    description="Process one ingested flight: manifest → detections → findings → reports.",
    tags={"skyinspect/job": "flight"},
)

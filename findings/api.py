"""Store-level entry point: process one ingested flight into findings, warnings and reports.

:func:`process_flight` reads from the object store the flight's manifest (``raw/{site}/{flight}/manifest.json``),
its detections (``results/{site}/{flight}/detections.jsonl`` unless given), the site's layout
(``sites/{site}/layout.geojson``, optional) and the previous inspection's findings (the latest other flight of the
site inspected before this one), builds the findings (:func:`findings.build.build_findings`), raises fault
warnings and POSTs them to the configured webhooks (:mod:`findings.alerts`), writes ``findings.json``,
``warnings.json`` and the reports to the store and keeps a local copy under
``settings.data_dir/reports/{site}/{flight}/``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from findings.alerts import StoreLedger, build_warnings, send_warnings
from findings.build import BuildOptions, FlightFindings, build_findings
from findings.config import FindingsConfig
from findings.layout import parse_layout
from findings.thermal import read_radiometric_tiff
from objectstore import keys
from objectstore.client import ObjectNotFound, ObjectStore

log = logging.getLogger(__name__)

WARNINGS_SCHEMA_VERSION = "1.0"


@dataclass
class ProcessResult:
    """Where a processed flight's outputs are, and what they say."""

    site: str
    flight: str
    findings_key: str
    warnings_key: str
    report_keys: dict[str, str]
    local_dir: Path
    counts: dict[str, Any]
    warnings: list[dict[str, Any]]
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    previous_flight: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds per stage: georef, dedup, assign, grade, trend, crops (build_findings), reports, upload."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "site": self.site,
            "flight": self.flight,
            "findings_key": self.findings_key,
            "warnings_key": self.warnings_key,
            "report_keys": self.report_keys,
            "local_dir": str(self.local_dir),
            "counts": self.counts,
            "warnings": len(self.warnings),
            "deliveries": self.deliveries,
            "previous_flight": self.previous_flight,
            "timings": self.timings,
        }


def read_detections(store: ObjectStore, site: str, flight: str) -> list[dict[str, Any]]:
    """The flight's per-image detection records from ``detections.jsonl``.

    Raises:
        ObjectNotFound: no detections were stored for the flight.
        ValueError: a line that is not a JSON object (the message gives the line number).
    """
    key = keys.detections_key(site, flight)
    return parse_jsonl(store.get_bytes(key).decode("utf-8"), store.url(key))


def parse_jsonl(text: str, where: str) -> list[dict[str, Any]]:
    out = []
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where} line {i}: not JSON ({exc})") from exc
        if not isinstance(obj, dict):
            raise ValueError(f"{where} line {i}: expected a JSON object per line")
        out.append(obj)
    return out


def read_layout(store: ObjectStore, site: str) -> dict[str, Any] | None:
    try:
        return store.get_json(keys.site_layout_key(site))
    except ObjectNotFound:
        return None


def site_findings(store: ObjectStore, site: str) -> dict[str, dict[str, Any]]:
    """flight → findings.json of every processed flight of ``site``."""
    prefix = f"results/{keys.validate_id(site, 'site')}/"
    out = {}
    for info in store.list(prefix):
        if info.key.endswith("/findings.json") and info.key.count("/") == 3:
            flight = info.key[len(prefix) :].split("/", 1)[0]
            try:
                out[flight] = store.get_json(info.key)
            except (ObjectNotFound, ValueError) as exc:
                log.warning("skipping %s: %s", info.key, exc)
    return out


def previous_findings(
    docs: dict[str, dict[str, Any]], flight: str, inspection_time: str | None, kind: str | None = None
) -> dict[str, Any] | None:
    """The latest other inspection of the same kind before ``inspection_time`` (any when the time is unknown)."""
    others = [d for f, d in docs.items() if f != flight and (kind is None or d.get("kind") == kind)]
    if inspection_time:
        earlier = [d for d in others if d.get("inspection_time") and d["inspection_time"] < inspection_time]
        others = earlier
    if not others:
        return None
    return max(others, key=lambda d: (d.get("inspection_time") or "", d.get("generated") or ""))


def frame_keys(manifest: dict[str, Any], site: str, flight: str) -> dict[str, str]:
    """relative path (each of an image's paths) → the image's store key."""
    paths: dict[str, str] = {}
    for rec in manifest.get("images", []):
        for p in [rec.get("path"), *(rec.get("paths") or [])]:
            if p:
                paths[p] = rec.get("key") or keys.image_key(site, flight, rec["path"])
    return paths


class Prefetcher:
    """Fetches objects ahead of their use, in the order they will be asked for, at most ``ahead`` at a time.

    ``get(key)`` returns the bytes of ``key``: from the prefetch when it was planned (and starts the next
    planned fetch), else fetched now. Memory holds at most ``ahead`` objects not yet asked for.
    """

    def __init__(self, store: ObjectStore, planned: list[str], ahead: int = 8, workers: int = 4) -> None:
        self.store = store
        self.planned = list(dict.fromkeys(planned))
        self.next = 0
        self.ahead = ahead
        self.pending: dict[str, Future[bytes]] = {}
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="findings-prefetch")
        self.lock = threading.Lock()
        self._top_up()

    def _top_up(self) -> None:
        while len(self.pending) < self.ahead and self.next < len(self.planned):
            key = self.planned[self.next]
            self.next += 1
            self.pending[key] = self.pool.submit(self.store.get_bytes, key)

    def get(self, key: str) -> bytes:
        with self.lock:
            future = self.pending.pop(key, None)
            self._top_up()
        return future.result() if future is not None else self.store.get_bytes(key)

    def close(self) -> None:
        with self.lock:
            for future in self.pending.values():
                future.cancel()
            self.pending.clear()
        self.pool.shutdown(wait=True)


def store_readers(
    store: ObjectStore,
    manifest: dict[str, Any],
    site: str,
    flight: str,
    prefetch: Prefetcher | None = None,
):
    """(thermal_reader, image_reader) that fetch a flight's frames from the store by relative path.

    ``prefetch``: radiometric frames are taken from it when it has them planned (see :func:`thermal_plan`).
    """
    paths = frame_keys(manifest, site, flight)

    def key_of(rel: str) -> str:
        return paths.get(rel) or keys.image_key(site, flight, rel)

    def thermal(rel: str) -> np.ndarray:
        key = key_of(rel)
        return read_radiometric_tiff(prefetch.get(key) if prefetch is not None else store.get_bytes(key))

    def image(rel: str) -> np.ndarray:
        data = np.frombuffer(store.get_bytes(key_of(rel)), np.uint8)
        img = cv2.imdecode(data, cv2.IMREAD_COLOR)
        if img is None:
            raise ValueError(f"{rel}: not decodable as an image")
        return img

    return thermal, image


def thermal_plan(manifest: dict[str, Any], dets: list[dict[str, Any]], site: str, flight: str) -> list[str]:
    """Store keys of the radiometric frames the findings will read, in the order they read them (the frames
    with detections, in the detection records' order); empty for RGB flights."""
    if manifest.get("kind") != "pv-thermal":
        return []
    paths = frame_keys(manifest, site, flight)
    out = []
    for rec in dets:
        rel = rec.get("relative_path") or rec.get("image_key")
        if rec.get("detections") and rel in paths:
            out.append(paths[rel])
    return out


def _review_status(site: str, flight: str, settings: Any) -> dict[str, dict[str, Any]]:
    """The engineers' review status of the flight's findings (empty when nothing was reviewed on this host)."""
    from review.status import review_status  # imported here: review imports findings.schema

    return review_status(site, flight, settings=settings)


def process_flight(
    store: ObjectStore,
    site: str,
    flight: str,
    *,
    image_detections: list[dict[str, Any]] | None = None,
    data_dir: Path | None = None,
    conditions: dict[str, Any] | None = None,
    config: FindingsConfig | None = None,
    options: BuildOptions | None = None,
    send: bool = True,
) -> ProcessResult:
    """Findings, warnings and reports of one ingested flight (see the module docstring).

    Args:
        store: the object store holding the flight.
        site, flight: safe ids.
        image_detections: the detection records; default: read ``detections.jsonl`` from the store.
        data_dir: where the local copy goes (``data_dir/reports/{site}/{flight}``); default: the settings'.
        conditions: overrides of the manifest's inspection conditions (e.g. from the command line).
        config: webhooks and module power (default: :meth:`FindingsConfig.from_env`).
        options: build options (module power defaults to ``config.module_power_w``).
        send: POST warnings to the configured webhooks.

    Raises:
        ObjectNotFound: no manifest (flight not ingested) or no detections.
        ingest.manifest.ManifestError, findings.layout.LayoutError, ValueError: invalid inputs.
    """
    from findings.build import _inspection_time
    from findings.reports import write_reports
    from ingest.manifest import read_manifest

    cfg = config or FindingsConfig.from_env()
    opts = options or BuildOptions(module_power_w=cfg.module_power_w)
    manifest = read_manifest(store, site, flight)
    dets = image_detections if image_detections is not None else read_detections(store, site, flight)
    layout_doc = read_layout(store, site)
    layout = parse_layout(layout_doc, store.url(keys.site_layout_key(site))) if layout_doc else None
    docs = site_findings(store, site)
    previous = previous_findings(docs, flight, _inspection_time(manifest), manifest.get("kind"))
    prefetch = Prefetcher(store, thermal_plan(manifest, dets, site, flight))
    thermal, image = store_readers(store, manifest, site, flight, prefetch)
    try:
        ff: FlightFindings = build_findings(
            manifest,
            dets,
            layout=layout,
            thermal_reader=thermal,
            image_reader=image,
            previous=previous,
            conditions=conditions,
            options=opts,
        )
    finally:
        prefetch.close()
    timings = dict(ff.timings)
    ff.doc["site"], ff.doc["flight"] = site, flight
    warnings = build_warnings(ff.doc)
    deliveries: list[dict[str, Any]] = []
    if send and cfg.webhook_urls and warnings:
        deliveries = send_warnings(
            warnings,
            cfg.webhook_urls,
            StoreLedger(store, site),
            attempts=cfg.webhook_attempts,
            backoff_s=cfg.webhook_backoff_s,
            timeout_s=cfg.webhook_timeout_s,
        )
    warnings_doc = {
        "schema_version": WARNINGS_SCHEMA_VERSION,
        "site": site,
        "flight": flight,
        "generated": ff.doc["generated"],
        "warnings": warnings,
        "deliveries": deliveries,
    }
    from skyinspect.config import load_settings

    settings = load_settings()
    if data_dir is not None:
        settings = settings.replace(data_dir=Path(data_dir))
    local = settings.data_dir / "reports" / site / flight
    docs[flight] = ff.doc
    t0 = time.perf_counter()
    paths = write_reports(
        ff,
        local,
        warnings=warnings,
        site_docs=list(docs.values()),
        review=_review_status(site, flight, settings),
    )
    (local / "warnings.json").write_text(json.dumps(warnings_doc, indent=1, ensure_ascii=False), "utf-8")
    report_keys = {
        name: keys.report_key(site, flight, p.relative_to(local).as_posix()) for name, p in paths.items()
    }
    t1 = time.perf_counter()
    upload_files(store, [(report_keys[name], path) for name, path in paths.items()])
    fkey, wkey = keys.findings_key(site, flight), keys.warnings_key(site, flight)
    store.put_json(wkey, warnings_doc)
    store.put_json(fkey, ff.doc)  # last: its presence means the flight's results are complete
    timings["reports"], timings["upload"] = t1 - t0, time.perf_counter() - t1
    log.info(
        "%s/%s: %d findings, %d warnings → %s (%s)",
        site,
        flight,
        len(ff.findings),
        len(warnings),
        store.url(fkey),
        ", ".join(f"{k} {v:.2f} s" for k, v in timings.items()),
    )
    return ProcessResult(
        site,
        flight,
        fkey,
        wkey,
        report_keys,
        local,
        ff.doc["counts"],
        warnings,
        deliveries,
        (previous or {}).get("flight"),
        {k: round(v, 3) for k, v in timings.items()},
    )


UPLOAD_WORKERS = 8


def upload_files(store: ObjectStore, items: list[tuple[str, Path]], workers: int = UPLOAD_WORKERS) -> None:
    """PUT every ``(key, local path)`` — in parallel (a flight with many findings has thousands of crops, and
    one PUT at a time waits on the round trip of each).

    Raises:
        objectstore.client.ObjectStoreError: the first upload that failed (after the client's retries).
    """
    if len(items) <= 1 or workers <= 1:
        for key, path in items:
            store.put_file(key, path)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="findings-upload") as pool:
        for future in [pool.submit(store.put_file, key, path) for key, path in items]:
            future.result()


def import_layout(store: ObjectStore, site: str, data: bytes, name: str = "layout") -> dict[str, Any]:
    """Validate a layout GeoJSON and store it at ``sites/{site}/layout.geojson``; returns a short summary.

    Raises:
        findings.layout.LayoutError: the file is not a valid layout (the message names the feature).
    """
    lay = parse_layout(data, name)
    doc = json.loads(data)
    store.put_bytes(
        keys.site_layout_key(site), json.dumps(doc).encode("utf-8"), content_type="application/geo+json"
    )
    return {
        "site": site,
        "key": keys.site_layout_key(site),
        "kind": lay.kind,
        "modules": len(lay.modules),
        "strings": len(lay.strings),
        "turbines": len(lay.turbines),
    }

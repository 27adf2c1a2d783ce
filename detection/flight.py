"""Batch detection of one ingested flight: :func:`detect_flight`. Stage logic, callable without Dagster.

    det = Detector.from_onnx("models/pv-rgb.onnx")
    records = detect_flight(store, "plant-north", "2024-06-01", det, batch_size=8, workers=4)

What it does:

1. reads the flight's manifest (``raw/{site}/{flight}/manifest.json``, :mod:`ingest.manifest`);
2. downloads, decodes and pre-processes (model view, letterbox, float tensor) the images in a small thread pool
   while the main thread runs the model (:func:`detection.prefetch.prefetch_map`): at most
   ``workers + batch_size`` images are in flight (a bounded window of futures, consumed in manifest order), so
   memory stays flat however large the flight is;
3. runs whole frames in batches of ``batch_size``; a frame much larger than the model input (more than
   ``slice_factor`` × the input along either side) goes through :class:`~detection.slicing.SlicedDetector`
   instead, so a 4000×3000 frame keeps its resolution;
4. writes one JSON line per image to ``results/{site}/{flight}/detections.jsonl``
   (:func:`objectstore.keys.detections_key`)::

       {"relative_path", "image_key", "width", "height",
        "model": {"domain", "version", "sha256"},
        "detections": [{"xyxy": [x1, y1, x2, y2] (frame pixels), "confidence", "class_id", "class_name"}],
        "error": null | "reason"}

   An image that cannot be downloaded (missing object) or decoded gets a record with ``error`` set and no
   detections; it never stops the flight.

**Resumable.** Records are written in parts of ``part_size`` images under
``results/{site}/{flight}/detections.parts/{run tag}/{first index:06d}.jsonl``; the run tag is a digest of the
manifest's image list, the model's sha256 and the detection settings. When a run is interrupted, the next run
with the same inputs skips the parts already written. At the end the parts are merged in manifest order into
``detections.jsonl`` in one PUT (readers see the old object or the new one, never half of one) and deleted.
A re-run therefore never duplicates a record.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from detection.detections import Detections
from detection.images import ImageReadError, decode_image
from detection.inference import Detector, PreparedImage
from detection.prefetch import prefetch_map
from detection.slicing import SlicedDetector
from ingest.manifest import read_manifest
from objectstore import keys
from objectstore.client import ObjectNotFound, ObjectStore, with_retries

logger = logging.getLogger(__name__)

RECORD_FIELDS = ("relative_path", "image_key", "width", "height", "model", "detections", "error")
DEFAULT_PART_SIZE = 64
DEFAULT_SLICE_FACTOR = 2.0


class FlightDetectionError(RuntimeError):
    """The flight cannot be processed at all (no manifest, bad arguments); the message names the flight."""


@dataclass
class FlightDetectionStats:
    """Counts and timings of one :func:`detect_flight` call (filled in as it runs)."""

    images: int = 0
    errors: int = 0
    detections: int = 0
    sliced_images: int = 0
    parts_reused: int = 0
    parts_written: int = 0
    by_class: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    inference_s: float = 0.0
    key: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "images": self.images,
            "errors": self.errors,
            "detections": self.detections,
            "sliced_images": self.sliced_images,
            "parts_reused": self.parts_reused,
            "parts_written": self.parts_written,
            "by_class": dict(sorted(self.by_class.items())),
            "seconds": round(self.seconds, 3),
            "inference_s": round(self.inference_s, 3),
            "key": self.key,
        }


@dataclass(frozen=True)
class _Loaded:
    """One image after download + decode: the pixels, or the reason it could not be read."""

    index: int
    record: dict[str, Any]
    image: np.ndarray | None
    """The decoded pixels: a reduced decode (``Detector.decode_frame``) for a JPEG detected whole."""
    error: str | None
    prepared: PreparedImage | None = None
    """The model's input, made in the pool for frames detected whole (``None``: sliced, or unreadable)."""

    @property
    def shape(self) -> tuple[int, int]:
        """The frame's full (h, w), whatever scale it was decoded at."""
        return int(self.record["height"]), int(self.record["width"])


def _file_sha256(path: str | Path) -> str | None:
    p = Path(path)
    if not p.is_file():
        return None
    digest = hashlib.sha256()
    with open(p, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def model_info(
    detector: Detector, *, version: str | None = None, sha256: str | None = None
) -> dict[str, Any]:
    """``{"domain", "version", "sha256"}`` of a detector: from its metadata and model file unless given."""
    meta = detector.meta
    return {
        "domain": meta.domain.value if meta.domain is not None else None,
        "version": version or meta.model_version,
        "sha256": sha256 or _file_sha256(meta.source),
    }


def _base_detector(runner: Detector | SlicedDetector) -> Detector:
    if isinstance(runner, SlicedDetector):
        return runner.detector
    if isinstance(runner, Detector):
        return runner
    raise FlightDetectionError(f"detector must be a Detector or SlicedDetector, got {type(runner).__name__}")


def _to_full(dets: Detections, loaded: _Loaded) -> Detections:
    """Detections on a reduced decode of ``loaded`` → the full frame's pixels (unchanged when it was not reduced)."""
    h, w = loaded.image.shape[:2]  # type: ignore[union-attr]
    fh, fw = loaded.shape
    if (h, w) == (fh, fw):
        return dets
    xyxy = dets.xyxy * np.array([fw / w, fh / h, fw / w, fh / h], np.float32)
    return Detections(xyxy, dets.confidence, dets.class_id, dets.data)


def _needs_slicing(shape: tuple[int, ...], tile_hw: tuple[int, int], factor: float) -> bool:
    """True when an (h, w[, c]) frame is more than ``factor`` × the slicing tile along either side."""
    return shape[0] > factor * tile_hw[0] or shape[1] > factor * tile_hw[1]


def _run_tag(manifest: dict[str, Any], model: dict[str, Any], settings: dict[str, Any]) -> str:
    """Digest naming a run's parts: the same images, model and settings give the same tag."""
    payload = {
        "images": [(im.get("key"), im.get("sha256")) for im in manifest["images"]],
        "model": model,
        "settings": settings,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _load(
    store: ObjectStore,
    index: int,
    image: dict[str, Any],
    prepare: Callable[[np.ndarray, tuple[int, int] | None], PreparedImage | None] | None = None,
    decode: Callable[[bytes, str], tuple[np.ndarray, tuple[int, int] | None]] | None = None,
) -> _Loaded:
    """Download, decode (``decode``: pixels + full shape when reduced) and (``prepare``) pre-process one manifest
    image (runs in the pool)."""
    key = image["key"]
    rel = image.get("path") or keys.relative_path_of(key, key.rsplit("/images/", 1)[0] + "/images/")
    base = {
        "relative_path": rel,
        "image_key": key,
        "width": image.get("width"),
        "height": image.get("height"),
    }
    try:
        data = with_retries(lambda: store.get_bytes(key), what=f"get {key}")
    except ObjectNotFound:
        return _Loaded(index, base, None, f"missing object: {store.url(key)} does not exist")
    try:
        pixels, full = decode(data, key) if decode is not None else (decode_image(data, key), None)
    except ImageReadError as exc:
        return _Loaded(index, base, None, f"unreadable image: {exc.reason}")
    base["height"], base["width"] = full if full is not None else (int(pixels.shape[0]), int(pixels.shape[1]))
    prepared = None
    if prepare is not None:
        try:
            prepared = prepare(pixels, full)
        except ValueError:  # e.g. a 16-bit frame for an RGB model: the model step reports it
            prepared = None
    return _Loaded(index, base, pixels, None, prepared)


def _prefetch(
    store: ObjectStore,
    images: list[tuple[int, dict[str, Any]]],
    workers: int,
    window: int,
    prepare: Callable[[np.ndarray, tuple[int, int] | None], PreparedImage | None] | None = None,
    decode: Callable[[bytes, str], tuple[np.ndarray, tuple[int, int] | None]] | None = None,
) -> Iterator[_Loaded]:
    """Yield loaded images in order, keeping at most ``window`` downloads in flight (the bounded queue)."""
    return prefetch_map(
        lambda item: _load(store, item[0], item[1], prepare, decode),
        images,
        workers,
        window,
        name="detect-fetch",
    )


def _record(loaded: _Loaded, dets: Detections | None, names: dict[int, str], model: dict[str, Any]) -> dict:
    plain = Detections(dets.xyxy, dets.confidence, dets.class_id) if dets is not None else Detections.empty()
    rec = {**loaded.record, "model": model, "detections": plain.to_records(names), "error": loaded.error}
    return {k: rec[k] for k in RECORD_FIELDS}


def detect_flight(
    store: ObjectStore,
    site: str,
    flight: str,
    detector_or_sliced: Detector | SlicedDetector,
    *,
    batch_size: int = 8,
    workers: int = 4,
    part_size: int = DEFAULT_PART_SIZE,
    slice_factor: float = DEFAULT_SLICE_FACTOR,
    model: dict[str, Any] | None = None,
    progress: bool = True,
    on_part: Callable[[int], None] | None = None,
    stats: FlightDetectionStats | None = None,
) -> list[dict[str, Any]]:
    """Detect defects in every image of an ingested flight and write ``detections.jsonl`` (module docstring).

    Args:
        store: the object store holding the flight.
        site, flight: the ingested flight's ids.
        detector_or_sliced: a :class:`Detector` (frames much larger than its input are sliced automatically)
            or a :class:`SlicedDetector` (every frame is sliced).
        batch_size: whole frames per model call.
        workers: download + decode threads.
        part_size: images per resumable part.
        slice_factor: slice frames larger than this many slicing tiles along a side (Detector only).
        model: the ``model`` field of each record (default: :func:`model_info` of the detector).
        progress: tqdm bar on a terminal.
        on_part: called with the first image index of each part after it is stored (progress hooks, tests).
        stats: filled in with counts and timings when given.

    Returns:
        The records written, in manifest order (one per image).

    Raises:
        FlightDetectionError: bad arguments, or the flight has no manifest.
        ManifestError: the manifest does not follow the schema.
        ObjectStoreError: the store failed beyond retries (parts already written are kept for the next run).
    """
    if batch_size < 1 or workers < 1 or part_size < 1:
        raise FlightDetectionError(
            f"batch_size, workers and part_size must be >= 1; got {batch_size}, {workers}, {part_size}"
        )
    if slice_factor <= 0:
        raise FlightDetectionError(f"slice_factor must be > 0, got {slice_factor}")
    started = time.perf_counter()
    base = _base_detector(detector_or_sliced)
    sliced = (
        detector_or_sliced
        if isinstance(detector_or_sliced, SlicedDetector)
        else SlicedDetector(base, batch_size=batch_size)
    )
    always_slice = isinstance(detector_or_sliced, SlicedDetector)
    try:
        manifest = read_manifest(store, site, flight)
    except ObjectNotFound as exc:
        raise FlightDetectionError(
            f"flight {site}/{flight} has no manifest at {store.url(keys.manifest_key(site, flight))}; "
            "ingest it first (`skyinspect ingest`)"
        ) from exc
    info = model if model is not None else model_info(base)
    names = base.names
    settings = {
        "conf": base.conf,
        "iou": base.iou,
        "max_det": base.max_det,
        "input_hw": list(base.input_hw),
        "part_size": part_size,
        "slice": "always" if always_slice else f">{slice_factor}x",
        "tile": list(sliced.tile),
        "overlap": sliced.overlap,
        "decode": "jpeg-reduced",  # whole-frame JPEGs decoded at 1/2–1/8 scale (Detector.decode_frame)
    }
    tag = _run_tag(manifest, info, settings)
    parts_prefix = f"{keys.detections_parts_prefix(site, flight)}{tag}/"
    done = {obj.key: obj for obj in store.list(parts_prefix)}
    stats = stats if stats is not None else FlightDetectionStats()
    stats.key = keys.detections_key(site, flight)
    images = list(enumerate(manifest["images"]))
    records: list[dict[str, Any]] = []
    bar = tqdm(
        total=len(images), desc=f"detect {site}/{flight}", unit="img", disable=not progress, leave=False
    )

    for first in range(0, len(images), part_size):
        chunk = images[first : first + part_size]
        part_key = f"{parts_prefix}{first:06d}.jsonl"
        if part_key in done:
            part = [
                json.loads(line) for line in store.get_bytes(part_key).decode("utf-8").splitlines() if line
            ]
            if len(part) == len(chunk):
                records.extend(part)
                stats.parts_reused += 1
                bar.update(len(chunk))
                continue
            logger.warning("%s has %d records for %d images; redoing it", part_key, len(part), len(chunk))
        part_records: dict[int, dict[str, Any]] = {}
        batch: list[_Loaded] = []

        def flush(batch: list[_Loaded] = batch, part_records: dict[int, dict] = part_records) -> None:
            if not batch:
                return
            t = time.perf_counter()
            if all(b.prepared is not None for b in batch):
                found = base.predict_prepared([b.prepared for b in batch])  # type: ignore[misc]
            else:
                plain = base.predict_batch([b.image for b in batch])  # type: ignore[misc]
                found = [_to_full(d, b) for d, b in zip(plain, batch, strict=True)]
            stats.inference_s += time.perf_counter() - t
            for loaded, dets in zip(batch, found, strict=True):
                part_records[loaded.index] = _record(loaded, dets, names, info)
            bar.update(len(batch))
            batch.clear()

        def whole(shape: tuple[int, int]) -> bool:
            return not (always_slice or _needs_slicing(shape, sliced.tile, slice_factor))

        def decode(data: bytes, key: str) -> tuple[np.ndarray, tuple[int, int] | None]:
            return base.decode_frame(data, key, whole)

        def prepare(pixels: np.ndarray, full: tuple[int, int] | None) -> PreparedImage | None:
            if not whole(full or pixels.shape[:2]):
                return None
            return base.prepare_one(pixels, full)

        for loaded in _prefetch(
            store, chunk, workers, window=workers + batch_size, prepare=prepare, decode=decode
        ):
            if loaded.image is None:
                part_records[loaded.index] = _record(loaded, None, names, info)
                bar.update(1)
                continue
            if not whole(loaded.shape):
                t = time.perf_counter()
                dets = sliced.predict(loaded.image)
                stats.inference_s += time.perf_counter() - t
                stats.sliced_images += 1
                part_records[loaded.index] = _record(loaded, dets, names, info)
                bar.update(1)
                continue
            batch.append(loaded)
            if len(batch) >= batch_size:
                flush()
        flush()
        part = [part_records[idx] for idx, _ in chunk]
        body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in part).encode("utf-8")
        with_retries(
            lambda b=body, k=part_key: store.put_bytes(k, b, "application/x-ndjson"), what=f"put {part_key}"
        )
        stats.parts_written += 1
        records.extend(part)
        if on_part is not None:
            on_part(first)
    bar.close()

    body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")
    with_retries(lambda: store.put_bytes(stats.key, body, "application/x-ndjson"), what=f"put {stats.key}")
    for obj in store.list(parts_prefix):
        store.delete(obj.key)
    for rec in records:
        stats.images += 1
        stats.errors += rec["error"] is not None
        stats.detections += len(rec["detections"])
        for d in rec["detections"]:
            stats.by_class[d["class_name"]] = stats.by_class.get(d["class_name"], 0) + 1
    stats.seconds = time.perf_counter() - started
    logger.info(
        "detected %d objects in %d images of %s/%s (%d errors, %d sliced, %d parts reused) in %.1f s",
        stats.detections, stats.images, site, flight, stats.errors, stats.sliced_images, stats.parts_reused,
        stats.seconds,
    )  # fmt: skip
    return records


def read_detections(store: ObjectStore, site: str, flight: str) -> list[dict[str, Any]]:
    """The records of ``detections.jsonl`` (raises :class:`ObjectNotFound` when the flight was not detected)."""
    data = store.get_bytes(keys.detections_key(site, flight))
    return [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]


def summarise(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts over detection records: images, errors, detections, by class."""
    by_class: dict[str, int] = {}
    for rec in records:
        for d in rec.get("detections") or []:
            by_class[d["class_name"]] = by_class.get(d["class_name"], 0) + 1
    return {
        "images": len(records),
        "errors": sum(1 for r in records if r.get("error")),
        "detections": sum(by_class.values()),
        "by_class": dict(sorted(by_class.items())),
    }

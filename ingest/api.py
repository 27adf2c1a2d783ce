"""Ingest one drone flight folder into the object store: :func:`ingest_flight`.

What happens, per file found under the folder (recursively):

* images (``.jpg .jpeg .png .tif .tiff``) are read once, hashed (SHA-256 + MD5), checked and described
  (:mod:`ingest.metadata`) and uploaded to ``raw/{site}/{flight}/images/{relative path}`` with
  ``x-amz-meta-sha256``; identical bytes under several names are stored once and every name is recorded;
* files that cannot be ingested are *rejected*: their bytes go to ``quarantine/{site}/{flight}/{path}`` with a
  ``.reason.json`` beside them (reasons in :mod:`ingest.metadata`, plus ``unsafe_name``, ``name_collision``,
  ``unreadable``, ``bad_sidecar``);
* ``conditions.json`` at the top of the folder is the weather sidecar (validated, copied into the manifest);
* other files (videos, ``.srt``, ``.json``, ``.txt`` ...) and symlinks leading outside the folder are *skipped*
  and listed; system junk (``.DS_Store``, ``Thumbs.db``, ``._*``, ``desktop.ini``) is ignored;
* last, the manifest (:mod:`ingest.manifest`) is written in one PUT — only when every upload succeeded.

Idempotent and resumable: an image whose key already holds the same bytes (listing size + ETag = MD5) is not
uploaded again, so a re-run — or a run after a crash — uploads only what is missing. An unchanged file is not
even read: the local cache (:mod:`ingest.cache`) remembers its digests and record by (path, size, mtime_ns),
and the store's listing confirms the object.
"""

from __future__ import annotations

import getpass
import hashlib
import logging
import os
import socket
import stat
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from PIL import Image
from tqdm import tqdm

from ingest.cache import CachedFile, IngestCache
from ingest.manifest import (
    CONDITIONS_FILE,
    SCHEMA_VERSION,
    ManifestError,
    decide_kind,
    parse_conditions,
)
from ingest.metadata import CHECKS, Rejected, probe_image
from objectstore import keys
from objectstore.client import ObjectInfo, ObjectNotFound, ObjectStore, ObjectStoreError, with_retries
from skyinspect.config import Settings

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff"})
UNSUPPORTED_IMAGE_EXTENSIONS = frozenset(
    {".dng", ".raw", ".cr2", ".cr3", ".nef", ".arw", ".orf", ".rw2", ".heic", ".heif", ".gif", ".bmp", ".webp",
     ".jp2", ".jxl", ".avif", ".insp"}
)  # fmt: skip
JUNK_FILES = frozenset({".ds_store", "thumbs.db", "ehthumbs.db", "desktop.ini", ".localized", "icon\r"})
JUNK_DIRS = frozenset(
    {"__macosx", ".trashes", ".spotlight-v100", ".fseventsd", ".temporaryitems", "system volume information",
     "$recycle.bin"}
)  # fmt: skip


class IngestError(RuntimeError):
    """The ingest as a whole cannot proceed or complete (bad folder, bad ids, failed uploads)."""


@dataclass(frozen=True)
class _Item:
    path: Path
    rel: str
    size: int
    mtime_ns: int
    unsupported: bool = False


@dataclass
class Outcome:
    """What happened to one file. ``status``: uploaded, present, duplicate, rejected or failed."""

    rel: str
    status: str
    size: int = 0
    key: str | None = None
    reason: str | None = None
    detail: str | None = None
    md5: str = ""
    """MD5 of the bytes when known (computed, or the ETag of the single PUT that stored them)."""


@dataclass
class IngestSummary:
    """The result of one ingest; :meth:`to_dict` is what ``--json`` prints."""

    site: str
    flight: str
    kind: str
    manifest_key: str
    images: int = 0
    uploaded: int = 0
    already_present: int = 0
    duplicates: int = 0
    rejected: list[dict[str, str]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    ignored: int = 0
    warnings: int = 0
    stale_objects: int = 0
    bytes: int = 0
    bytes_total: int = 0
    seconds: float = 0.0
    manifest_written: bool = False

    @property
    def mb_per_s(self) -> float:
        return self.bytes / 1e6 / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["seconds"] = round(self.seconds, 3)
        out["mb_per_s"] = round(self.mb_per_s, 2)
        return out


# ---------------------------------------------------------------------------------------------- scanning
@dataclass
class _Scan:
    items: list[_Item] = field(default_factory=list)
    sidecar: _Item | None = None
    rejected: list[dict[str, str]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    ignored: int = 0


def _is_junk(name: str) -> bool:
    return name.lower() in JUNK_FILES or name.startswith("._")


def scan_folder(root: Path) -> _Scan:
    """Classify every file under ``root`` (see the module docstring). Symlinked folders are not followed."""
    result = _Scan()
    root_real = Path(os.path.realpath(root))
    seen_keys: dict[str, str] = {}

    def unreadable(exc: OSError) -> None:
        where = Path(exc.filename or root)
        rel = where.relative_to(root).as_posix() if where != root and root in where.parents else str(where)
        result.rejected.append(
            {"path": rel, "reason": "unreadable", "detail": f"folder cannot be listed: {exc}"}
        )

    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable, followlinks=False):
        here = Path(dirpath)
        for name in list(dirnames):
            if name.lower() in JUNK_DIRS:
                dirnames.remove(name)
                result.ignored += 1
            elif (here / name).is_symlink():
                dirnames.remove(name)
                result.skipped.append(
                    {
                        "path": (here / name).relative_to(root).as_posix(),
                        "reason": "symlinked folder not followed",
                    }
                )
        dirnames.sort()
        for name in sorted(filenames):
            if _is_junk(name):
                result.ignored += 1
                continue
            path = here / name
            raw_rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                target = Path(os.path.realpath(path))
                if not target.exists():
                    result.skipped.append({"path": raw_rel, "reason": "broken symlink"})
                    continue
                if root_real not in target.parents:
                    result.skipped.append(
                        {"path": raw_rel, "reason": "symlink leads outside the flight folder"}
                    )
                    continue
            try:
                st = path.stat()
            except OSError as exc:
                result.rejected.append({"path": raw_rel, "reason": "unreadable", "detail": str(exc)})
                continue
            if not stat.S_ISREG(st.st_mode):
                result.skipped.append({"path": raw_rel, "reason": "not a regular file"})
                continue
            ext = Path(name).suffix.lower()
            is_sidecar = here == root and name == CONDITIONS_FILE
            if ext not in IMAGE_EXTENSIONS and ext not in UNSUPPORTED_IMAGE_EXTENSIONS and not is_sidecar:
                result.skipped.append({"path": raw_rel, "reason": f"not an image ({ext or 'no extension'})"})
                continue
            try:
                rel = keys.normalise_relative_path(raw_rel)
            except keys.InvalidKey as exc:
                result.rejected.append({"path": raw_rel, "reason": "unsafe_name", "detail": str(exc)})
                continue
            if rel in seen_keys:
                result.rejected.append(
                    {
                        "path": raw_rel,
                        "reason": "name_collision",
                        "detail": f"normalises to the same key as {seen_keys[rel]!r}",
                    }
                )
                continue
            seen_keys[rel] = raw_rel
            item = _Item(
                path, rel, st.st_size, st.st_mtime_ns, unsupported=ext in UNSUPPORTED_IMAGE_EXTENSIONS
            )
            if is_sidecar:
                result.sidecar = item
            else:
                result.items.append(item)
    return result


# ---------------------------------------------------------------------------------------------- the run
def _etag_matches(info: ObjectInfo | None, size: int, md5: str) -> bool:
    return info is not None and info.size == size and info.etag == md5


class _Run:
    """State of one ingest, shared by the worker threads (guarded by ``lock`` where it says so)."""

    def __init__(
        self,
        store: ObjectStore,
        settings: Settings,
        site: str,
        flight: str,
        root: Path,
        scan: _Scan,
        check: str = "decode",
    ) -> None:
        self.store = store
        self.check = check
        self.settings = settings
        self.site = site
        self.flight = flight
        self.root = root
        self.lock = threading.Lock()
        self.images_prefix = keys.images_prefix(site, flight)
        self.listing: dict[str, ObjectInfo] = {i.key: i for i in store.list(self.images_prefix)}
        self.quarantine: dict[str, ObjectInfo] = {
            i.key: i for i in store.list(keys.quarantine_prefix(site, flight))
        }
        names = {item.rel for item in scan.items}
        # (size, md5) -> key, for objects stored under one of this folder's names: bytes already present there
        self.by_content: dict[tuple[int, str], str] = {}
        for info in self.listing.values():
            rel = info.key[len(self.images_prefix) :]
            if rel in names and "-" not in info.etag:
                self.by_content.setdefault((info.size, info.etag), info.key)
        # sizes of stored objects: only a file of one of these sizes can already be stored, so only then is
        # its MD5 computed to compare with the listing's ETag (saves hashing on a first ingest)
        self.sizes = {info.size for info in self.listing.values()}
        # guarded by lock
        self.claims: dict[str, str] = {}  # sha256 -> key holding those bytes
        self.names: dict[str, list[str]] = {}  # sha256 -> every relative path with those bytes
        self.records: dict[str, dict[str, Any]] = {}  # sha256 -> manifest record (without paths)

    def claim(self, sha: str, md5: str, size: int, rel: str) -> tuple[str, str]:
        """Decide what to do with bytes ``sha`` found at ``rel``: (status, key) with status
        ``duplicate`` (already claimed in this run), ``present`` (already stored) or ``upload``."""
        key = keys.image_key(self.site, self.flight, rel)
        with self.lock:
            self.names.setdefault(sha, []).append(rel)
            if sha in self.claims:
                return "duplicate", self.claims[sha]
            if _etag_matches(self.listing.get(key), size, md5) or self._multipart_matches(key, size, sha):
                status, target = "present", key
            elif (size, md5) in self.by_content:
                status, target = "present", self.by_content[(size, md5)]
            else:
                status, target = "upload", key
            self.claims[sha] = target
            return status, target

    def _multipart_matches(self, key: str, size: int, sha: str) -> bool:
        """For objects above the single-PUT size (ETag is not an MD5): compare x-amz-meta-sha256."""
        info = self.listing.get(key)
        if info is None or info.size != size or "-" not in info.etag:
            return False
        stat = self.store.stat(key)
        return stat is not None and stat.metadata.get("sha256") == sha

    def quarantine_file(self, rel: str, data: bytes, reason: str, detail: str) -> str:
        """Copy a rejected file and its ``.reason.json`` into the quarantine area; returns the key."""
        qkey = keys.quarantine_key(self.site, self.flight, rel)
        rkey = keys.quarantine_reason_key(self.site, self.flight, rel)
        existing = self.quarantine.get(qkey)
        if existing is None or existing.size != len(data) or rkey not in self.quarantine:
            with_retries(lambda: self.store.put_bytes(qkey, data), what=f"quarantine {rel}")
            note = {"path": rel, "reason": reason, "detail": detail, "time": _now()}
            with_retries(lambda: self.store.put_json(rkey, note), what=f"quarantine reason {rel}")
        return qkey

    def process(self, item: _Item) -> tuple[Outcome, CachedFile | None]:
        """Read, hash, check, describe and (when needed) upload one file. Runs in a worker thread."""
        try:
            data = item.path.read_bytes()
        except OSError as exc:
            return Outcome(item.rel, "rejected", item.size, reason="unreadable", detail=str(exc)), None
        sha = hashlib.sha256(data).hexdigest()
        md5 = hashlib.md5(data, usedforsecurity=False).hexdigest() if len(data) in self.sizes else ""
        try:
            if item.unsupported:
                ext = item.path.suffix.lower()
                raise Rejected("unsupported_format", f"{ext} files are not supported; use JPEG, PNG or TIFF")
            probe = probe_image(data, item.rel, self.settings.max_image_pixels, self.check)
        except Rejected as rej:
            try:
                qkey = self.quarantine_file(item.rel, data, rej.reason, rej.detail)
            except (ObjectStoreError, keys.InvalidKey) as exc:
                return Outcome(
                    item.rel, "failed", len(data), reason="quarantine_failed", detail=str(exc)
                ), None
            return Outcome(
                item.rel, "rejected", len(data), key=qkey, reason=rej.reason, detail=rej.detail
            ), None
        record = {"size": len(data), "sha256": sha, **probe.fields, "warnings": probe.warnings}
        outcome = self.finish(item, CachedFile(md5=md5, sha256=sha, record=record), data)
        return outcome, CachedFile(md5=md5 or outcome.md5, sha256=sha, record=record)

    def finish(self, item: _Item, cached: CachedFile, data: bytes | None) -> Outcome:
        """Claim the bytes and upload them when needed (``data`` None: only when nothing must be uploaded)."""
        size = cached.record["size"]
        status, key = self.claim(cached.sha256, cached.md5, size, item.rel)
        with self.lock:
            self.records.setdefault(cached.sha256, {"key": key, **cached.record})
        if status != "upload":
            return Outcome(item.rel, status, size, key=key, md5=cached.md5)
        if data is None:
            raise RuntimeError("finish() needs the bytes to upload")  # callers only pass None after a hit
        try:
            stored = with_retries(
                lambda: self.store.put_bytes(
                    key, data, content_type=cached.record["content_type"], metadata={"sha256": cached.sha256}
                ),
                what=f"upload {item.rel}",
            )
        except ObjectStoreError as exc:
            with self.lock:
                self.claims.pop(cached.sha256, None)
                self.records.pop(cached.sha256, None)
            return Outcome(item.rel, "failed", size, key=key, reason="upload_failed", detail=str(exc))
        etag = stored.etag if "-" not in stored.etag else ""
        return Outcome(item.rel, "uploaded", size, key=key, md5=cached.md5 or etag)

    def try_cached(self, item: _Item, cached: CachedFile) -> Outcome | None:
        """Settle an unchanged file without reading it, when the store confirms its bytes; else None."""
        key = keys.image_key(self.site, self.flight, item.rel)
        size = cached.record.get("size")
        pixels = (cached.record.get("width") or 0) * (cached.record.get("height") or 0)
        if size != item.size or pixels > self.settings.max_image_pixels:
            return None
        if self.check == "decode" and cached.record.get("checked") != "decode":
            return None  # only structure-checked before: decode it now
        with self.lock:
            known = cached.sha256 in self.claims
        stored = (
            _etag_matches(self.listing.get(key), size, cached.md5) or (size, cached.md5) in self.by_content
        )
        if not (known or stored):
            return None
        return self.finish(item, cached, None)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _comparable(manifest: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in manifest.items() if k not in {"created", "updated"}}


def ingest_flight(
    path: str | Path,
    site: str,
    flight: str,
    *,
    store: ObjectStore,
    settings: Settings,
    kind: str = "auto",
    workers: int | None = None,
    progress: bool = True,
    on_outcome: Callable[[Outcome], None] | None = None,
    check: str = "decode",
) -> IngestSummary:
    """Upload every image under ``path`` as flight ``site/flight`` and write its manifest.

    Args:
        path: the flight folder (an SD-card copy).
        site, flight: safe ids (:func:`objectstore.keys.validate_id`).
        store: where to write (its bucket is created when missing).
        settings: ``ingest_workers``, ``max_image_pixels`` and ``data_dir`` (for the cache) are used.
        kind: ``auto`` or one of ``pv-thermal``, ``pv-rgb``, ``wind-rgb``.
        workers: parallel uploads (default ``settings.ingest_workers``).
        progress: show a tqdm bar (only on a terminal).
        on_outcome: called in the calling thread after each file is settled (progress hooks, tests).
        check: ``"decode"`` (decode every image) or ``"structure"`` (JPEGs: marker walk only, much faster;
            see :mod:`ingest.metadata`).

    Raises:
        IngestError: the folder does not exist, an id is unsafe, the kind is unknown, or uploads failed
            (the manifest is then not written; run again to resume).
    """
    started = time.monotonic()
    root = Path(path).expanduser()
    try:
        keys.validate_id(site, "site")
        keys.validate_id(flight, "flight")
        decide_kind([], kind)  # validates the kind name early
        if check not in CHECKS:
            raise ManifestError(f"check must be one of {', '.join(CHECKS)}, got {check!r}")
    except (keys.InvalidKey, ManifestError) as exc:
        raise IngestError(str(exc)) from exc
    if not root.is_dir():
        raise IngestError(f"flight folder {root} does not exist or is not a folder")
    root = Path(os.path.abspath(root))
    workers = workers or settings.ingest_workers
    if workers < 1:
        raise IngestError(f"workers must be at least 1, got {workers}")
    if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < settings.max_image_pixels:
        Image.MAX_IMAGE_PIXELS = settings.max_image_pixels  # our own header check is the guard now

    store.ensure_bucket()
    scan = scan_folder(root)
    run = _Run(store, settings, site, flight, root, scan, check)
    summary = IngestSummary(site, flight, kind, keys.manifest_key(site, flight))
    summary.skipped = list(scan.skipped)
    summary.ignored = scan.ignored
    rejected: list[dict[str, str]] = [dict(r) for r in scan.rejected]
    failed: list[Outcome] = []

    conditions = None
    if scan.sidecar is not None:
        data = scan.sidecar.path.read_bytes()
        try:
            conditions = parse_conditions(data, scan.sidecar.rel)
        except ManifestError as exc:
            qkey = run.quarantine_file(scan.sidecar.rel, data, "bad_sidecar", str(exc))
            rejected.append(
                {
                    "path": scan.sidecar.rel,
                    "reason": "bad_sidecar",
                    "detail": str(exc),
                    "quarantine_key": qkey,
                }
            )

    cache = IngestCache.for_data_dir(settings.data_dir)
    show = progress and sys.stderr.isatty()
    bar = tqdm(
        total=len(scan.items), unit="img", desc=f"ingest {site}/{flight}", disable=not show, leave=False
    )

    def settle(outcome: Outcome) -> None:
        if outcome.status == "uploaded":
            summary.uploaded += 1
            summary.bytes += outcome.size
        elif outcome.status == "present":
            summary.already_present += 1
        elif outcome.status == "duplicate":
            summary.duplicates += 1
        elif outcome.status == "rejected":
            entry = {"path": outcome.rel, "reason": outcome.reason or "", "detail": outcome.detail or ""}
            if outcome.key:
                entry["quarantine_key"] = outcome.key
            rejected.append(entry)
        else:
            failed.append(outcome)
            log.error("%s: %s", outcome.rel, outcome.detail)
        bar.update(1)
        if on_outcome is not None:
            on_outcome(outcome)

    try:
        hits = cache.load_under(root)
        pending: list[_Item] = []
        for item in scan.items:
            hit = hits.get(str(item.path))
            outcome = None
            if hit is not None and hit[0] == item.size and hit[1] == item.mtime_ns and not item.unsupported:
                outcome = run.try_cached(item, hit[2])
            if outcome is None:
                pending.append(item)
            else:
                settle(outcome)
        if pending:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ingest") as pool:
                futures: dict[Future, _Item] = {pool.submit(run.process, item): item for item in pending}
                try:
                    for future in as_completed(futures):
                        item = futures[future]
                        outcome, cached = future.result()
                        if cached is not None and outcome.status != "failed":
                            cache.put(item.path, item.size, item.mtime_ns, cached)
                        settle(outcome)
                except BaseException:
                    pool.shutdown(wait=True, cancel_futures=True)
                    raise
    finally:
        bar.close()
        cache.close()

    summary.rejected = sorted(rejected, key=lambda r: r["path"])
    summary.bytes_total = sum(item.size for item in scan.items)
    if failed:
        summary.seconds = time.monotonic() - started
        raise IngestError(
            f"{len(failed)} file(s) could not be stored (first: {failed[0].rel}: {failed[0].detail}); "
            "the manifest was not written; run the same ingest again to resume"
        )

    records = []
    for sha, record in run.records.items():
        names = sorted(set(run.names.get(sha, [])))
        rel = record["key"][len(run.images_prefix) :]
        records.append(
            {
                "key": record["key"],
                "path": rel,
                "paths": names,
                **{k: v for k, v in record.items() if k != "key"},
            }
        )
    records.sort(key=lambda r: r["path"])
    claimed = {r["key"] for r in records}
    summary.stale_objects = sum(1 for key in run.listing if key not in claimed)
    if summary.stale_objects:
        log.warning(
            "%d object(s) under %s are not in this folder (left as they are)",
            summary.stale_objects,
            run.images_prefix,
        )
    summary.images = len(records)
    summary.warnings = sum(len(r["warnings"]) for r in records)
    decided, decision = decide_kind(records, kind)
    summary.kind = decided

    manifest = {
        "schema_version": SCHEMA_VERSION,
        "site": site,
        "flight": flight,
        "kind": decided,
        "kind_decision": decision,
        "created": _now(),
        "updated": _now(),
        "source": {"path": str(root), "host": socket.gethostname(), "user": _user()},
        "counts": {
            "images": len(records),
            "names": sum(len(r["paths"]) for r in records),
            "rejected": len(summary.rejected),
            "skipped": len(summary.skipped),
            "warnings": summary.warnings,
            "bytes": sum(r["size"] for r in records),
        },
        "conditions": conditions,
        "images": records,
        "rejected": summary.rejected,
        "skipped": summary.skipped,
    }
    try:
        previous = store.get_json(summary.manifest_key)
    except ObjectNotFound:
        previous = None
    except ObjectStoreError as exc:
        log.warning("previous manifest unreadable (%s); writing a new one", exc)
        previous = None
    if isinstance(previous, dict) and previous.get("created"):
        manifest["created"] = previous["created"]
    if not (isinstance(previous, dict) and _comparable(previous) == _comparable(manifest)):
        with_retries(lambda: store.put_json(summary.manifest_key, manifest), what="write manifest")
        summary.manifest_written = True
    summary.seconds = time.monotonic() - started
    log.info(
        "ingest %s/%s: %d images (%d uploaded, %d present, %d duplicate names), %d rejected, %d skipped, "
        "%.1f MB in %.1f s",
        site,
        flight,
        summary.images,
        summary.uploaded,
        summary.already_present,
        summary.duplicates,
        len(summary.rejected),
        len(summary.skipped),
        summary.bytes / 1e6,
        summary.seconds,
    )
    return summary


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""

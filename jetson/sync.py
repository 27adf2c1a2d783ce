"""Syncing the outbox to the object store: idempotent keys, mark-as-synced only after the PUTs, back-off.

For each due result: its files first (``edge/{device}/images/{result_id}{ext}``, ``.../thumbnails/{result_id}.jpg``),
the result JSON last (``edge/{device}/results/{result_id}.json``) — so a result object in the store always has its
files. Keys depend only on the result id, which is deterministic, so a PUT repeated after a crash (between the PUT
and the mark) overwrites the same object with the same content: every result reaches the store exactly once.

A failed upload is retried after ``backoff_base_s × 2^(attempts-1)`` (capped at ``backoff_max_s``, ±20 % jitter
so a fleet does not retry in lock-step). When the store is unreachable the round stops at the first failure
instead of hammering it with the rest of the queue.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from jetson.config import SyncConfig
from jetson.outbox import Outbox, PendingResult
from objectstore import keys
from objectstore.client import ObjectStore, ObjectStoreError

logger = logging.getLogger(__name__)

STORE_WIDE = frozenset({"NoSuchBucket", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"})
"""S3 error codes that fail every upload alike: the round stops at the first instead of trying the whole batch."""


def backoff_s(attempts: int, cfg: SyncConfig, rng: random.Random | None = None) -> float:
    """Delay before retry number ``attempts`` (1 = after the first failure), with ±20 % jitter."""
    base = min(cfg.backoff_max_s, cfg.backoff_base_s * 2 ** max(0, attempts - 1))
    return base * (rng or random).uniform(0.8, 1.2)


@dataclass
class SyncReport:
    uploaded: int = 0
    failed: int = 0
    store_down: bool = False


class Syncer:
    """Uploads due results of ``outbox`` to ``store`` under ``edge/{device}/``.

    Args:
        outbox: the queue.
        store: the object store (its bucket must exist).
        device: device id for the keys.
        cfg: batch size, back-off.
    """

    def __init__(self, outbox: Outbox, store: ObjectStore, device: str, cfg: SyncConfig) -> None:
        self.outbox = outbox
        self.store = store
        self.device = keys.validate_id(device, "device")
        self.cfg = cfg

    def _upload(self, item: PendingResult) -> None:
        for kind, path_text in sorted(item.files.items()):
            path = Path(path_text)
            folder = {"image": "images", "thumbnail": "thumbnails"}.get(kind)
            if folder is None or (kind == "thumbnail" and not self.cfg.upload_thumbnails):
                continue
            if not path.is_file():
                logger.warning(
                    "result %s: %s file %s is gone; uploading the result without it",
                    item.result_id,
                    kind,
                    path,
                )
                continue
            self.store.put_file(keys.edge_file_key(self.device, folder, item.result_id, path.suffix), path)
        self.store.put_json(
            keys.edge_result_key(self.device, item.result_id),
            item.payload,
            metadata={"result-id": item.result_id, "device": self.device},
        )

    def sync_round(self, limit: int | None = None) -> SyncReport:
        """Upload up to ``limit`` (default ``cfg.batch``) due results; stop early when the store is down."""
        report = SyncReport()
        for item in self.outbox.due(limit or self.cfg.batch):
            try:
                self._upload(item)
            except (ObjectStoreError, OSError) as exc:
                delay = backoff_s(item.attempts + 1, self.cfg)
                self.outbox.mark_failed(item.result_id, str(exc), delay)
                report.failed += 1
                # unreachable, or refusing every upload (no bucket, bad keys): stop the round, retry later
                transient = not isinstance(exc, ObjectStoreError) or exc.transient or exc.code in STORE_WIDE
                logger.warning(
                    "sync of result %s failed (attempt %d, retry in %.0fs): %s",
                    item.result_id,
                    item.attempts + 1,
                    delay,
                    exc,
                )
                if transient:
                    report.store_down = True
                    break
                continue
            self.outbox.mark_synced(item.result_id)
            spool = item.files.get("spool")
            if spool:
                Path(spool).unlink(missing_ok=True)
            report.uploaded += 1
        return report

    def drain(self, deadline_s: float | None = None) -> SyncReport:
        """Sync rounds until nothing is due, the store is down, or ``deadline_s`` (monotonic) has passed."""
        total = SyncReport()
        while deadline_s is None or time.monotonic() < deadline_s:
            report = self.sync_round()
            total.uploaded += report.uploaded
            total.failed += report.failed
            if report.store_down:
                total.store_down = True
                break
            if not report.uploaded and not report.failed:
                break
        return total

    def run_forever(self, stop: threading.Event) -> None:
        """Sync until ``stop`` is set; pause ``interval_s`` when idle or the store is unreachable."""
        while not stop.is_set():
            try:
                report = self.sync_round()
            except Exception:  # the sync thread must never die silently: log and keep going
                logger.exception("sync round failed")
                report = SyncReport(store_down=True)
            if report.uploaded:
                logger.info("synced %d result(s)", report.uploaded)
            if report.store_down or not report.uploaded:
                stop.wait(self.cfg.interval_s)

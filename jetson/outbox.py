"""The durable local queue ("outbox") of the on-site runtime: one SQLite file, safe against ``kill -9`` and power loss.

Tables:

* ``sources``: one row per source (an image file, a video file, a stream session) with its processing state
  (``pending`` → ``done`` | ``error``) and, for videos, the last frame index processed. A restart neither skips
  a frame (a source is ``done`` only in the same transaction that stored its last result) nor re-adds one
  (result ids are deterministic and inserted with ``INSERT OR IGNORE``).
* ``results``: one row per processed frame (or per unreadable one, ``status='error'``): the JSON document that is
  synced, optional local files to upload with it, and the sync state (``synced_at``, ``attempts``,
  ``next_attempt``, ``last_error``). A row is marked synced only after every PUT of it succeeded.
* ``state``: key/value facts for ``status`` (last sync time and error, current model).

Durability: ``journal_mode=WAL`` (readers never block the writer; a crash leaves the database consistent) and
``synchronous=FULL``. With WAL, ``NORMAL`` already survives a killed *process*; what it gives up is durability of
the last commits on *power loss* — and on a field device the battery is pulled or the generator stops. A lost
``done`` after the SD-card copy was cleared would lose a frame, so every commit is fsynced. The write rate is a
few commits per second at most, so the extra fsync costs nothing measurable next to inference.

The connection is per thread (the pipeline writes results while the sync thread marks uploads); SQLite's
``busy_timeout`` serialises the two writers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS sources (
    source_id   TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,            -- image | video | stream
    origin      TEXT NOT NULL,            -- path or URL, for people
    size        INTEGER,
    mtime_ns    INTEGER,
    state       TEXT NOT NULL DEFAULT 'pending',   -- pending | done | error
    last_frame  INTEGER NOT NULL DEFAULT -1,       -- videos: last frame index stored
    error       TEXT,
    updated     REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS sources_origin ON sources(origin, size, mtime_ns);
CREATE TABLE IF NOT EXISTS results (
    result_id    TEXT PRIMARY KEY,
    source_id    TEXT NOT NULL,
    frame        INTEGER NOT NULL,
    status       TEXT NOT NULL,           -- ok | error
    created      REAL NOT NULL,
    payload      TEXT NOT NULL,           -- the JSON document uploaded to edge/{device}/results/{result_id}.json
    files        TEXT NOT NULL DEFAULT '{}',  -- {"image": path, "thumbnail": path} to upload with it
    exported     INTEGER NOT NULL DEFAULT 0,  -- written to the local detections.jsonl
    synced_at    REAL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL NOT NULL DEFAULT 0,
    last_error   TEXT
);
CREATE INDEX IF NOT EXISTS results_due ON results(synced_at, next_attempt);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class OutboxError(RuntimeError):
    """The queue database cannot be opened or written; the message names the file."""


def result_id(source_id: str, frame: int, model_sha: str = "") -> str:
    """A deterministic result id (32 hex chars) for frame ``frame`` of ``source_id`` under one model.

    The same frame processed again (after a crash) gets the same id, so its object key does not change.
    """
    return hashlib.sha256(f"{source_id}|{frame}|{model_sha}".encode()).hexdigest()[:32]


@dataclass(frozen=True)
class SourceState:
    source_id: str
    kind: str
    origin: str
    state: str
    last_frame: int
    error: str | None


@dataclass(frozen=True)
class PendingResult:
    """A result still to be uploaded."""

    result_id: str
    payload: dict[str, Any]
    files: dict[str, str]
    attempts: int


class Outbox:
    """The SQLite queue at ``path`` (created with its folder when missing).

    Raises:
        OutboxError: the file is not a usable SQLite database.
    """

    def __init__(self, path: str | Path, busy_timeout_s: float = 30.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._busy_ms = int(busy_timeout_s * 1000)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        try:
            db = self._conn()
            db.executescript("BEGIN IMMEDIATE;" + _SCHEMA + "COMMIT;")
            with self._tx() as db:
                db.execute(
                    "INSERT OR IGNORE INTO state(key, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
        except sqlite3.DatabaseError as exc:
            raise OutboxError(f"queue database {self.path}: {exc}") from exc

    # ------------------------------------------------------------------------------------------ connection
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, timeout=self._busy_ms / 1000, isolation_level=None)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
                conn.execute(f"PRAGMA busy_timeout={self._busy_ms}")
            except sqlite3.DatabaseError as exc:
                raise OutboxError(f"queue database {self.path}: {exc}") from exc
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction (takes the write lock up front: no upgrade deadlocks between threads)."""
        db = self._conn()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def close(self) -> None:
        """Close every thread's connection (call once the threads are done)."""
        with self._lock:
            for conn in self._all:
                try:
                    conn.close()
                except sqlite3.ProgrammingError:  # closed from another thread already
                    pass
            self._all.clear()
        self._local = threading.local()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------ sources
    def source(self, source_id: str) -> SourceState | None:
        row = (
            self._conn()
            .execute(
                "SELECT source_id, kind, origin, state, last_frame, error FROM sources WHERE source_id = ?",
                (source_id,),
            )
            .fetchone()
        )
        return SourceState(*row) if row else None

    def finished_origins(self) -> set[tuple[str, int, int]]:
        """(origin, size, mtime_ns) of every source that is done or failed: the folder watcher skips these."""
        rows = self._conn().execute(
            "SELECT origin, size, mtime_ns FROM sources WHERE state != 'pending' AND size IS NOT NULL"
        )
        return {(o, int(s), int(m)) for o, s, m in rows}

    def begin_source(
        self, source_id: str, kind: str, origin: str, size: int | None = None, mtime_ns: int | None = None
    ) -> SourceState:
        """Register a source (no-op when known) and return its state."""
        with self._tx() as db:
            db.execute(
                "INSERT OR IGNORE INTO sources(source_id, kind, origin, size, mtime_ns, updated) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (source_id, kind, origin, size, mtime_ns, time.time()),
            )
        state = self.source(source_id)
        if state is None:  # pragma: no cover - just inserted
            raise OutboxError(f"queue database {self.path}: source {source_id} vanished")
        return state

    def finish_source(self, source_id: str, error: str | None = None) -> None:
        """Mark a source done (or failed, with ``error``) — e.g. a video at its end."""
        with self._tx() as db:
            db.execute(
                "UPDATE sources SET state = ?, error = ?, updated = ? WHERE source_id = ?",
                ("error" if error else "done", error, time.time(), source_id),
            )

    # ------------------------------------------------------------------------------------------ results
    def add_result(
        self,
        rid: str,
        source_id: str,
        frame: int,
        payload: dict[str, Any],
        files: dict[str, str] | None = None,
        status: str = "ok",
        source_done: bool = False,
        source_error: str | None = None,
    ) -> bool:
        """Store one frame's result and advance its source, in ONE transaction.

        ``source_done`` marks the source finished (a single image); otherwise its ``last_frame`` advances (video).
        Returns False when the result was already stored (a replayed frame after a restart).
        """
        now = time.time()
        with self._tx() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO results(result_id, source_id, frame, status, created, payload, files) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    rid,
                    source_id,
                    frame,
                    status,
                    now,
                    json.dumps(payload, ensure_ascii=False),
                    json.dumps(files or {}),
                ),
            )
            if source_done or source_error:
                db.execute(
                    "UPDATE sources SET state = ?, error = ?, last_frame = MAX(last_frame, ?), updated = ? "
                    "WHERE source_id = ?",
                    ("error" if source_error else "done", source_error, frame, now, source_id),
                )
            else:
                db.execute(
                    "UPDATE sources SET last_frame = MAX(last_frame, ?), updated = ? WHERE source_id = ?",
                    (frame, now, source_id),
                )
        return cur.rowcount == 1

    def due(self, limit: int, now: float | None = None) -> list[PendingResult]:
        """Unsynced results whose next attempt is due, oldest first."""
        now = time.time() if now is None else now
        rows = self._conn().execute(
            "SELECT result_id, payload, files, attempts FROM results "
            "WHERE synced_at IS NULL AND next_attempt <= ? ORDER BY created, result_id LIMIT ?",
            (now, int(limit)),
        )
        return [PendingResult(r, json.loads(p), json.loads(f), int(a)) for r, p, f, a in rows]

    def mark_synced(self, rid: str) -> None:
        """Call only after every PUT of the result succeeded."""
        now = time.time()
        with self._tx() as db:
            db.execute("UPDATE results SET synced_at = ?, last_error = NULL WHERE result_id = ?", (now, rid))
            db.execute("INSERT OR REPLACE INTO state(key, value) VALUES ('last_sync', ?)", (str(now),))

    def mark_failed(self, rid: str, error: str, retry_in_s: float) -> None:
        """Record a failed upload; the result becomes due again in ``retry_in_s`` seconds."""
        now = time.time()
        with self._tx() as db:
            db.execute(
                "UPDATE results SET attempts = attempts + 1, next_attempt = ?, last_error = ? WHERE result_id = ?",
                (now + retry_in_s, error[:500], rid),
            )
            db.execute(
                "INSERT OR REPLACE INTO state(key, value) VALUES ('last_sync_error', ?)", (error[:500],)
            )

    def unexported(self) -> list[tuple[str, dict[str, Any]]]:
        """(result_id, payload) of results not yet confirmed in the local JSONL, in creation order."""
        rows = self._conn().execute(
            "SELECT result_id, payload FROM results WHERE exported = 0 ORDER BY created, result_id"
        )
        return [(r, json.loads(p)) for r, p in rows]

    def mark_exported(self, rids: list[str]) -> None:
        with self._tx() as db:
            db.executemany("UPDATE results SET exported = 1 WHERE result_id = ?", [(r,) for r in rids])

    # ------------------------------------------------------------------------------------------ state
    def set_state(self, key: str, value: str) -> None:
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO state(key, value) VALUES (?, ?)", (key, value))

    def get_state(self, key: str) -> str | None:
        row = self._conn().execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def counts(self) -> dict[str, int]:
        """Queue depth and totals: results, unsynced, synced, errors, retrying, sources by state."""
        db = self._conn()
        out = {
            "results": db.execute("SELECT COUNT(*) FROM results").fetchone()[0],
            "unsynced": db.execute("SELECT COUNT(*) FROM results WHERE synced_at IS NULL").fetchone()[0],
            "retrying": db.execute(
                "SELECT COUNT(*) FROM results WHERE synced_at IS NULL AND attempts > 0"
            ).fetchone()[0],
            "frame_errors": db.execute("SELECT COUNT(*) FROM results WHERE status = 'error'").fetchone()[0],
        }
        out["synced"] = out["results"] - out["unsynced"]
        for state, n in db.execute("SELECT state, COUNT(*) FROM sources GROUP BY state"):
            out[f"sources_{state}"] = n
        return out

"""A local cache of what ingest learnt about a file, so an unchanged flight is not read again.

Keyed by (absolute path, size, mtime_ns) — the test ``make`` and ``rsync`` use — and by :data:`CACHE_VERSION`
(bumped when the analysis changes). The value is the file's MD5, SHA-256 and manifest record. Ingest trusts a
hit only when the store's listing shows the object with the same size and ETag (= MD5 of a single PUT), so a
stale cache costs at most a re-read, never a missing upload.

SQLite at ``settings.data_dir/cache/ingest.sqlite``: safe for several ingest processes at once. Only the
calling thread touches it.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CACHE_VERSION = 1


@dataclass(frozen=True)
class CachedFile:
    """A cache hit: digests and the manifest record of a file whose (path, size, mtime_ns) did not change."""

    md5: str
    sha256: str
    record: dict[str, Any]


class IngestCache:
    """(path, size, mtime_ns) → :class:`CachedFile`, in SQLite."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(str(path), timeout=30.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, "
            "version INTEGER, md5 TEXT, sha256 TEXT, record TEXT, seen REAL)"
        )
        self._pending = 0
        self._last_commit = time.monotonic()

    @classmethod
    def for_data_dir(cls, data_dir: Path) -> IngestCache:
        return cls(Path(data_dir) / "cache" / "ingest.sqlite")

    def load_under(self, root: Path) -> dict[str, tuple[int, int, CachedFile]]:
        """Every current-version entry under folder ``root``: path → (size, mtime_ns, CachedFile)."""
        prefix = str(root).rstrip("/") + "/"
        rows = self._db.execute(
            "SELECT path, size, mtime_ns, md5, sha256, record FROM files "
            "WHERE version = ? AND substr(path, 1, ?) = ?",
            (CACHE_VERSION, len(prefix), prefix),
        )
        out = {}
        for path, size, mtime_ns, md5, sha256, record in rows:
            try:
                out[path] = (size, mtime_ns, CachedFile(md5, sha256, json.loads(record)))
            except ValueError:
                continue
        return out

    def put(self, path: Path, size: int, mtime_ns: int, entry: CachedFile) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                str(path),
                size,
                mtime_ns,
                CACHE_VERSION,
                entry.md5,
                entry.sha256,
                json.dumps(entry.record),
                time.time(),
            ),
        )
        self._pending += 1
        if self._pending >= 200 or time.monotonic() - self._last_commit > 2.0:
            self.commit()

    def commit(self) -> None:
        self._db.commit()
        self._pending = 0
        self._last_commit = time.monotonic()

    def close(self) -> None:
        self.commit()
        self._db.close()

"""The review database (SQLAlchemy Core): users, imported findings with their current decision, and the audit trail.

One schema for SQLite (default: ``<data_dir>/review/review.db``) and PostgreSQL (``postgresql://...``).

Tables:

* ``users`` — name, role (viewer < reviewer < admin), scrypt password hash (never the password).
* ``findings`` — one row per (site, flight, finding id): what the findings stage said (``orig_*``), what the
  reviewers decided (``class_name``, ``severity``, ``xyxy``, ``status``), and ``version``, the optimistic
  concurrency counter every update must name.
* ``audit`` — one row per change: who, when, action, the finding's reviewable fields before and after, comment.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from skyinspect.config import Settings

log = logging.getLogger(__name__)

ROLES: tuple[str, ...] = ("viewer", "reviewer", "admin")
"""Roles in increasing privilege: each may do everything the ones before it may."""
STATUSES: tuple[str, ...] = ("pending", "confirmed", "rejected")
SEVERITIES: tuple[str, ...] = ("minor", "moderate", "major", "critical", "ungraded")

metadata = sa.MetaData()

users = sa.Table(
    "users",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("password_hash", sa.String(512), nullable=False),
    sa.Column("created", sa.String(32), nullable=False),
)

findings = sa.Table(
    "findings",
    metadata,
    sa.Column("site", sa.String(64), primary_key=True),
    sa.Column("flight", sa.String(64), primary_key=True),
    sa.Column("finding_id", sa.String(64), primary_key=True),
    sa.Column("domain", sa.String(16), nullable=False),
    sa.Column("orig_class", sa.String(64), nullable=False),
    sa.Column("class_name", sa.String(64), nullable=False),
    sa.Column("orig_severity", sa.String(16), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("best_image", sa.String(1024), nullable=False),
    sa.Column("orig_xyxy", sa.JSON, nullable=False),
    sa.Column("xyxy", sa.JSON, nullable=False),
    sa.Column("confidence", sa.Float, nullable=False),
    # the finding as findings.json had it (evidence, location, asset, grade ...)
    sa.Column("doc", sa.JSON, nullable=False),
    # relative path -> {key, width, height} of every evidence frame (from the flight manifest)
    sa.Column("frames", sa.JSON, nullable=False),
    sa.Column("status", sa.String(16), nullable=False, default="pending"),
    sa.Column("version", sa.Integer, nullable=False, default=1),
    sa.Column("reviewer", sa.String(64)),
    sa.Column("reviewed_at", sa.String(32)),
    sa.Column("comment", sa.Text),
    sa.Column("source_generated", sa.String(64)),
    sa.Column("imported_at", sa.String(32), nullable=False),
)

audit = sa.Table(
    "audit",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("site", sa.String(64), nullable=False),
    sa.Column("flight", sa.String(64), nullable=False),
    sa.Column("finding_id", sa.String(64), nullable=False),
    sa.Column("user", sa.String(64), nullable=False),
    sa.Column("time", sa.String(32), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("before", sa.JSON),
    sa.Column("after", sa.JSON),
    sa.Column("comment", sa.Text),
)
sa.Index("audit_finding", audit.c.site, audit.c.flight, audit.c.finding_id)

REVIEWABLE = ("status", "class_name", "severity", "xyxy", "version", "reviewer", "reviewed_at", "comment")
"""The fields of a finding row that the audit trail records before and after each change."""


def now_iso() -> str:
    """The current UTC time, ISO-8601 with seconds."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def default_url(settings: Settings) -> str:
    """``sqlite:///<data_dir>/review/review.db``."""
    return f"sqlite:///{Path(settings.data_dir) / 'review' / 'review.db'}"


def connect(url: str) -> sa.Engine:
    """An engine for ``url`` with the tables created (a new SQLite file is made with mode 0600).

    Raises:
        ValueError: a URL that is neither ``sqlite:///...`` nor ``postgresql://...``.
    """
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///") :])
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not path.exists():  # it holds password hashes: owner only (SQLite gives -wal/-shm the same mode)
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

    elif url.startswith(("postgresql://", "postgresql+")):
        engine = sa.create_engine(url, pool_pre_ping=True)
    else:
        raise ValueError(
            f"database URL {url.split('://')[0]}://... is not supported: use sqlite:/// or postgresql://"
        )
    metadata.create_all(engine)
    return engine


def row_view(row: Any) -> dict[str, Any]:
    """A finding row as a plain dict (JSON-able)."""
    return dict(row._mapping)


def reviewable(row: dict[str, Any]) -> dict[str, Any]:
    """The audited fields of a finding row."""
    return {k: row.get(k) for k in REVIEWABLE}


def get_finding(conn: sa.Connection, site: str, flight: str, finding_id: str) -> dict[str, Any] | None:
    row = conn.execute(
        sa.select(findings).where(
            findings.c.site == site, findings.c.flight == flight, findings.c.finding_id == finding_id
        )
    ).first()
    return row_view(row) if row is not None else None


def audit_trail(conn: sa.Connection, site: str, flight: str, finding_id: str) -> list[dict[str, Any]]:
    """Every audit entry of one finding, oldest first."""
    rows = conn.execute(
        sa.select(audit)
        .where(audit.c.site == site, audit.c.flight == flight, audit.c.finding_id == finding_id)
        .order_by(audit.c.id)
    )
    return [row_view(r) for r in rows]

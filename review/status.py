"""Review status of a flight's findings, for the report stage: ``review_status(site, flight)``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa

from review.db import connect, default_url, findings
from skyinspect.config import Settings, load_settings


def review_status(
    site: str, flight: str, *, settings: Settings | None = None, db_url: str | None = None
) -> dict[str, dict[str, Any]]:
    """finding id -> {status, reviewer, time, class_name, severity, comment, version} of one flight.

    ``status`` is ``pending`` (not reviewed), ``confirmed`` or ``rejected``; ``class_name``/``severity`` are the
    reviewed values (they differ from findings.json when a reviewer changed them). Findings that were never
    imported into the review database are absent (all of them when there is no database yet). The database is ``db_url`` or the default under
    ``settings.data_dir`` (settings loaded when not given).
    """
    url = db_url or default_url(settings or load_settings())
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///") :]).exists():
        return {}  # nobody reviewed anything on this machine yet: do not create a database for it
    engine = connect(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(findings).where(findings.c.site == site, findings.c.flight == flight)
            ).all()
    finally:
        engine.dispose()
    return {
        r.finding_id: {
            "status": r.status,
            "reviewer": r.reviewer,
            "time": r.reviewed_at,
            "class_name": r.class_name,
            "severity": r.severity,
            "comment": r.comment,
            "version": r.version,
        }
        for r in rows
    }

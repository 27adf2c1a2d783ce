"""Idempotent import of a site's findings (``results/{site}/{flight}/findings.json``) into the review database.

A finding is keyed by (site, flight, finding id). Importing again never touches a finding a reviewer has
already decided on (its decisions and version stay); a finding nobody reviewed yet is refreshed (new version,
audit entry ``refresh``) when the flight's findings were rebuilt. Findings documents are checked with the findings stage's own schema.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from findings.schema import SchemaError, validate_findings
from objectstore import keys
from objectstore.client import ObjectNotFound, ObjectStore
from review.db import audit, findings, now_iso

log = logging.getLogger(__name__)


@dataclass
class ImportResult:
    site: str
    flights: list[str] = field(default_factory=list)
    inserted: int = 0
    refreshed: int = 0
    unchanged: int = 0
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "site": self.site,
            "flights": self.flights,
            "inserted": self.inserted,
            "refreshed": self.refreshed,
            "unchanged": self.unchanged,
            "problems": self.problems,
        }


def site_flights(store: ObjectStore, site: str) -> list[str]:
    """Flights of ``site`` that have a ``findings.json``, sorted."""
    prefix = keys.results_prefix(site, "x")[: -len("x/")]
    out = set()
    for info in store.list(prefix):
        rest = info.key[len(prefix) :]
        if rest.count("/") == 1 and rest.endswith("/findings.json"):
            out.add(rest.split("/", 1)[0])
    return sorted(out)


def frame_index(store: ObjectStore, site: str, flight: str) -> dict[str, dict[str, Any]]:
    """relative path -> {key, width, height} from the flight's manifest (empty when it has none)."""
    try:
        manifest = store.get_json(keys.manifest_key(site, flight))
    except ObjectNotFound:
        return {}
    out: dict[str, dict[str, Any]] = {}
    for rec in manifest.get("images", []):
        entry = {
            "key": rec.get("key") or keys.image_key(site, flight, rec["path"]),
            "width": rec.get("width"),
            "height": rec.get("height"),
        }
        for p in [rec.get("path"), *(rec.get("paths") or [])]:
            if p:
                out[p] = entry
    return out


def _row(
    site: str, flight: str, doc: dict[str, Any], f: dict[str, Any], frames: dict[str, Any]
) -> dict[str, Any]:
    used = {e["image"] for e in f["evidence"]} | {f["best"]["image"]}
    frame_info = {
        rel: frames.get(rel) or {"key": keys.image_key(site, flight, rel), "width": None, "height": None}
        for rel in sorted(used)
    }
    return {
        "site": site,
        "flight": flight,
        "finding_id": f["id"],
        "domain": f["domain"],
        "orig_class": f["class"],
        "class_name": f["class"],
        "orig_severity": f["grade"]["severity"],
        "severity": f["grade"]["severity"],
        "best_image": f["best"]["image"],
        "orig_xyxy": [float(v) for v in f["best"]["xyxy"]],
        "xyxy": [float(v) for v in f["best"]["xyxy"]],
        "confidence": float(f["confidence"]),
        "doc": f,
        "frames": frame_info,
        "source_generated": str(doc.get("generated") or ""),
    }


def _summary(row: dict[str, Any], status: str, version: int) -> dict[str, Any]:
    return {
        "class_name": row["class_name"],
        "severity": row["severity"],
        "xyxy": row["xyxy"],
        "status": status,
        "version": version,
    }


def import_flight(
    engine: sa.Engine, store: ObjectStore, site: str, flight: str, result: ImportResult
) -> None:
    """Import one flight's findings into the database (see the module docstring).

    Raises:
        ObjectNotFound: the flight has no findings.json.
        findings.schema.SchemaError: the document does not follow the findings schema.
    """
    key = keys.findings_key(site, flight)
    doc = validate_findings(store.get_json(key))
    frames = frame_index(store, site, flight)
    stamp = now_iso()
    with engine.begin() as conn:
        for f in doc["findings"]:
            row = _row(site, flight, doc, f, frames)
            pk = (findings.c.site == site, findings.c.flight == flight, findings.c.finding_id == f["id"])
            existing = conn.execute(
                sa.select(findings.c.version, findings.c.reviewer, findings.c.source_generated).where(*pk)
            ).first()
            if existing is None:
                conn.execute(
                    sa.insert(findings).values(**row, status="pending", version=1, imported_at=stamp)
                )
                conn.execute(
                    sa.insert(audit).values(
                        site=site,
                        flight=flight,
                        finding_id=f["id"],
                        user="import",
                        time=stamp,
                        action="import",
                        before=None,
                        after=_summary(row, "pending", 1),
                        comment=f"from {key}",
                    )
                )
                result.inserted += 1
            elif existing.reviewer is None and existing.source_generated != row["source_generated"]:
                # never reviewed and the findings were rebuilt: take the new ones; the version moves on so a
                # reviewer still looking at the old finding gets a conflict instead of deciding on stale data
                version = existing.version + 1
                conn.execute(
                    sa.update(findings)
                    .where(*pk, findings.c.version == existing.version)
                    .values(**row, version=version, imported_at=stamp)
                )
                conn.execute(
                    sa.insert(audit).values(
                        site=site,
                        flight=flight,
                        finding_id=f["id"],
                        user="import",
                        time=stamp,
                        action="refresh",
                        before=None,
                        after=_summary(row, "pending", version),
                        comment=f"rebuilt {key}",
                    )
                )
                result.refreshed += 1
            else:
                result.unchanged += 1
    result.flights.append(flight)


def import_site(engine: sa.Engine, store: ObjectStore, site: str, flight: str | None = None) -> ImportResult:
    """Import every flight of ``site`` (or just ``flight``); flights with a broken findings.json are reported.

    Raises:
        objectstore.keys.InvalidKey: an unsafe site or flight id.
        ObjectNotFound: ``flight`` was given and has no findings.json.
    """
    keys.validate_id(site, "site")
    result = ImportResult(site)
    if flight is not None:
        import_flight(engine, store, site, keys.validate_id(flight, "flight"), result)
        return result
    for fl in site_flights(store, site):
        try:
            import_flight(engine, store, site, fl, result)
        except (SchemaError, ValueError, ObjectNotFound) as exc:
            log.warning("%s/%s: not imported: %s", site, fl, exc)
            result.problems.append(f"{fl}: {exc}")
    log.info("import %s: %s", site, result.to_dict())
    return result

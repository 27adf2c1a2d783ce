"""Reviewers' decisions on a finding, with optimistic concurrency and an audit entry per change.

Actions (``Decision.action``):

* ``confirm`` — the finding is real as detected (status ``confirmed``).
* ``reject`` — a false positive (status ``rejected``); the export turns its box into a negative.
* ``reclassify`` — real, but of another class of the same taxonomy domain (status ``confirmed``).
* ``adjust_box`` — real, with a corrected box ``xyxy`` on the best frame (status ``confirmed``).
* ``severity`` — a different severity; a comment saying why is required (status unchanged).

Every update names the ``version`` the reviewer saw; when the finding moved on meanwhile, :class:`Conflict` is
raised and nothing is written, so two reviewers never silently overwrite each other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from detection.taxonomy import TaxonomyError, by_name
from review.db import SEVERITIES, audit, findings, get_finding, now_iso, reviewable

ACTIONS: tuple[str, ...] = ("confirm", "reject", "reclassify", "adjust_box", "severity")
MAX_COMMENT = 2000


class DecisionError(ValueError):
    """A decision that cannot be applied as given (unknown action, class, severity, bad box); HTTP 400/422."""


class NotFound(LookupError):
    """No such finding in the review database; HTTP 404."""


class Conflict(RuntimeError):
    """The finding changed since the reviewer loaded it; HTTP 409. ``current`` is the row as it is now."""

    def __init__(self, message: str, current: dict[str, Any]) -> None:
        super().__init__(message)
        self.current = current


@dataclass(frozen=True)
class Decision:
    action: str
    version: int
    class_name: str | None = None
    severity: str | None = None
    xyxy: tuple[float, float, float, float] | None = None
    comment: str = ""


def parse_box(values: Any, width: int | None, height: int | None) -> tuple[float, float, float, float]:
    """Four pixel coordinates ``x1 y1 x2 y2`` (a list or a string of four numbers) checked against the frame.

    Raises:
        DecisionError: not four finite numbers, x2 <= x1 or y2 <= y1, or outside the ``width`` x ``height`` frame.
    """
    if isinstance(values, str):
        values = values.replace(",", " ").split()
    try:
        box = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise DecisionError(f"box {values!r}: expected four numbers x1 y1 x2 y2") from None
    if len(box) != 4 or not all(math.isfinite(v) for v in box):
        raise DecisionError(f"box {values!r}: expected four finite numbers x1 y1 x2 y2")
    x1, y1, x2, y2 = box
    if x2 <= x1 or y2 <= y1:
        raise DecisionError(f"box {list(box)}: needs x1 < x2 and y1 < y2")
    if min(box) < 0 or (width and x2 > width) or (height and y2 > height):
        raise DecisionError(f"box {list(box)}: outside the {width or '?'}x{height or '?'} px frame")
    return box  # type: ignore[return-value]


def _changes(row: dict[str, Any], d: Decision) -> dict[str, Any]:
    if d.action not in ACTIONS:
        raise DecisionError(f"action {d.action!r} is not one of {', '.join(ACTIONS)}")
    comment = (d.comment or "").strip()
    if len(comment) > MAX_COMMENT:
        raise DecisionError(f"comment: at most {MAX_COMMENT} characters")
    if d.action == "confirm":
        return {"status": "confirmed"}
    if d.action == "reject":
        return {"status": "rejected"}
    if d.action == "reclassify":
        if not d.class_name:
            raise DecisionError("reclassify: give the new class")
        try:
            by_name(row["domain"], d.class_name)
        except TaxonomyError as exc:
            raise DecisionError(str(exc)) from None
        return {"status": "confirmed", "class_name": d.class_name}
    if d.action == "adjust_box":
        if d.xyxy is None:
            raise DecisionError("adjust_box: give the box x1 y1 x2 y2")
        frame = row["frames"].get(row["best_image"]) or {}
        box = parse_box(d.xyxy, frame.get("width"), frame.get("height"))
        return {"status": "confirmed", "xyxy": [round(v, 1) for v in box]}
    # severity
    if d.severity not in SEVERITIES:
        raise DecisionError(f"severity {d.severity!r} is not one of {', '.join(SEVERITIES)}")
    if not comment:
        raise DecisionError("severity: a comment saying why is required")
    return {"severity": d.severity}


def apply_decision(
    engine: sa.Engine, site: str, flight: str, finding_id: str, decision: Decision, user: str
) -> dict[str, Any]:
    """Apply ``decision`` by ``user``; returns the updated row.

    Raises:
        NotFound: no such finding.
        DecisionError: the decision is invalid for this finding.
        Conflict: ``decision.version`` is not the finding's current version.
    """
    # Read and check first, then write in a transaction whose first statement is the guarded UPDATE: it takes
    # the write lock at once (SQLite cannot upgrade a stale read snapshot) and matches only the version the
    # reviewer saw, so "before" is exactly the row that was read.
    with engine.connect() as conn:
        row = get_finding(conn, site, flight, finding_id)
    if row is None:
        raise NotFound(f"finding {finding_id} of {site}/{flight} is not in the review database")
    changes = _changes(row, decision)
    stamp = now_iso()
    changes.update(
        version=decision.version + 1,
        reviewer=user,
        reviewed_at=stamp,
        comment=decision.comment.strip() or None,
    )
    with engine.begin() as conn:
        result = conn.execute(
            sa.update(findings)
            .where(
                findings.c.site == site,
                findings.c.flight == flight,
                findings.c.finding_id == finding_id,
                findings.c.version == decision.version,
            )
            .values(**changes)
        )
        if result.rowcount != 1:
            current = get_finding(conn, site, flight, finding_id) or row
            raise Conflict(
                f"finding {finding_id} was changed by {current.get('reviewer') or 'someone'} at "
                f"{current.get('reviewed_at') or '?'} (now version {current['version']}, you had version "
                f"{decision.version}); nothing was saved: reload it and apply your change again",
                current,
            )
        after = get_finding(conn, site, flight, finding_id) or {**row, **changes}
        conn.execute(
            sa.insert(audit).values(
                site=site,
                flight=flight,
                finding_id=finding_id,
                user=user,
                time=stamp,
                action=decision.action,
                before=reviewable(row),
                after=reviewable(after),
                comment=decision.comment.strip() or None,
            )
        )
    return after

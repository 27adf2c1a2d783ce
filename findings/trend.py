"""Trend against the previous inspection of the same site: new, persisting, growing or resolved.

Matching: same class and same asset (PV: module id, or string id for string offline; wind: turbine, blade,
side and radius within ``max(1 m, size/2)``), else — when either has no asset — ground distance within 1.5 m.

Growth: ΔT compared normalised to 1000 W/m² (so inspections at different irradiance compare), size in metres.
A finding is *growing* when its normalised ΔT rose by ≥ max(1 K, 10 %) or its size by ≥ max(5 cm, 20 %);
otherwise *persisting*. Time to the next category is a **linear extrapolation** of that growth per day between
the two inspection times to the next grade threshold (CoA ΔT limits of :mod:`findings.grading`, wind size
steps); none when not growing or already at the top. Previous findings without a match are listed as
*resolved*.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from findings import grading

DIST_TOLERANCE_M = 1.5


def _days_between(a: str | None, b: str | None) -> float | None:
    if not a or not b:
        return None
    try:
        ta, tb = datetime.fromisoformat(a), datetime.fromisoformat(b)
    except ValueError:
        return None
    if (ta.tzinfo is None) != (tb.tzinfo is None):
        ta, tb = ta.replace(tzinfo=None), tb.replace(tzinfo=None)
    return (tb - ta).total_seconds() / 86400.0


def _same(cur: dict[str, Any], prev: dict[str, Any]) -> float | None:
    """A match distance (smaller = better) or None when the two are not the same defect."""
    if cur["class"] != prev["class"]:
        return None
    a, b = cur.get("asset") or {}, prev.get("asset") or {}
    if cur["domain"] == "wind-rgb":
        if not a.get("turbine_id") or (a.get("turbine_id"), a.get("blade"), a.get("side")) != (
            b.get("turbine_id"),
            b.get("blade"),
            b.get("side"),
        ):
            return None
        if a.get("radius_m") is None or b.get("radius_m") is None:
            return None
        tol = max(1.0, 0.5 * max(cur.get("size_m") or 0.0, prev.get("size_m") or 0.0))
        d = abs(a["radius_m"] - b["radius_m"])
        return d if d <= tol else None
    if cur["class"] == "string_offline" and a.get("string_id") and b.get("string_id"):
        return 0.0 if a["string_id"] == b["string_id"] else None
    if a.get("module_id") and b.get("module_id"):
        return 0.0 if a["module_id"] == b["module_id"] else None
    la, lb = cur.get("location") or {}, prev.get("location") or {}
    if not la.get("located") or not lb.get("located"):
        return None
    mlat = 111_320.0
    mlon = mlat * math.cos(math.radians(la["lat"]))
    d = math.hypot((la["lat"] - lb["lat"]) * mlat, (la["lon"] - lb["lon"]) * mlon)
    return d if d <= DIST_TOLERANCE_M else None


class _PreviousIndex:
    """The previous findings indexed so that each current finding is compared only with those :func:`_same`
    could match: same class and, within it, the same wind blade side, string id or module id, or a located
    finding in the 3 × 3 cells (3 m, wider than :data:`DIST_TOLERANCE_M`) around it. The pairs found equal
    those of comparing every pair (tests/findings/test_findings_fastpaths.py)."""

    CELL_M = 3.0

    def __init__(self, prev: list[dict[str, Any]], current: list[dict[str, Any]]) -> None:
        self.by_key: dict[tuple, list[int]] = {}
        self.by_cell: dict[tuple, list[int]] = {}
        lats = [
            abs(loc["lat"])
            for f in (*prev, *current)
            if (loc := f.get("location") or {}).get("lat") is not None
        ]
        self.mlat = 111_320.0
        # metres per degree of longitude at the highest latitude of any finding: a cell is never narrower in
        # degrees than the 1.5 m that _same measures at the current finding's own latitude
        self.mlon = self.mlat * max(math.cos(math.radians(min(max(lats, default=0.0), 90.0))), 1e-9)
        for j, p in enumerate(prev):
            for key in self._keys(p, previous=True):
                self.by_key.setdefault(key, []).append(j)
            cell = self._cell(p)
            if cell is not None:
                self.by_cell.setdefault(cell, []).append(j)

    @staticmethod
    def _keys(f: dict[str, Any], previous: bool = False) -> list[tuple]:
        a = f.get("asset") or {}
        cls = f.get("class")
        out = []
        if previous or f.get("domain") == "wind-rgb":
            out.append((cls, "blade", a.get("turbine_id"), a.get("blade"), a.get("side")))
            if not previous:
                return out
        if a.get("string_id"):
            out.append((cls, "string", a["string_id"]))
        if a.get("module_id"):
            out.append((cls, "module", a["module_id"]))
        return out

    def _cell(self, f: dict[str, Any]) -> tuple | None:
        loc = f.get("location") or {}
        if not loc.get("located") or loc.get("lat") is None or loc.get("lon") is None:
            return None
        return (
            f.get("class"),
            math.floor(loc["lat"] * self.mlat / self.CELL_M),
            math.floor(loc["lon"] * self.mlon / self.CELL_M),
        )

    def candidates(self, cur: dict[str, Any]) -> list[int]:
        """Indices of the previous findings that may match ``cur`` (a superset of :func:`_same`'s), ascending."""
        found: set[int] = set()
        for key in self._keys(cur):
            found.update(self.by_key.get(key, ()))
        if cur.get("domain") != "wind-rgb":
            cell = self._cell(cur)
            if cell is not None:
                cls, gy, gx = cell
                for dy in (-1, 0, 1):
                    for dx in (-1, 0, 1):
                        found.update(self.by_cell.get((cls, gy + dy, gx + dx), ()))
        return sorted(found)


def _dt_norm(f: dict[str, Any]) -> float | None:
    t = f.get("thermal") or {}
    return t.get("delta_t_norm_k") if t.get("delta_t_norm_k") is not None else t.get("delta_t_k")


def compare(cur: dict[str, Any], prev: dict[str, Any], days: float | None) -> dict[str, Any]:
    """The trend record of a matched pair (rules in the module docstring)."""
    growth: dict[str, Any] = {}
    growing = []
    a, b = _dt_norm(cur), _dt_norm(prev)
    if a is not None and b is not None:
        growth["delta_t_norm_k"] = {"previous": b, "current": a, "change": round(a - b, 2)}
        if a - b >= max(1.0, 0.1 * abs(b)):
            growing.append("ΔT")
    sa, sb = cur.get("size_m"), prev.get("size_m")
    if sa is not None and sb is not None:
        growth["size_m"] = {"previous": sb, "current": sa, "change": round(sa - sb, 3)}
        if sa - sb >= max(0.05, 0.2 * sb):
            growing.append("size")
    status = "growing" if growing else "persisting"
    eta, eta_how = None, None
    if growing and days and days > 0:
        if "ΔT" in growing and cur.get("thermal"):
            dt_now = cur["thermal"].get("delta_t_k")
            nxt = grading.coa_next_threshold(cur["class"], dt_now) if dt_now is not None else None
            rate = (a - b) / days
            if nxt is not None and rate > 0:
                eta = (nxt - dt_now) / rate
                eta_how = f"ΔT {dt_now:.1f} K → {nxt:g} K at {rate:.3f} K/day (linear extrapolation)"
        if eta is None and "size" in growing and cur["domain"] == "wind-rgb":
            nxt = grading.wind_next_size(cur["class"], sa)
            rate = (sa - sb) / days
            if nxt is not None and rate > 0:
                eta = (nxt - sa) / rate
                eta_how = f"size {sa:.2f} m → {nxt:g} m at {rate * 100:.2f} cm/day (linear extrapolation)"
    return {
        "status": status,
        "previous_id": prev["id"],
        "previous_grade": prev.get("grade", {}).get("label"),
        "growth": growth,
        "growing_in": growing,
        "days_between": None if days is None else round(days, 2),
        "time_to_next_category_days": None if eta is None else round(eta, 1),
        "time_to_next_category_method": eta_how
        or ("not growing" if not growing else "no higher category, or no time between the inspections"),
    }


def apply_trend(doc: dict[str, Any], previous: dict[str, Any]) -> None:
    """Set ``trend`` on every finding of ``doc`` and ``doc["resolved"]`` from the ``previous`` findings.json."""
    days = _days_between(previous.get("inspection_time"), doc.get("inspection_time"))
    prev_list = list(previous.get("findings") or [])
    index = _PreviousIndex(prev_list, doc["findings"])
    pairs = []
    for i, cur in enumerate(doc["findings"]):
        for j in index.candidates(cur):
            d = _same(cur, prev_list[j])
            if d is not None:
                pairs.append((d, i, j))
    pairs.sort()
    used_c, used_p = set(), set()
    for _, i, j in pairs:
        if i in used_c or j in used_p:
            continue
        used_c.add(i)
        used_p.add(j)
        doc["findings"][i]["trend"] = compare(doc["findings"][i], prev_list[j], days)
    for i, cur in enumerate(doc["findings"]):
        if i not in used_c:
            cur["trend"] = {
                "status": "new",
                "previous_id": None,
                "growth": {},
                "growing_in": [],
                "days_between": None if days is None else round(days, 2),
                "time_to_next_category_days": None,
                "time_to_next_category_method": "new since the previous inspection",
            }
    doc["resolved"] = [
        {
            "previous_id": p["id"],
            "class": p["class"],
            "asset": p.get("asset"),
            "location": p.get("location"),
            "grade": p.get("grade", {}).get("label"),
            "status": "resolved",
        }
        for j, p in enumerate(prev_list)
        if j not in used_p
    ]
    doc["previous_flight"] = {
        "flight": previous.get("flight"),
        "inspection_time": previous.get("inspection_time"),
        "days_between": None if days is None else round(days, 2),
    }

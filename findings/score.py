"""Score a flight's findings against a synthetic flight's truth (``truth/defects.json``).

Matching is one-to-one and greedy by distance: a finding and a true defect match when they have the same class
and — PV — their ground distance is within ``max(1.5 m, size/2 + 1 m)`` (size = the true defect's extent), or —
wind — the same turbine, blade and side with radii within ``max(1 m, size/2 + 0.5 m)``.

* recall = matched true defects / true defects; precision = matched findings / findings;
* duplicate_rate = unmatched findings that would have matched an already-matched true defect / findings;
* median_location_error_m = median ground distance of matched pairs (PV: lat/lon; wind: lat/lon/alt in 3-D);
* module_id_accuracy = matched PV pairs whose module id equals the truth's (string offline: the string id);
  wind: the pair's turbine/blade/side agree (always, by construction of the match) — reported as None;
* grade_agreement = matched pairs whose grade equals the grade the truth implies (the same rules of
  :mod:`findings.grading` applied to the true class, ΔT, size and radius).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from detection.taxonomy import Domain
from findings import grading


def _metres(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    mlat = 111_132.954 - 559.822 * math.cos(2 * math.radians(lat1))
    mlon = 111_412.84 * math.cos(math.radians(lat1))
    return math.hypot((lat1 - lat2) * mlat, (lon1 - lon2) * mlon)


def _distance(f: dict[str, Any], t: dict[str, Any], dom: Domain) -> float | None:
    if f["class"] != t["class"]:
        return None
    size = float(t.get("size_m") or 0.0)
    if dom == Domain.WIND:
        a, b = f.get("asset") or {}, t.get("asset") or {}
        if (a.get("turbine_id"), a.get("blade"), a.get("side")) != (
            b.get("turbine_id"),
            b.get("blade"),
            b.get("side"),
        ):
            return None
        if a.get("radius_m") is None:
            return None
        d = abs(a["radius_m"] - b["radius_m"])
        return d if d <= max(1.0, size / 2 + 0.5) else None
    loc = f.get("location") or {}
    if not loc.get("located"):
        return None
    d = _metres(loc["lat"], loc["lon"], t["lat"], t["lon"])
    return d if d <= max(1.5, size / 2 + 1.0) else None


def _location_error(f: dict[str, Any], t: dict[str, Any], dom: Domain) -> float:
    loc = f["location"]
    d = _metres(loc["lat"], loc["lon"], t["lat"], t["lon"])
    if dom == Domain.WIND and loc.get("alt_m") is not None and t.get("alt_m") is not None:
        d = math.hypot(d, loc["alt_m"] - t["alt_m"])
    return d


def truth_grade(dom: Domain, t: dict[str, Any], blade_lengths: dict[str, float]) -> grading.Grade:
    asset = t.get("asset") or {}
    return grading.grade(
        dom,
        t["class"],
        delta_t_k=t.get("delta_t_k"),
        size_m=t.get("size_m"),
        radius_m=asset.get("radius_m"),
        blade_length_m=blade_lengths.get(asset.get("turbine_id", "")),
    )


def score(findings_doc: dict[str, Any], truth_dir: str | Path) -> dict[str, Any]:
    """The scores of ``findings_doc`` against ``truth_dir`` (a synthetic flight's ``truth/`` or its parent)."""
    root = Path(truth_dir)
    if (root / "truth" / "defects.json").exists():
        root = root / "truth"
    path = root / "defects.json"
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: no truth registry (expected a synthetic flight's truth/defects.json)"
        )
    truth: list[dict[str, Any]] = json.loads(path.read_text("utf-8"))
    dom = Domain(findings_doc["kind"])
    blade_lengths: dict[str, float] = {}
    layout = root.parent / "site" / "layout.geojson"
    if dom == Domain.WIND and layout.exists():
        for feat in json.loads(layout.read_text("utf-8")).get("features", []):
            p = feat.get("properties") or {}
            if p.get("turbine_id") and p.get("blade_length_m"):
                blade_lengths[p["turbine_id"]] = float(p["blade_length_m"])
    fs = findings_doc["findings"]
    pairs = []
    for i, f in enumerate(fs):
        for j, t in enumerate(truth):
            d = _distance(f, t, dom)
            if d is not None:
                pairs.append((d, i, j))
    pairs.sort()
    match_f: dict[int, int] = {}
    match_t: dict[int, int] = {}
    for _, i, j in pairs:
        if i in match_f or j in match_t:
            continue
        match_f[i], match_t[j] = j, i
    dup = sum(
        1 for i in range(len(fs)) if i not in match_f and any(p[1] == i and p[2] in match_t for p in pairs)
    )
    errors, module_ok, module_n, grade_ok = [], 0, 0, 0
    mismatches = []
    for i, j in match_f.items():
        f, t = fs[i], truth[j]
        errors.append(_location_error(f, t, dom))
        if dom != Domain.WIND:
            ta, fa = t.get("asset") or {}, f.get("asset") or {}
            module_n += 1
            if t["class"] == "string_offline" or ta.get("module_ids"):
                module_ok += int(
                    fa.get("string_id") is not None and fa.get("string_id") == ta.get("string_id")
                )
            else:
                module_ok += int(fa.get("module_id") == ta.get("module_id"))
        tg = truth_grade(dom, t, blade_lengths)
        ok = tg.value == f["grade"]["value"]
        grade_ok += int(ok)
        if not ok:
            mismatches.append(
                {
                    "finding": f["id"],
                    "defect_id": t["defect_id"],
                    "class": t["class"],
                    "truth": tg.label,
                    "found": f["grade"]["label"],
                    "truth_delta_t_k": t.get("delta_t_k"),
                    "found_delta_t_k": (f.get("thermal") or {}).get("delta_t_k"),
                    "truth_size_m": t.get("size_m"),
                    "found_size_m": f.get("size_m"),
                }
            )
    n_m = len(match_f)
    return {
        "kind": dom.value,
        "truth_defects": len(truth),
        "findings": len(fs),
        "matched": n_m,
        "recall": n_m / len(truth) if truth else 1.0,
        "precision": n_m / len(fs) if fs else 1.0,
        "duplicate_rate": dup / len(fs) if fs else 0.0,
        "median_location_error_m": float(np.median(errors)) if errors else None,
        "module_id_accuracy": module_ok / module_n if module_n else None,
        "grade_agreement": grade_ok / n_m if n_m else None,
        "grade_mismatches": mismatches,
        "missed": [truth[j]["defect_id"] for j in range(len(truth)) if j not in match_t],
        "unmatched_findings": [fs[i]["id"] for i in range(len(fs)) if i not in match_f],
    }

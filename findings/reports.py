"""Reports of a flight's findings: HTML (read first), PDF, CSV, GeoJSON, KML, JSON (+ its schema), crops.

* ``report.html`` — self-contained (no internet, no tiles): summary, counts by severity, inspection validity
  (thermal), a map (inline SVG of the as-built layout in local metres with the findings plotted), the findings
  table with annotated crops embedded as PNG data URIs (the first :data:`MAX_HTML_CROPS`, most severe first;
  beyond that linked to ``crops/<id>.png`` beside the report), a ΔT plot (thermal), trends and resolved findings.
* ``report.pdf`` — the same content paginated with matplotlib's PDF backend (pure pip, no system libraries);
  crop sheets for the :data:`MAX_PDF_CROPS` most severe findings, ids on the map for :data:`MAX_MAP_LABELS`.
* ``findings.csv`` — one row per finding. ``findings.geojson`` — RFC 7946 FeatureCollection of Points
  (lon, lat), one per located finding. ``findings.kml`` — KML 2.2 Placemarks (Google Earth, QGIS).
* Suppressed detections (:mod:`findings.checks`: no module slot under a "missing module", an area pattern the
  radiometry shows no warmer than its neighbours, a detection not repeated in the frames that showed it) are
  not findings: they are left out of the counts, the CSV/GeoJSON/KML, the map and the crops, and listed with
  their rule and reason in report.html, the PDF and ``findings.json`` (``suppressed``) for audit. Each finding's
  row in report.html says in how many of the frames that showed it whole it was detected.
* ``findings.json`` + ``findings.schema.json`` — the findings document and its JSON Schema.
* ``site_summary.html`` / ``site_summary.json`` — every inspection of the site known so far (when given).
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
import shutil
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape as xml_escape

import cv2
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib import transforms
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.collections import PolyCollection
from matplotlib.patches import Patch

from findings import grading
from findings.build import FlightFindings
from findings.schema import SCHEMA_PATH, validate_findings

MAX_TICK_LABELS = 60
"""The ΔT plot labels every finding up to this many, then every k-th (unreadable otherwise, and slow)."""
CROPS_PER_PAGE = 12
MAX_PDF_CROPS = 240
"""Crop sheets in the PDF: the most severe findings' first (the HTML report and ``crops/`` have them all)."""
MAX_HTML_CROPS = 400
"""Crops embedded in report.html (data URIs), the most severe findings' first; the others are linked to their
file in ``crops/`` beside the report (a crop PNG is ~10–50 kB: thousands embedded make a report of 100+ MB)."""
MAX_MAP_LABELS = 150
"""Finding ids written next to their points on the PDF map: the most severe first (all points are drawn)."""
ROWS_PER_PAGE = 48
SEVERITY_COLOURS = {
    "critical": "#d70015",
    "major": "#ff9500",
    "moderate": "#ffcc00",
    "minor": "#34c759",
    "ungraded": "#8e8e93",
}
CSV_FIELDS = [
    "id",
    "class",
    "display_name",
    "grade",
    "severity",
    "critical",
    "grade_reason",
    "lat",
    "lon",
    "alt_m",
    "located",
    "module_id",
    "string_id",
    "inverter_id",
    "turbine_id",
    "blade",
    "side",
    "radius_m",
    "assignment",
    "size_m",
    "delta_t_k",
    "delta_t_norm_k",
    "valid_conditions",
    "power_loss_w",
    "confidence",
    "n_observations",
    "best_image",
    "trend",
    "time_to_next_category_days",
    "reasons",
    "review_status",
    "reviewer",
    "reviewed_class",
]


def _views_text(f: dict[str, Any]) -> list[str]:
    """The ``multi-view`` check of a finding in words (``seen in 5 of 6 frames that showed it whole``), if run."""
    return [
        c["reason"]
        for c in f.get("checks") or []
        if c.get("rule") == "multi-view" and c.get("opportunities") is not None
    ]


def _asset_text(f: dict[str, Any]) -> str:
    a = f.get("asset") or {}
    if a.get("turbine_id"):
        if a.get("blade") is None:
            return f"{a['turbine_id']} (blade unknown)"
        return f"{a['turbine_id']} / blade {a['blade']} / {a['side'].replace('_', ' ')} / r = {a['radius_m']:.1f} m"
    if f["class"] == "string_offline" and a.get("string_id"):
        return f"string {a['string_id']} ({len(a.get('module_ids') or [])} modules, inverter {a.get('inverter_id')})"
    if a.get("module_id"):
        extra = (
            "" if a.get("assignment") == "inside" else f" ({a.get('assignment')}, {a.get('distance_m')} m)"
        )
        return f"{a['module_id']} · {a.get('string_id')} · {a.get('inverter_id')}{extra}"
    return a.get("assignment", "") + (f": {a['reason']}" if a.get("reason") else "")


def csv_rows(doc: dict[str, Any], review: dict[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    rows = []
    for f in doc["findings"]:
        rv = (review or {}).get(f["id"]) or {}
        a, loc, t = f.get("asset") or {}, f["location"], f.get("thermal") or {}
        rows.append(
            {
                "id": f["id"],
                "class": f["class"],
                "display_name": f["display_name"],
                "grade": f["grade"]["label"],
                "severity": f["grade"]["severity"],
                "critical": f["grade"]["critical"],
                "grade_reason": f["grade"]["reason"],
                "lat": loc.get("lat"),
                "lon": loc.get("lon"),
                "alt_m": loc.get("alt_m"),
                "located": loc["located"],
                "module_id": a.get("module_id"),
                "string_id": a.get("string_id"),
                "inverter_id": a.get("inverter_id"),
                "turbine_id": a.get("turbine_id"),
                "blade": a.get("blade"),
                "side": a.get("side"),
                "radius_m": a.get("radius_m"),
                "assignment": a.get("assignment"),
                "size_m": f.get("size_m"),
                "delta_t_k": t.get("delta_t_k"),
                "delta_t_norm_k": t.get("delta_t_norm_k"),
                "valid_conditions": (t.get("validity") or {}).get("valid") if t else None,
                "power_loss_w": f.get("power_loss_w"),
                "confidence": f["confidence"],
                "n_observations": f["n_observations"],
                "best_image": f["best"]["image"],
                "trend": (f.get("trend") or {}).get("status"),
                "time_to_next_category_days": (f.get("trend") or {}).get("time_to_next_category_days"),
                "reasons": "; ".join(f.get("reasons") or []),
                "review_status": rv.get("status", "pending"),
                "reviewer": rv.get("reviewer"),
                "reviewed_class": rv.get("class_name"),
            }
        )
    return rows


def geojson(doc: dict[str, Any]) -> dict[str, Any]:
    """An RFC 7946 FeatureCollection: one Point per located finding (properties = the CSV columns)."""
    feats = []
    for f, row in zip(doc["findings"], csv_rows(doc), strict=True):
        loc = f["location"]
        if not loc["located"]:
            continue
        coords = [loc["lon"], loc["lat"]] + ([loc["alt_m"]] if loc.get("alt_m") is not None else [])
        feats.append(
            {
                "type": "Feature",
                "id": f["id"],
                "geometry": {"type": "Point", "coordinates": coords},
                "properties": row,
            }
        )
    return {"type": "FeatureCollection", "features": feats}


def _kml_colour(hex_rgb: str) -> str:
    h = hex_rgb.lstrip("#")
    return f"ff{h[4:6]}{h[2:4]}{h[0:2]}"


def kml(doc: dict[str, Any]) -> str:
    """KML 2.2 with one styled Placemark per located finding."""
    styles = "".join(
        f'<Style id="sev-{s}"><IconStyle><color>{_kml_colour(c)}</color><scale>1.1</scale><Icon>'
        f"<href>http://maps.google.com/mapfiles/kml/shapes/placemark_circle.png</href></Icon></IconStyle></Style>"
        for s, c in SEVERITY_COLOURS.items()
    )
    marks = []
    for f in doc["findings"]:
        loc = f["location"]
        if not loc["located"]:
            continue
        alt = loc.get("alt_m")
        coord = f"{loc['lon']:.9f},{loc['lat']:.9f}" + (f",{alt:.2f}" if alt is not None else "")
        mode = "<altitudeMode>absolute</altitudeMode>" if alt is not None else ""
        desc = f"{f['grade']['label']}: {f['grade']['reason']}\n{_asset_text(f)}" + (
            f"\nΔT {f['thermal']['delta_t_k']} K"
            if (f.get("thermal") or {}).get("delta_t_k") is not None
            else ""
        )
        marks.append(
            f"<Placemark><name>{xml_escape(f['id'] + ' ' + f['display_name'])}</name>"
            f"<description>{xml_escape(desc)}</description><styleUrl>#sev-{f['grade']['severity']}</styleUrl>"
            f"<Point>{mode}<coordinates>{coord}</coordinates></Point></Placemark>"
        )
    name = xml_escape(f"skyinspect {doc['site']} / {doc['flight']}")
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<kml xmlns="http://www.opengis.net/kml/2.2"><Document>'
        f"<name>{name}</name>{styles}{''.join(marks)}</Document></kml>\n"
    )


# --------------------------------------------------------------------------------------------- figures
def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _bar_polygons(centres: np.ndarray, heights: np.ndarray, width: float) -> np.ndarray:
    """(N, 4, 2) rectangles of bars centred at ``centres`` (N,) from 0 to ``heights`` (N,): one collection
    draws them all (a bar chart of one patch per bar takes seconds with thousands of findings)."""
    x0, x1 = centres - width / 2, centres + width / 2
    zero = np.zeros_like(heights)
    return np.stack(
        [
            np.stack([x0, zero], 1),
            np.stack([x1, zero], 1),
            np.stack([x1, heights], 1),
            np.stack([x0, heights], 1),
        ],
        1,
    )


def delta_t_figure(doc: dict[str, Any]):
    """Bar chart of measured and normalised ΔT per finding with the CoA limits (thermal flights)."""
    fs = [f for f in doc["findings"] if (f.get("thermal") or {}).get("delta_t_k") is not None]
    fig, ax = plt.subplots(figsize=(8, 3.2))
    if fs:
        x = np.arange(len(fs), dtype=float)
        measured = np.array([f["thermal"]["delta_t_k"] for f in fs], float)
        norm = np.array([f["thermal"]["delta_t_norm_k"] or 0 for f in fs], float)
        colours = [SEVERITY_COLOURS[f["grade"]["severity"]] for f in fs]
        ax.add_collection(PolyCollection(_bar_polygons(x - 0.2, measured, 0.4), facecolors=colours))
        ax.add_collection(PolyCollection(_bar_polygons(x + 0.2, norm, 0.4), facecolors="#5ac8fa"))
        heights = np.concatenate([measured, norm, list(grading.COA_THRESHOLDS_K)])
        lo, hi = min(0.0, float(heights.min())), max(0.0, float(heights.max()))
        ax.set_xlim(-0.8, len(fs) - 0.2)
        ax.set_ylim(lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo))
        handles = [
            Patch(facecolor=colours[0], label="ΔT measured"),
            Patch(facecolor="#5ac8fa", label="ΔT at 1000 W/m² (linear)"),
        ]
        step = -(-len(fs) // MAX_TICK_LABELS)  # every finding up to MAX_TICK_LABELS, then every step-th
        ticks = list(range(0, len(fs), step))
        ax.set_xticks(ticks, [fs[i]["id"] for i in ticks], rotation=90, fontsize=7)
        if step > 1:
            ax.set_xlabel(f"findings in id order (every {step}th labelled)", fontsize=7)
    for t in grading.COA_THRESHOLDS_K:
        ax.axhline(t, color="#d70015", ls="--", lw=0.8)
    ax.set_ylabel("ΔT (K)")
    ax.set_title("ΔT per finding (dashed: CoA 2 / CoA 3 limits for hotspots and junction boxes)", fontsize=9)
    if fs:
        ax.legend(handles=handles, fontsize=7, loc="upper right")  # "best" scans every bar: slow
    else:
        ax.text(0.5, 0.5, "no ΔT measured", ha="center", va="center", transform=ax.transAxes)
    return fig


def map_figure(ff: FlightFindings):
    """The layout (modules or turbines) in local metres with the findings plotted (matplotlib)."""
    fig, ax = plt.subplots(figsize=(8, 6))
    lay = ff.layout
    if lay is not None and lay.kind == "pv":
        ax.add_collection(
            PolyCollection(
                [m.ring for m in lay.modules], facecolors="#dfe6ee", edgecolors="#9aa7b5", linewidths=0.3
            )
        )
    if lay is not None and lay.kind == "wind":
        ax.scatter([t.e for t in lay.turbines], [t.n for t in lay.turbines], marker="^", s=80, c="#333")
        for t in lay.turbines:
            ax.annotate(t.turbine_id, (t.e, t.n), fontsize=7)
    located = [f for f in ff.findings if f["location"]["located"] and "e_m" in f["location"]]
    if located:
        e = [f["location"]["e_m"] for f in located]
        n = [f["location"]["n_m"] for f in located]
        ax.scatter(
            e,
            n,
            s=40,
            c=[SEVERITY_COLOURS[f["grade"]["severity"]] for f in located],
            edgecolors="k",
            linewidths=0.5,
            zorder=3,
        )
        offset = transforms.offset_copy(ax.transData, fig=fig, x=3, y=3, units="points")
        for f, x, y in list(zip(located, e, n, strict=True))[:MAX_MAP_LABELS]:
            ax.text(x, y, f["id"], fontsize=6, transform=offset)
    ax.set_aspect("equal")
    ax.autoscale()
    ax.set_xlabel("east (m)")
    ax.set_ylabel("north (m)")
    more = len(located) - MAX_MAP_LABELS if located else 0
    ax.set_title(
        "Findings on the as-built layout (local metres; colour = severity)"
        + (
            f"\nids of the {MAX_MAP_LABELS} most severe shown, {more} more points unlabelled"
            if more > 0
            else ""
        ),
        fontsize=9,
    )
    return fig


def svg_map(ff: FlightFindings, width: int = 900) -> str:
    """An inline SVG of the layout in local metres (north up) with findings as coloured, labelled circles."""
    pts = [(f["location"]["e_m"], f["location"]["n_m"]) for f in ff.findings if "e_m" in f["location"]]
    shapes: list[list[tuple[float, float]]] = []
    lay = ff.layout
    if lay is not None and lay.kind == "pv":
        shapes = [[(float(x), float(y)) for x, y in m.ring] for m in lay.modules]
    turbines = (
        [(t.e, t.n, t.turbine_id) for t in lay.turbines] if lay is not None and lay.kind == "wind" else []
    )
    allp = pts + [p for s in shapes for p in s] + [(t[0], t[1]) for t in turbines]
    if not allp:
        return "<p>No located findings and no layout: nothing to map.</p>"
    xs, ys = [p[0] for p in allp], [p[1] for p in allp]
    x0, x1, y0, y1 = min(xs) - 3, max(xs) + 3, min(ys) - 3, max(ys) + 3
    scale = width / max(x1 - x0, 1e-3)
    height = int(max((y1 - y0) * scale, 200))
    scale = min(scale, height / max(y1 - y0, 1e-3))

    def tx(e: float, n: float) -> str:
        return f"{(e - x0) * scale:.1f},{(y1 - n) * scale:.1f}"

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" style="background:#f7f9fb;border:1px solid #ccd">'
    ]
    parts += [
        f'<polygon points="{" ".join(tx(*p) for p in s)}" fill="#dfe6ee" stroke="#9aa7b5" stroke-width="0.4"/>'
        for s in shapes
    ]
    for e, n, tid in turbines:
        parts.append(
            f'<text x="{(e - x0) * scale:.1f}" y="{(y1 - n) * scale:.1f}" font-size="14">▲ {html.escape(tid)}</text>'
        )
    r = 6
    for f in ff.findings:
        loc = f["location"]
        if "e_m" not in loc:
            continue
        cx, cy = (loc["e_m"] - x0) * scale, (y1 - loc["n_m"]) * scale
        col = SEVERITY_COLOURS[f["grade"]["severity"]]
        title = html.escape(f"{f['id']} {f['display_name']} — {f['grade']['label']} — {_asset_text(f)}")
        parts.append(
            f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="{r}" fill="{col}" stroke="#000" stroke-width="0.8">'
            f"<title>{title}</title></circle>"
        )
        parts.append(
            f'<text x="{cx + r + 1:.1f}" y="{cy - r:.1f}" font-size="10">{html.escape(f["id"])}</text>'
        )
    bar_m = 10 ** math.floor(math.log10(max((x1 - x0) / 4, 1)))
    parts.append(
        f'<line x1="10" y1="{height - 12}" x2="{10 + bar_m * scale:.1f}" y2="{height - 12}" stroke="#000" '
        f'stroke-width="2"/><text x="12" y="{height - 16}" font-size="10">{bar_m:g} m</text>'
        f'<text x="{width - 20}" y="18" font-size="14">N↑</text></svg>'
    )
    return "".join(parts)


# --------------------------------------------------------------------------------------------- HTML
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1c1c1e}
h1{margin-bottom:0}.sub{color:#636366;margin-top:4px}
.cards{display:flex;gap:10px;flex-wrap:wrap}.card{padding:10px 14px;border-radius:8px;color:#fff;min-width:90px}
.card b{font-size:22px;display:block}.banner{padding:10px;border-radius:6px;margin:12px 0}
.ok{background:#e3f7e8;border:1px solid #34c759}.bad{background:#fde8e8;border:1px solid #d70015}
table{border-collapse:collapse;width:100%;font-size:12px}th,td{border-bottom:1px solid #e5e5ea;padding:4px 6px;
text-align:left;vertical-align:top}th{background:#f2f2f7}.sev{padding:2px 6px;border-radius:4px;color:#fff}
img.crop{width:120px;height:auto;image-rendering:pixelated}
"""


def _sev_badge(sev: str, label: str) -> str:
    return f'<span class="sev" style="background:{SEVERITY_COLOURS.get(sev, "#8e8e93")}">{html.escape(label)}</span>'


def render_html(
    ff: FlightFindings,
    warnings: list[dict[str, Any]] | None = None,
    review: dict[str, dict[str, Any]] | None = None,
    *,
    delta_t_png: str | None = None,
) -> str:
    """The HTML report; ``delta_t_png``: the ΔT plot as base64 PNG when already rendered (thermal)."""
    doc = ff.doc
    c = doc["counts"]
    e = html.escape
    out = [
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>skyinspect {e(str(doc['site']))} / "
        f"{e(str(doc['flight']))}</title><style>{CSS}</style></head><body>"
    ]
    out.append(f"<h1>Inspection report — {e(str(doc['site']))} / {e(str(doc['flight']))}</h1>")
    out.append(
        f"<p class='sub'>{e(doc['kind'])} · inspected {e(str(doc.get('inspection_time') or 'unknown'))} · "
        f"generated {e(doc['generated'])} · schema {e(doc['schema_version'])}</p>"
    )
    out.append("<h2>Summary</h2>")
    crit = c.get("critical", 0)
    out.append(
        f"<p><b>{c['findings']}</b> findings from {c.get('observations', 0)} detections; <b>{crit}</b> "
        f"critical (fault warnings: {len(warnings or [])}); estimated power loss "
        f"<b>{c['power_loss_w'] / 1000:.2f} kW</b>; {c.get('unlocated', 0)} unlocated, "
        f"{c.get('ungraded', 0)} ungraded"
        + (
            f"; {c['suppressed']} detections suppressed by the physical checks (listed below)"
            if c.get("suppressed")
            else ""
        )
        + ".</p><div class='cards'>"
    )
    for sev in (*reversed(grading.SEVERITY_ORDER), "ungraded"):
        out.append(
            f"<div class='card' style='background:{SEVERITY_COLOURS[sev]}'><b>{c['by_severity'].get(sev, 0)}"
            f"</b>{sev}</div>"
        )
    out.append("</div>")
    out.append(
        "<p>By grade: "
        + ", ".join(f"{e(k)}: {v}" for k, v in c.get("by_grade", {}).items())
        + "<br>By class: "
        + ", ".join(f"{e(k)}: {v}" for k, v in c.get("by_class", {}).items())
        + "</p>"
    )
    if doc.get("kind") == "pv-thermal":
        v = doc.get("validity") or {}
        cond = doc.get("conditions") or {}
        cond_txt = ", ".join(f"{e(k)} = {e(str(val))}" for k, val in cond.items()) or "not recorded"
        if v.get("valid"):
            out.append(f"<div class='banner ok'>IEC TS 62446-3 conditions met ({cond_txt}).</div>")
        else:
            out.append(
                f"<div class='banner bad'><b>Inspection conditions do not meet IEC TS 62446-3:</b> "
                f"{e('; '.join(v.get('reasons') or ['unknown']))} ({cond_txt}). ΔT values and classes are "
                f"indicative only.</div>"
            )
        out.append(
            "<p>ΔT = defect maximum − median of the normal module pixels around it; normalised ΔT = "
            "ΔT × 1000 / irradiance (linear scaling to 1000 W/m²).</p>"
        )
    if doc.get("previous_flight"):
        p = doc["previous_flight"]
        out.append(
            f"<p>Compared with the previous inspection <b>{e(str(p.get('flight')))}</b> "
            f"({e(str(p.get('inspection_time')))}, {p.get('days_between')} days earlier): "
            + ", ".join(f"{e(k)}: {v}" for k, v in c.get("trend", {}).items())
            + ".</p>"
        )
    out.append("<h2>Map</h2>" + svg_map(ff))
    if doc.get("kind") == "pv-thermal":
        out.append(
            "<h2>ΔT</h2><img alt='ΔT per finding' src='data:image/png;base64,"
            f"{delta_t_png or _png(delta_t_figure(doc))}'>"
        )
    out.append(
        "<h2>Findings</h2><table><tr><th>ID</th><th>Crop</th><th>Class</th><th>Grade</th><th>Asset</th>"
        "<th>Location</th><th>Size</th><th>ΔT / norm.</th><th>Power loss</th><th>Trend</th><th>Evidence</th>"
        "<th>Review</th></tr>"
    )
    embedded = 0
    for f in doc["findings"]:
        crop = ff.crops.get(f["id"])
        if not crop:
            img = "—"
        elif embedded < MAX_HTML_CROPS:
            embedded += 1
            img = f"<img class='crop' alt='{e(f['id'])}' src='data:image/png;base64,{base64.b64encode(crop).decode()}'>"
        else:  # the file written beside the report (crops/<id>.png)
            img = f"<img class='crop' alt='{e(f['id'])}' loading='lazy' src='crops/{e(f['id'])}.png'>"
        loc = f["location"]
        loc_txt = (
            f"{loc['lat']:.7f}, {loc['lon']:.7f}" + (f", {loc['alt_m']:.1f} m" if loc.get("alt_m") else "")
            if loc["located"]
            else f"unlocated: {e(loc.get('reason', ''))}"
        )
        t = f.get("thermal") or {}
        dt_txt = "—"
        if t:
            dt_txt = (
                f"{t['delta_t_k']:.1f} K / {t['delta_t_norm_k']:.1f} K"
                if t.get("delta_t_k") is not None and t.get("delta_t_norm_k") is not None
                else f"{t['delta_t_k']:.1f} K"
                if t.get("delta_t_k") is not None
                else f"ungraded: {e(str(t.get('method')))}"
            )
            if t.get("validity") and not t["validity"]["valid"]:
                dt_txt += " ⚠ conditions invalid"
        tr = f.get("trend") or {}
        tr_txt = e(tr.get("status", "—"))
        if tr.get("growth"):
            tr_txt += "<br>" + ", ".join(
                f"{e(k)} {v['previous']}→{v['current']}" for k, v in tr["growth"].items()
            )
        if tr.get("time_to_next_category_days") is not None:
            tr_txt += f"<br>next category in ~{tr['time_to_next_category_days']:.0f} days (linear)"
        reasons = "<br>".join(e(r) for r in [*(f.get("reasons") or []), *_views_text(f)])
        size_txt = "—" if f.get("size_m") is None else f"{f['size_m']:.2f} m"
        loss_txt = "—" if f.get("power_loss_w") is None else f"{f['power_loss_w']:.0f} W"
        out.append(
            f"<tr><td>{e(f['id'])}</td><td>{img}</td><td>{e(f['display_name'])}<br><small>conf "
            f"{f['confidence']:.2f}</small></td><td>{_sev_badge(f['grade']['severity'], f['grade']['label'])}<br>"
            f"<small>{e(f['grade']['reason'])}</small></td><td>{e(_asset_text(f))}</td><td>{loc_txt}</td>"
            f"<td>{size_txt}</td><td>{dt_txt}</td>"
            f"<td>{loss_txt}<br><small>"
            f"{e(f['power_loss_reason'])}</small></td><td>{tr_txt}</td><td>{f['n_observations']} frame(s), best "
            f"{e(f['best']['image'])}<br><small>{reasons}</small></td><td>{_review_text(review, f['id'])}</td></tr>"
        )
    out.append("</table>")
    out.append(_suppressed_html(doc))
    if doc.get("resolved"):
        out.append("<h2>Resolved since the previous inspection</h2><ul>")
        for r in doc["resolved"]:
            a = r.get("asset") or {}
            where = a.get("module_id") or a.get("string_id") or a.get("turbine_id") or ""
            out.append(
                f"<li>{e(r['previous_id'])} {e(r['class'])} {e(str(where))} ({e(str(r.get('grade')))})</li>"
            )
        out.append("</ul>")
    if warnings:
        out.append(
            "<h2>Fault warnings</h2><ul>"
            + "".join(f"<li>{e(w['id'])}: {e(w['message'])}</li>" for w in warnings)
            + "</ul>"
        )
    if doc.get("notes"):
        out.append("<h2>Notes</h2><ul>" + "".join(f"<li>{e(n)}</li>" for n in doc["notes"]) + "</ul>")
    out.append(
        "<p class='sub'>Grades: IEC TS 62446-3 classes of abnormality (thermal), blade damage categories "
        "1–5 (wind), severity 1–3 (PV RGB); thresholds in findings/grading.py. Power loss is an estimate.</p>"
    )
    out.append("</body></html>")
    return "".join(out)


def _suppressed_html(doc: dict[str, Any]) -> str:
    """The audit table of the suppressed detections (empty string when none)."""
    sup = doc.get("suppressed") or []
    if not sup:
        return ""
    e = html.escape
    out = [
        f"<h2>Suppressed detections ({len(sup)})</h2><p>Detections that the physical checks rejected "
        "(findings/checks.py): they are not findings and are not counted, warned or exported to CSV/GeoJSON/KML. "
        "Listed here to be audited.</p><table><tr><th>ID</th><th>Class</th><th>Rule</th><th>Why</th>"
        "<th>Asset</th><th>Location</th><th>Evidence</th></tr>"
    ]
    for f in sup:
        sp = f.get("suppression") or {}
        loc = f["location"]
        loc_txt = f"{loc['lat']:.7f}, {loc['lon']:.7f}" if loc["located"] else "unlocated"
        out.append(
            f"<tr><td>{e(f['id'])}</td><td>{e(f['display_name'])}<br><small>conf {f['confidence']:.2f}</small>"
            f"</td><td>{e(str(sp.get('rule')))}</td><td>{e(str(sp.get('reason')))}</td>"
            f"<td>{e(_asset_text(f))}</td><td>{loc_txt}</td><td>{f['n_observations']} frame(s), best "
            f"{e(f['best']['image'])} {e(str(f['best']['xyxy']))}</td></tr>"
        )
    out.append("</table>")
    return "".join(out)


def _suppressed_lines(doc: dict[str, Any], width: int = 100) -> list[str]:
    """The PDF lines of the suppressed detections: id, class, rule, best frame, then the reason wrapped."""
    import textwrap

    lines: list[str] = []
    for f in doc.get("suppressed") or []:
        sp = f.get("suppression") or {}
        lines.append(f"{f['id']:<6}{f['class'][:20]:<21}{str(sp.get('rule'))[:22]:<23}{f['best']['image']}")
        lines += textwrap.wrap(
            str(sp.get("reason")), width, initial_indent="      ", subsequent_indent="      "
        )
    return lines


# --------------------------------------------------------------------------------------------- PDF
def _text_page(pdf: PdfPages, title: str, lines: list[str]) -> None:
    """A page of monospace lines, drawn as one text block (one artist, not one per line)."""
    fig = plt.figure(figsize=(8.27, 11.69))
    fig.text(0.06, 0.96, title, fontsize=14, weight="bold", va="top")
    # PDF core fonts (Courier, Helvetica: no glyph layout or embedding, ~20x faster for pages of text) when
    # every character has one in their cp1252 encoding; else the embedded DejaVu fonts
    core = all(_cp1252(t) for t in (title, *lines))
    if lines:
        fig.text(
            0.06,
            0.92,
            "\n".join(lines),
            fontsize=8,
            va="top",
            family="monospace",
            linespacing=1.75,
            weight="medium" if core else "normal",  # Courier's only weight is medium
        )
    with matplotlib.rc_context({"pdf.use14corefonts": core}):
        pdf.savefig(fig)
    plt.close(fig)


def _cp1252(text: str) -> bool:
    try:
        text.encode("cp1252")
    except UnicodeEncodeError:
        return False
    return True


def crop_sheet(crops: list[np.ndarray], cols: int = 3, rows: int = 4, cell: int = 160) -> np.ndarray:
    """(rows·(cell+pad), cols·(cell+pad), 3) uint8 RGB: the crops (each (h, w, 3) BGR, at most ``cell`` px)
    centred in a white grid, for one PDF page (one image instead of one axes per crop)."""
    pad = cell // 4
    sheet = np.full((rows * (cell + pad), cols * (cell + pad), 3), 255, np.uint8)
    for k, img in enumerate(crops[: rows * cols]):
        r, c = divmod(k, cols)
        h, w = min(img.shape[0], cell), min(img.shape[1], cell)
        y0 = r * (cell + pad) + pad + (cell - h) // 2
        x0 = c * (cell + pad) + pad // 2 + (cell - w) // 2
        sheet[y0 : y0 + h, x0 : x0 + w] = img[:h, :w, ::-1]
    return sheet


def _crop_pages(pdf: PdfPages, items: list[tuple[dict[str, Any], bytes]]) -> None:
    """Pages of :data:`CROPS_PER_PAGE` annotated crops with the finding's id, class and grade above each."""
    cols, rows = 3, CROPS_PER_PAGE // 3
    for k in range(0, len(items), CROPS_PER_PAGE):
        page = items[k : k + CROPS_PER_PAGE]
        decoded = [cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR) for _, png in page]
        cell = max([48, *(max(im.shape[:2]) for im in decoded if im is not None)])
        pad = cell // 4
        imgs = [im if im is not None else np.full((cell, cell, 3), 200, np.uint8) for im in decoded]
        sheet = crop_sheet(imgs, cols, rows, cell)
        fig = plt.figure(figsize=(8.27, 11.69))
        ax = fig.add_axes((0.04, 0.03, 0.92, 0.94))
        ax.imshow(sheet, interpolation="none")  # embedded as is in the PDF, not resampled
        ax.axis("off")
        captions = [f"{f['id']} {f['class']}\n{f['grade']['label']}" for f, _ in page]
        core = all(_cp1252(t) for t in captions)
        for j, caption in enumerate(captions):
            r, c = divmod(j, cols)
            ax.text(
                c * (cell + pad) + pad // 2 + cell / 2,
                r * (cell + pad) + pad - 3,
                caption,
                fontsize=7,
                ha="center",
                va="bottom",
                weight="medium" if core else "normal",  # the core Helvetica's regular weight is medium
            )
        with matplotlib.rc_context({"pdf.use14corefonts": core}):
            pdf.savefig(fig)
        plt.close(fig)


def render_pdf(
    ff: FlightFindings,
    path: Path,
    warnings: list[dict[str, Any]] | None = None,
    *,
    delta_t_fig: Any = None,
) -> None:
    """The PDF report; ``delta_t_fig``: the ΔT figure when already built (thermal; closed here)."""
    doc, c = ff.doc, ff.doc["counts"]
    with PdfPages(path) as pdf:
        lines = [
            f"site {doc['site']}  flight {doc['flight']}  kind {doc['kind']}",
            f"inspected {doc.get('inspection_time')}  generated {doc['generated']}",
            "",
            f"findings {c['findings']}  critical {c['critical']}  fault warnings {len(warnings or [])}"
            + (f"  suppressed {c['suppressed']} (listed at the end)" if c.get("suppressed") else ""),
            f"estimated power loss {c['power_loss_w'] / 1000:.2f} kW",
            "by severity: " + ", ".join(f"{k} {v}" for k, v in c["by_severity"].items()),
            "by grade: " + ", ".join(f"{k} {v}" for k, v in c.get("by_grade", {}).items()),
        ]
        if doc["kind"] == "pv-thermal":
            v = doc.get("validity") or {}
            lines += [
                "",
                "IEC TS 62446-3 conditions: "
                + ("met" if v.get("valid") else "NOT met: " + "; ".join(v.get("reasons") or [])),
            ]
            lines += [
                "conditions: " + ", ".join(f"{k}={val}" for k, val in (doc.get("conditions") or {}).items())
            ]
            lines += ["ΔT normalised to 1000 W/m² by linear scaling (ΔT × 1000 / irradiance)."]
        if c.get("trend"):
            lines += ["", "trend vs previous: " + ", ".join(f"{k} {v}" for k, v in c["trend"].items())]
        fig = plt.figure(figsize=(8.27, 11.69))
        fig.text(0.06, 0.96, "Inspection report", fontsize=14, weight="bold", va="top")
        for k, line in enumerate(lines):
            fig.text(0.06, 0.92 - 0.018 * k, line, fontsize=8, va="top", family="monospace")
        ax = fig.add_axes((0.1, 0.3, 0.8, 0.25))
        sevs = [*reversed(grading.SEVERITY_ORDER), "ungraded"]
        ax.bar(
            sevs, [c["by_severity"].get(sv, 0) for sv in sevs], color=[SEVERITY_COLOURS[sv] for sv in sevs]
        )
        ax.set_title("Findings by severity", fontsize=9)
        pdf.savefig(fig)
        plt.close(fig)
        pdf.savefig(map_figure(ff))
        plt.close("all")
        if doc["kind"] == "pv-thermal":
            pdf.savefig(delta_t_fig if delta_t_fig is not None else delta_t_figure(doc))
            plt.close("all")
        rows = []
        for f in doc["findings"]:
            t = f.get("thermal") or {}
            dt = "" if t.get("delta_t_k") is None else f"{t['delta_t_k']:.1f}K"
            rows.append(
                f"{f['id']:<6}{f['class'][:20]:<21}{f['grade']['label']:<12}{dt:<8}"
                f"{_asset_text(f)[:48]:<49}{(f.get('trend') or {}).get('status', '')}"
            )
        n = ROWS_PER_PAGE
        for k in range(0, max(len(rows), 1), n):
            _text_page(pdf, "Findings" + (f" ({k // n + 1})" if len(rows) > n else ""), rows[k : k + n])
        sup = _suppressed_lines(doc)
        for k in range(0, len(sup), n):
            _text_page(
                pdf,
                f"Suppressed detections ({len(doc['suppressed'])}, not findings)"
                + (f" ({k // n + 1})" if len(sup) > n else ""),
                sup[k : k + n],
            )
        crops = [(f, ff.crops[f["id"]]) for f in doc["findings"] if f["id"] in ff.crops]
        _crop_pages(pdf, crops[:MAX_PDF_CROPS])
        if len(crops) > MAX_PDF_CROPS:
            _text_page(
                pdf,
                "More crops",
                [
                    f"The PDF shows the crops of the {MAX_PDF_CROPS} most severe findings; the crops of the other",
                    f"{len(crops) - MAX_PDF_CROPS} are in report.html and in the crops/ folder.",
                ],
            )
        meta = pdf.infodict()
        meta["Title"] = f"skyinspect {doc['site']} / {doc['flight']}"
        meta["Creator"] = "skyinspect findings"


# --------------------------------------------------------------------------------------------- site summary
def site_summary(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """Every inspection of a site (findings documents), oldest first, with counts and trends."""
    docs = sorted(docs, key=lambda d: (d.get("inspection_time") or "", d.get("flight") or ""))
    return {
        "site": docs[-1]["site"] if docs else None,
        "inspections": [
            {
                "flight": d["flight"],
                "kind": d["kind"],
                "inspection_time": d.get("inspection_time"),
                "findings": d["counts"]["findings"],
                "critical": d["counts"]["critical"],
                "power_loss_w": d["counts"]["power_loss_w"],
                "by_severity": d["counts"]["by_severity"],
                "trend": d["counts"].get("trend", {}),
                "valid": (d.get("validity") or {}).get("valid") if d["kind"] == "pv-thermal" else None,
            }
            for d in docs
        ],
    }


def render_site_html(summary: dict[str, Any]) -> str:
    e = html.escape
    rows = "".join(
        f"<tr><td>{e(str(i['flight']))}</td><td>{e(i['kind'])}</td><td>{e(str(i['inspection_time']))}</td>"
        f"<td>{i['findings']}</td><td>{i['critical']}</td><td>{i['power_loss_w'] / 1000:.2f} kW</td>"
        f"<td>{e(', '.join(f'{k} {v}' for k, v in i['trend'].items()) or '—')}</td>"
        f"<td>{'—' if i['valid'] is None else ('yes' if i['valid'] else 'no')}</td></tr>"
        for i in summary["inspections"]
    )
    return (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>skyinspect site "
        f"{e(str(summary['site']))}</title><style>{CSS}</style></head><body><h1>Site {e(str(summary['site']))}"
        f"</h1><table><tr><th>Flight</th><th>Kind</th><th>Inspected</th><th>Findings</th><th>Critical</th>"
        f"<th>Power loss</th><th>Trend</th><th>IEC conditions met</th></tr>{rows}</table></body></html>"
    )


def _review_text(review: dict[str, dict[str, Any]] | None, finding_id: str) -> str:
    """The Review cell: status, and who decided when (pending when nobody reviewed the finding yet)."""
    rv = (review or {}).get(finding_id)
    if not rv or rv.get("status", "pending") == "pending":
        return "pending"
    e = html.escape
    text = f"<b>{e(str(rv['status']))}</b>"
    if rv.get("class_name"):
        text += f"<br><small>as {e(str(rv['class_name']))}</small>"
    if rv.get("reviewer"):
        text += f"<br><small>by {e(str(rv['reviewer']))} {e(str(rv.get('time') or ''))}</small>"
    return text


# --------------------------------------------------------------------------------------------- all
def write_reports(
    ff: FlightFindings,
    out_dir: str | Path,
    *,
    warnings: list[dict[str, Any]] | None = None,
    site_docs: list[dict[str, Any]] | None = None,
    review: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Path]:
    """Write every report of the module docstring into ``out_dir``; returns name → path.

    ``review`` maps finding id → the engineers' review status (``review.status.review_status``); the HTML and
    CSV show it per finding (``pending`` when absent).

    Raises:
        findings.schema.SchemaError: the findings document does not follow its schema.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    doc = validate_findings(ff.doc)
    paths: dict[str, Path] = {}
    paths["json"] = out / "findings.json"
    paths["json"].write_text(json.dumps(doc, indent=1, ensure_ascii=False), "utf-8")
    paths["schema"] = out / "findings.schema.json"
    shutil.copyfile(SCHEMA_PATH, paths["schema"])
    paths["csv"] = out / "findings.csv"
    with paths["csv"].open("w", newline="", encoding="utf-8") as fh:
        wr = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
        wr.writeheader()
        wr.writerows(csv_rows(doc, review))
    paths["geojson"] = out / "findings.geojson"
    paths["geojson"].write_text(json.dumps(geojson(doc), indent=1, ensure_ascii=False), "utf-8")
    paths["kml"] = out / "findings.kml"
    paths["kml"].write_text(kml(doc), "utf-8")
    crops_dir = out / "crops"
    if ff.crops:
        crops_dir.mkdir(exist_ok=True)
        for fid, png in ff.crops.items():
            (crops_dir / f"{fid}.png").write_bytes(png)
            paths[f"crop:{fid}"] = crops_dir / f"{fid}.png"
    dt_fig = dt_png = None
    if doc.get("kind") == "pv-thermal":  # one ΔT figure for both the HTML and the PDF
        dt_fig = delta_t_figure(doc)
        buf = io.BytesIO()
        dt_fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
        dt_png = base64.b64encode(buf.getvalue()).decode("ascii")
    paths["html"] = out / "report.html"
    paths["html"].write_text(render_html(ff, warnings, review, delta_t_png=dt_png), "utf-8")
    paths["pdf"] = out / "report.pdf"
    render_pdf(ff, paths["pdf"], warnings, delta_t_fig=dt_fig)
    if site_docs:
        summary = site_summary(site_docs)
        paths["site_json"] = out / "site_summary.json"
        paths["site_json"].write_text(json.dumps(summary, indent=1), "utf-8")
        paths["site_html"] = out / "site_summary.html"
        paths["site_html"].write_text(render_site_html(summary), "utf-8")
    return paths

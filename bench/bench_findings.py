"""Findings stage with many detections: seconds per stage for N = 500, 2000, 5000 detections on fixed flights.

Each case renders a fixed synthetic flight once (pv-thermal: 30 radiometric 640×512 frames; pv-rgb: 4 frames of
4000×3000; wind-rgb: 8 blade frames of 4000×3000), takes its ground-truth boxes and adds, with a fixed seed,
jittered copies of them (what a detector reports for the same defect) and random false positives of the same
classes until the flight holds N detections. A first inspection built from every other detection is the
previous one, so the trend stage runs too. Stages (seconds, one process, wall clock):

* ``georef``: observations — georeferencing, module of each box, ΔT from the radiometric frames (thermal);
* ``dedup``: merging observations into findings; ``assign``: each finding's module / string / turbine;
* ``grade``: the rest of each finding (grade, power loss, thermal summary); ``trend``; ``crops``;
* ``reports``: :func:`findings.reports.write_reports` (JSON, CSV, GeoJSON, KML, HTML, PDF, crops) into a folder.

The stages are timed by wrapping the stage functions, which the pre-speed-up code has too: set
``SKYINSPECT_BENCH_FINDINGS_BASELINE=<git revision>`` (e.g. ``f206eed``) to run the same cases, with that
revision's ``findings/`` package in a subprocess, and get the ratio (old seconds / new seconds); it runs for
N ≤ 2000 only (the old path takes minutes beyond; ``SKYINSPECT_BENCH_FINDINGS_BASELINE_MAX_N`` changes it).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

NAME = "findings"
REPO = Path(__file__).resolve().parent.parent

FLIGHTS: dict[str, dict[str, Any]] = {
    "pv-thermal": {"images": 30, "seed": 5, "defect_rate": 0.1},
    "pv-rgb": {"images": 4, "seed": 7, "defect_rate": 0.1},
    "wind-rgb": {"images": 8, "seed": 9, "defect_rate": 3.0},
}
QUICK_FLIGHTS: dict[str, dict[str, Any]] = {
    "pv-thermal": {"images": 6, "seed": 5, "defect_rate": 0.1},
    "pv-rgb": {"images": 2, "seed": 7, "defect_rate": 0.1, "image_size": (1000, 750), "gsd_cm": 2.0},
    "wind-rgb": {"images": 3, "seed": 9, "defect_rate": 3.0, "image_size": (1000, 750)},
}
CASES = [
    ("pv-thermal", 500),
    ("pv-thermal", 2000),
    ("pv-thermal", 5000),
    ("pv-rgb", 500),
    ("pv-rgb", 2000),
    ("wind-rgb", 500),
    ("wind-rgb", 2000),
]
QUICK_CASES = [("pv-thermal", 100), ("pv-thermal", 300), ("pv-rgb", 100), ("wind-rgb", 100)]
STAGES = ("georef", "dedup", "assign", "grade", "trend", "crops", "reports")
BASELINE_MAX_N = 2000


def render(kind: str, out: Path, quick: bool) -> Path:
    """Render the fixed flight of ``kind`` into ``out`` (once: reused when ``out/synth.json`` exists)."""
    from datasets.synth import generate_flight

    if not (out / "synth.json").exists():
        spec = dict((QUICK_FLIGHTS if quick else FLIGHTS)[kind])
        images, seed = spec.pop("images"), spec.pop("seed")
        generate_flight(kind, images, seed, out, progress=False, workers=2, **spec)
    return out


def many_detections(records: list[dict[str, Any]], n: int, seed: int = 0) -> list[dict[str, Any]]:
    """The detection records with detections added until there are ``n``: half jittered copies of a frame's
    boxes (lower confidence), half random false positives of the flight's classes (1–6 % of the frame)."""
    rng = np.random.default_rng(seed)
    recs = copy.deepcopy(records)
    classes = sorted({(d["class_id"], d["class_name"]) for r in recs for d in r["detections"]})
    if not classes:
        raise ValueError("the flight has no ground-truth boxes to multiply")
    total = sum(len(r["detections"]) for r in recs)
    while total < n:
        r = recs[int(rng.integers(len(recs)))]
        w, h = r["width"], r["height"]
        if r["detections"] and rng.random() < 0.5:
            d = r["detections"][int(rng.integers(len(r["detections"])))]
            x1, y1, x2, y2 = d["xyxy"]
            j = rng.normal(0, 0.05 * max(x2 - x1, y2 - y1, 4), 4)
            box = [
                float(np.clip(x1 + j[0], 0, w - 2)),
                float(np.clip(y1 + j[1], 0, h - 2)),
                float(np.clip(x2 + j[2], 2, w)),
                float(np.clip(y2 + j[3], 2, h)),
            ]
            if box[2] <= box[0] + 1 or box[3] <= box[1] + 1:
                continue
            new = dict(d, xyxy=box, confidence=float(rng.uniform(0.3, 0.9)))
        else:
            cid, name = classes[int(rng.integers(len(classes)))]
            bw, bh = rng.uniform(0.01, 0.06) * w, rng.uniform(0.01, 0.06) * h
            x, y = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
            new = {
                "xyxy": [float(x), float(y), float(x + bw), float(y + bh)],
                "confidence": float(rng.uniform(0.25, 0.6)),
                "class_id": cid,
                "class_name": name,
            }
        r["detections"].append(new)
        total += 1
    return recs


class StageTimer:
    """Wraps the findings stage functions (present in the old and the new code) and sums their wall time."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = dict.fromkeys(STAGES, 0.0)
        self._in_finding = False
        self._saved: list[tuple[Any, str, Any]] = []

    def _wrap(self, owner: Any, attr: str, stage: str) -> None:
        original = getattr(owner, attr)
        timer = self

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            inside = stage == "grade"
            if inside:
                timer._in_finding = True
            try:
                return original(*args, **kwargs)
            finally:
                if inside:
                    timer._in_finding = False
                timer.seconds[stage] += time.perf_counter() - start

        self._saved.append((owner, attr, original))
        setattr(owner, attr, wrapped)

    def __enter__(self) -> StageTimer:
        import findings.build
        import findings.crops
        import findings.layout
        import findings.trend

        self._wrap(findings.build, "_observations", "georef")
        self._wrap(findings.build, "_cluster", "dedup")
        self._wrap(findings.build, "_finding", "grade")
        self._wrap(findings.trend, "apply_trend", "trend")
        self._wrap(findings.crops, "make_crops", "crops")
        original = findings.layout.SiteLayout.locate_module
        timer = self

        def locate(layout: Any, *args: Any, **kwargs: Any) -> Any:
            if not timer._in_finding:
                return original(layout, *args, **kwargs)
            start = time.perf_counter()
            try:
                return original(layout, *args, **kwargs)
            finally:
                timer.seconds["assign"] += time.perf_counter() - start

        self._saved.append((findings.layout.SiteLayout, "locate_module", original))
        findings.layout.SiteLayout.locate_module = locate  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        for owner, attr, original in reversed(self._saved):
            setattr(owner, attr, original)
        self.seconds["grade"] -= self.seconds["assign"]


def measure(kind: str, n: int, flight_dir: Path) -> dict[str, Any]:
    """Build the findings of ``n`` detections on the rendered flight (with a previous inspection) and write the
    reports; returns seconds per stage, the total and the counts. Uses whichever ``findings`` is importable."""
    import cv2

    from findings.build import build_findings
    from findings.local import manifest_from_folder, truth_detections
    from findings.reports import write_reports
    from findings.thermal import folder_reader

    manifest = manifest_from_folder(flight_dir / "flight", "BENCH", "F2")
    sizes = {im["path"]: (im["width"], im["height"]) for im in manifest["images"]}
    dets = many_detections(truth_detections(flight_dir / "truth", kind, sizes), n)
    layout = json.loads((flight_dir / "site" / "layout.geojson").read_text("utf-8"))
    thermal = folder_reader(flight_dir / "flight") if kind == "pv-thermal" else None

    def image(rel: str) -> np.ndarray:
        return cv2.imread(str(flight_dir / "flight" / rel), cv2.IMREAD_COLOR)

    first = copy.deepcopy(dets)
    for rec in first:
        rec["detections"] = rec["detections"][::2]
    previous = build_findings(manifest, first, layout=layout, thermal_reader=thermal, image_reader=image).doc
    with StageTimer() as timer:
        start = time.perf_counter()
        ff = build_findings(
            manifest, dets, layout=layout, thermal_reader=thermal, image_reader=image, previous=previous
        )
        with tempfile.TemporaryDirectory(prefix="skyinspect-bench-findings-") as tmp:
            t0 = time.perf_counter()
            write_reports(ff, tmp, site_docs=[previous, ff.doc])
            timer.seconds["reports"] = time.perf_counter() - t0
        total = time.perf_counter() - start
    return {
        "kind": kind,
        "detections": sum(len(r["detections"]) for r in dets),
        "findings": len(ff.findings),
        "frames": len(dets),
        "stages": {k: round(v, 3) for k, v in timer.seconds.items()},
        "total": round(total, 3),
    }


def _baseline(revision: str, kind: str, n: int, flight_dir: Path, work: Path) -> dict[str, Any]:
    """:func:`measure` with ``findings/`` of git ``revision`` (everything else from this tree), in a subprocess."""
    old = work / f"baseline-{revision}"
    if not (old / "findings").exists():
        old.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", revision, "findings"], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(old), str(REPO)]))
    out = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--measure", kind, str(n), str(flight_dir)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        cwd=str(old),
    ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    if not result["findings_module"].startswith(str(old)):
        raise RuntimeError(f"the baseline run imported {result['findings_module']}, not {old}")
    return result


def run(quick: bool) -> dict:
    import findings

    revision = os.environ.get("SKYINSPECT_BENCH_FINDINGS_BASELINE")
    max_n = int(os.environ.get("SKYINSPECT_BENCH_FINDINGS_BASELINE_MAX_N", BASELINE_MAX_N))
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="skyinspect-bench-findings-") as tmp:
        work = Path(tmp)
        for kind, n in QUICK_CASES if quick else CASES:
            flight = render(kind, work / kind, quick)
            new = measure(kind, n, flight)
            row: dict[str, Any] = {
                "kind": kind,
                "detections": new["detections"],
                "frames": new["frames"],
                "findings": new["findings"],
                **{f"{k} s": v for k, v in new["stages"].items()},
                "total s": new["total"],
            }
            if revision and n <= max_n:
                old = _baseline(revision, kind, n, flight, work)
                if old["findings"] != new["findings"]:
                    notes.append(f"{kind} N={n}: the old path gave {old['findings']} findings, the new one "
                                 f"{new['findings']}")  # fmt: skip
                row[f"total s ({revision})"] = old["total"]
                row[f"reports s ({revision})"] = old["stages"]["reports"]
                row["speed-up"] = f"{old['total'] / max(new['total'], 1e-9):.1f}x"
            rows.append(row)
    notes.append(
        "one process, wall clock; detections = the flight's ground-truth boxes plus jittered copies and random "
        "false positives (fixed seed); a previous inspection (every other detection) drives the trend stage"
    )
    notes.append(f"findings package: {Path(findings.__file__).parent}")
    if revision:
        notes.append(f"speed-up = total of findings/ at {revision} (subprocess, same flights) / total now")
    else:
        notes.append("set SKYINSPECT_BENCH_FINDINGS_BASELINE=<git revision> to add the old path's totals")
    return {"title": "Findings with many detections: seconds per stage", "rows": rows, "notes": notes}


def _main() -> None:
    parser = argparse.ArgumentParser(description="one measurement (used for the baseline subprocess)")
    parser.add_argument("--measure", nargs=3, metavar=("KIND", "N", "FLIGHT_DIR"), required=True)
    args = parser.parse_args()
    import findings

    kind, n, flight = args.measure
    result = measure(kind, int(n), Path(flight))
    result["findings_module"] = str(Path(findings.__file__).resolve())
    print(json.dumps(result))


if __name__ == "__main__":
    _main()

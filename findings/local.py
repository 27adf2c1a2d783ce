"""Local helpers: a manifest for a flight folder on disk (no object store) and detections from synthetic truth.

:func:`manifest_from_folder` reads every image's metadata with :func:`ingest.metadata.probe_image` — the same
reader ingest uses — so a local run sees exactly the fields an ingested flight has. :func:`truth_detections`
turns a synthetic flight's ``truth/frames.json`` into detection records (confidence 1), which validates
georeferencing, de-duplication and grading independently of any model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from detection.taxonomy import by_name, domain
from ingest.manifest import CONDITIONS_FILE, SCHEMA_VERSION, decide_kind, parse_conditions
from ingest.metadata import Rejected, probe_image

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff"}


def manifest_from_folder(
    folder: str | Path, site: str = "local", flight: str = "local", kind: str = "auto"
) -> dict:
    """A manifest-shaped dict (ingest.manifest schema, without object keys) for the images under ``folder``."""
    root = Path(folder)
    images, rejected = [], []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES):
        rel = path.relative_to(root).as_posix()
        try:
            probe = probe_image(path.read_bytes(), rel, 10**9)
        except Rejected as exc:
            rejected.append({"path": rel, "reason": exc.reason, "detail": exc.detail})
            continue
        images.append({"key": None, "path": rel, "paths": [rel], **probe.fields, "warnings": probe.warnings})
    conditions = None
    side = root / CONDITIONS_FILE
    if side.exists():
        conditions = parse_conditions(side.read_bytes(), CONDITIONS_FILE)
    decided, how = decide_kind(images, kind)
    return {
        "schema_version": SCHEMA_VERSION,
        "site": site,
        "flight": flight,
        "kind": decided,
        "kind_decision": how,
        "counts": {"images": len(images), "rejected": len(rejected)},
        "conditions": conditions,
        "images": images,
        "rejected": rejected,
        "skipped": [],
    }


def truth_detections(
    truth_dir: str | Path, kind: str, sizes: dict[str, tuple[int, int]] | None = None
) -> list[dict]:
    """Detection records (the pipeline's input contract) from ``truth/frames.json`` of a synthetic flight."""
    dom = domain(kind)
    frames: dict[str, list[dict[str, Any]]] = json.loads((Path(truth_dir) / "frames.json").read_text("utf-8"))
    out = []
    for name, rows in sorted(frames.items()):
        w, h = (sizes or {}).get(name, (0, 0))
        out.append(
            {
                "relative_path": name,
                "image_key": name,
                "width": w,
                "height": h,
                "model": {"name": "ground-truth"},
                "detections": [
                    {
                        "xyxy": [float(v) for v in r["xyxy"]],
                        "confidence": 1.0,
                        "class_id": by_name(dom, r["class"]).id,
                        "class_name": r["class"],
                    }
                    for r in rows
                ],
            }
        )
    return out

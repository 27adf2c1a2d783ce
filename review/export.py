"""Reviewed decisions as YOLO training sets: ``reviews/{site}/{export id}/{domain}/`` (data.yaml, images, labels).

For every evidence frame of a site's reviewed findings:

* the image is the frame (RGB byte for byte; 16-bit thermal as 8-bit PNG through the default model window);
* its labels are the boxes of the *confirmed* findings seen in it (with the reviewed class; on a finding's best
  frame its reviewed box, on its other evidence frames the detector's box);
* a *rejected* finding's box is simply absent, so its frame teaches the model that this is background
  (a negative); a frame whose only findings were rejected is kept with an empty label file;
* a frame that also shows a finding nobody reviewed yet is left out (leaving that box unlabelled would teach a
  wrong negative).

One YOLO set per taxonomy domain (``data.yaml`` ``names`` are :func:`detection.taxonomy.class_names`), and an
``export.json`` summary at the export's root, written last.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import sqlalchemy as sa

from datasets.yolo import format_labels, write_data_yaml
from detection.radiometry import DEFAULT_WINDOW_C
from detection.taxonomy import TAXONOMY_VERSION, Domain, by_name, class_names
from objectstore import keys
from objectstore.client import ObjectStore
from review.db import findings, now_iso
from review.images import training_image

log = logging.getLogger(__name__)
SPLIT = "train"


@dataclass
class ExportResult:
    site: str
    export_id: str
    out: Path
    images: int = 0
    boxes: int = 0
    negatives: int = 0
    skipped_frames: list[str] = field(default_factory=list)
    domains: list[str] = field(default_factory=list)
    store_prefix: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "site": self.site,
            "export_id": self.export_id,
            "out": str(self.out),
            "images": self.images,
            "boxes": self.boxes,
            "negatives": self.negatives,
            "skipped_frames": self.skipped_frames,
            "domains": self.domains,
            "store_prefix": self.store_prefix,
        }


def new_export_id() -> str:
    """``YYYYmmddTHHMMSSZ-xxxxxx``: sortable by time, unique."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def _file_stem(flight: str, rel: str) -> str:
    return flight + "__" + str(PurePosixPath(rel).with_suffix("")).replace("/", "__")


def export_site(
    engine: sa.Engine,
    store: ObjectStore,
    site: str,
    out: Path,
    *,
    to_store: bool = False,
    export_id: str | None = None,
) -> ExportResult:
    """Write the YOLO sets of ``site``'s reviewed findings under ``out / export_id`` (and the store).

    Raises:
        objectstore.keys.InvalidKey: unsafe site or export id.
        ValueError: the site has no reviewed finding.
        review.images.ImageError, ObjectStoreError: a frame cannot be read.
    """
    export_id = export_id or new_export_id()
    prefix = keys.review_export_prefix(site, export_id)
    root = Path(out) / export_id
    result = ExportResult(site, export_id, root)
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(sa.select(findings).where(findings.c.site == site))]
    if not any(r["status"] != "pending" for r in rows):
        raise ValueError(f"site {site}: no reviewed finding to export (review some first)")

    # (domain, flight, relative path) -> [(row, evidence box)]
    frames: dict[tuple[str, str, str], list[tuple[dict[str, Any], list[float]]]] = defaultdict(list)
    for r in rows:
        for ev in r["doc"]["evidence"]:
            box = r["xyxy"] if ev["image"] == r["best_image"] else ev["xyxy"]
            frames[(r["domain"], r["flight"], ev["image"])].append((r, [float(v) for v in box]))

    per_finding: list[dict[str, Any]] = []
    for r in rows:
        per_finding.append(
            {
                k: r[k]
                for k in (
                    "flight",
                    "finding_id",
                    "status",
                    "orig_class",
                    "class_name",
                    "orig_xyxy",
                    "xyxy",
                    "severity",
                    "reviewer",
                    "reviewed_at",
                )
            }
        )
    for (dom, flight, rel), seen in sorted(frames.items()):
        statuses = {r["status"] for r, _ in seen}
        if "pending" in statuses:
            if statuses != {"pending"}:
                result.skipped_frames.append(f"{flight}/{rel}")
            continue
        set_dir = root / dom
        frame = seen[0][0]["frames"].get(rel) or {}
        data = store.get_bytes(frame.get("key") or keys.image_key(site, flight, rel))
        payload, suffix, width, height = training_image(data, rel)
        stem = _file_stem(flight, rel)
        (set_dir / "images" / SPLIT).mkdir(parents=True, exist_ok=True)
        (set_dir / "labels" / SPLIT).mkdir(parents=True, exist_ok=True)
        (set_dir / "images" / SPLIT / (stem + suffix)).write_bytes(payload)
        kept = [(r, box) for r, box in seen if r["status"] == "confirmed"]
        result.negatives += sum(1 for r, _ in seen if r["status"] == "rejected")
        xyxy = np.array([box for _, box in kept], dtype=np.float64).reshape(-1, 4)
        ids = np.array([by_name(dom, r["class_name"]).id for r, _ in kept], dtype=np.int64)
        (set_dir / "labels" / SPLIT / (stem + ".txt")).write_text(
            format_labels(xyxy, ids, width, height), "utf-8"
        )
        result.images += 1
        result.boxes += len(kept)
        if dom not in result.domains:
            result.domains.append(dom)

    for dom in result.domains:
        data_yaml: dict[str, Any] = {
            "path": ".",
            "train": f"images/{SPLIT}",
            "val": f"images/{SPLIT}",
            "names": class_names(dom),
            "domain": dom,
            "taxonomy_version": TAXONOMY_VERSION,
            "source": f"review export {export_id} of site {site}",
        }
        if dom == Domain.PV_THERMAL.value:
            data_yaml["thermal_window_c"] = [float(DEFAULT_WINDOW_C[0]), float(DEFAULT_WINDOW_C[1])]
        write_data_yaml(root / dom / "data.yaml", data_yaml)
    root.mkdir(parents=True, exist_ok=True)
    summary = {**result.to_dict(), "created": now_iso(), "findings": per_finding}
    summary["store_prefix"] = prefix if to_store else None
    (root / "export.json").write_text(json.dumps(summary, indent=1, default=str), "utf-8")
    if to_store:
        files = sorted(p for p in root.rglob("*") if p.is_file() and p.name != "export.json")
        for path in files:
            store.put_file(prefix + path.relative_to(root).as_posix(), path)
        store.put_file(prefix + "export.json", root / "export.json")  # last: the export is complete
        result.store_prefix = prefix
    log.info(
        "review export %s: %s",
        export_id,
        {k: v for k, v in result.to_dict().items() if k != "skipped_frames"},
    )
    return result

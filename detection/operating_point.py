"""A detection model's operating point: the confidence threshold its findings are built at.

Models' confidences differ (a model trained longer or on other data scores the same defects higher or lower), so
one fixed threshold serves them unequally. The operating point is chosen per model on a flight with known unique
defects (a synthetic render: ``synth.json`` + truth), never the flight that reports the model's accuracy:

- :func:`frame_detections` runs the ONNX model over the flight once, at the lowest threshold of the grid, the way
  the flight job does (reduced JPEG decode for whole frames; sliced frames at the training scale);
- :func:`filter_conf` keeps what a run at a higher threshold would keep (sliced frames' tiles merged after the
  cut: exactly what a run at that threshold gives);
- :func:`grid_scores` builds and scores the findings per threshold (``findings.build`` + ``findings.score``, as
  the flight job and ``skyinspect score``), :func:`pick_best` takes the best unique-defect F1;
- :func:`write_conf` stores the choice in the ONNX metadata as ``skyinspect.conf``: the default threshold of the
  flight job, ``skyinspect predict``, the acceptance tool and the on-site runtime.

Used by ``detection.default_models`` (the shipped models: the validation flight) and by the retraining job
(``pipelines.retraining``: each candidate on the fixed holdout flight).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from detection import taxonomy

logger = logging.getLogger(__name__)

CONF_GRID: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(1, 11))
"""Confidence thresholds tried for a model's operating point: 0.05, 0.10, … 0.50."""
OPERATING_POINT_METHOD = "findings-f1-on-validation-flight"


def frame_detections(detector: Any, flight: Path) -> list[tuple[str, tuple[int, int], str, Any]]:
    """Every frame of ``flight`` (a synthetic flight folder's ``flight/``) through ``detector`` the way
    :func:`detection.flight.detect_flight` runs an ingested flight (reduced JPEG decode for whole frames; frames
    more than ``DEFAULT_SLICE_FACTOR`` slicing tiles along a side sliced, tiles at the model's training scale) →
    ``(relative path, full (h, w), "whole" | "tiles", Detections)``. Sliced frames keep their tiles' detections
    UNMERGED, so :func:`filter_conf` gives, for any higher threshold, exactly what a run at that threshold gives:
    NMS never lets a lower-scoring box remove a higher-scoring one, so dropping boxes at or below a threshold
    before or after NMS (and before the tile merge) keeps the same boxes."""
    from detection.flight import DEFAULT_SLICE_FACTOR
    from detection.slicing import SlicedDetector
    from findings.local import IMAGE_SUFFIXES

    sliced = SlicedDetector(detector, batch_size=detector.batch_size)

    def whole(shape: tuple[int, int]) -> bool:
        return not (
            shape[0] > DEFAULT_SLICE_FACTOR * sliced.tile[0]
            or shape[1] > DEFAULT_SLICE_FACTOR * sliced.tile[1]
        )

    out = []
    for path in sorted(q for q in flight.rglob("*") if q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES):
        rel = path.relative_to(flight).as_posix()
        pixels, full = detector.decode_frame(path.read_bytes(), rel, whole)
        shape = full or (int(pixels.shape[0]), int(pixels.shape[1]))
        if whole(shape):
            dets = detector.predict_prepared([detector.prepare_one(pixels, full)])[0]
            out.append((rel, shape, "whole", dets))
        else:
            out.append((rel, shape, "tiles", sliced.predict_tiles(pixels)))
    return out


def filter_conf(
    frames: list[tuple[str, tuple[int, int], str, Any]],
    names: dict[int, str],
    conf: float,
    model: dict[str, Any],
    merge: Any = None,
) -> list[dict[str, Any]]:
    """The detection records (``detections.jsonl`` lines) a run at ``conf`` gives, from :func:`frame_detections`
    computed at a lower threshold: boxes scoring above ``conf`` kept; sliced frames' tiles then merged by ``merge``
    (``SlicedDetector.merge_detections`` of the detector that sliced them)."""
    from detection.detections import Detections

    records = []
    for rel, (h, w), mode, dets in frames:
        kept = dets[dets.confidence > conf]
        if mode == "tiles":
            if merge is None:
                raise ValueError(f"{rel}: sliced frame detections need the slicer's merge")
            kept = merge(kept)
        plain = Detections(kept.xyxy, kept.confidence, kept.class_id)
        records.append({"relative_path": rel, "image_key": rel, "width": w, "height": h, "model": model,
                        "detections": plain.to_records(names), "error": None})  # fmt: skip
    return records


def findings_scores(records: list[dict[str, Any]], flight_dir: Path, domain: str) -> dict[str, Any]:
    """Findings of a synthetic flight (``flight_dir``: its render folder with ``flight/``, ``site/``, ``truth/``)
    from detection ``records``, built as the flight job builds them (layout, radiometric and image checks; no
    crops) and scored against its unique defects (:func:`findings.score.score`, as ``skyinspect score``)."""
    import cv2

    from findings.build import BuildOptions, build_findings
    from findings.local import manifest_from_folder
    from findings.score import score
    from findings.thermal import folder_reader

    frames = flight_dir / "flight"
    manifest = manifest_from_folder(frames, "validation", flight_dir.name, kind=domain)
    layout_file = flight_dir / "site" / "layout.geojson"
    layout = json.loads(layout_file.read_text("utf-8")) if layout_file.is_file() else None
    built = build_findings(
        manifest,
        records,
        layout=layout,
        thermal_reader=folder_reader(frames) if domain == taxonomy.Domain.PV_THERMAL.value else None,
        image_reader=lambda rel: cv2.imread(str(frames / rel), cv2.IMREAD_COLOR),
        options=BuildOptions(crops=False),
    )
    return score(built.doc, flight_dir)


def grid_scores(
    frames: list[tuple[str, tuple[int, int], str, Any]],
    names: dict[int, str],
    val_flight: Path,
    domain: str,
    grid: tuple[float, ...] = CONF_GRID,
    model: dict[str, Any] | None = None,
    merge: Any = None,
) -> list[dict[str, Any]]:
    """One row per threshold of ``grid`` (ascending): the findings' unique-defect recall, precision and F1 on
    ``val_flight`` when ``frames`` (:func:`frame_detections`, at a threshold below the grid's) are kept above it."""
    rows = []
    for conf in sorted(grid):
        records = filter_conf(frames, names, conf, model or {"domain": domain}, merge)
        s = findings_scores(records, val_flight, domain)
        r, pr = float(s["recall"]), float(s["precision"])
        f1 = 2 * r * pr / (r + pr) if r + pr else 0.0
        rows.append({"conf": conf, "recall": round(r, 4), "precision": round(pr, 4), "f1": round(f1, 4),
                     "findings": s["findings"], "matched": s["matched"], "truth_defects": s["truth_defects"],
                     "duplicate_rate": round(float(s["duplicate_rate"]), 4)})  # fmt: skip
        logger.info("%s conf %.2f: recall %.3f precision %.3f F1 %.3f (%d findings)", domain, conf, r, pr, f1,
                    s["findings"])  # fmt: skip
    return rows


def pick_best(grid: list[dict[str, Any]]) -> dict[str, Any]:
    """The grid row with the highest F1; ties (common on a small flight: a plateau of thresholds giving the same
    findings) go to the middle of the tied values (lower middle for an even count), away from both edges."""
    best = max(r["f1"] for r in grid)
    tied = [r for r in grid if r["f1"] == best]
    return tied[(len(tied) - 1) // 2]


def choose_operating_point(onnx_file: Path, val_flight: Path, domain: str,
                           grid: tuple[float, ...] = CONF_GRID) -> dict[str, Any]:  # fmt: skip
    """The model's operating point on its validation flight ``val_flight`` (a synthetic render folder): for every
    threshold of ``grid``, the findings-level unique-defect recall, precision and F1 (what ``skyinspect score``
    measures) → ``{"conf", "method", "recall", "precision", "f1", "grid": [{"conf", "recall", "precision",
    "f1", "findings", "truth_defects"}]}``. The frames are detected once, at the lowest threshold, and filtered
    per grid value (:func:`filter_conf`: the same detections a run at that threshold gives).

    Raises:
        ValueError: an empty grid or a threshold outside (0, 1).
    """
    from detection.inference import Detector
    from detection.slicing import SlicedDetector

    if not grid or not all(0 < c < 1 for c in grid):
        raise ValueError(f"operating point grid must be thresholds in (0, 1), got {grid}")
    detector = Detector.from_onnx(onnx_file, conf=min(grid))
    frames = frame_detections(detector, val_flight / "flight")
    model = {"domain": domain, "version": detector.meta.model_version, "sha256": None}
    merge = SlicedDetector(detector, batch_size=detector.batch_size).merge_detections
    rows = grid_scores(frames, detector.names, val_flight, domain, grid, model, merge)
    best = pick_best(rows)
    return {
        "conf": best["conf"],
        "method": OPERATING_POINT_METHOD,
        "description": "the grid threshold with the best unique-defect F1 of the findings (findings.build + "
        "findings.score, as the flight job and skyinspect score) on the validation flight; ties: the middle one",
        "recall": best["recall"],
        "precision": best["precision"],
        "f1": best["f1"],
        "frames": len(frames),
        "grid": rows,
    }


def write_conf(onnx_file: Path, conf: float) -> None:
    """Write ``skyinspect.conf`` (the operating point) into ``onnx_file``'s metadata, in place (atomic replace).

    Raises:
        ModelMetadataError: ``conf`` is not in (0, 1) (checked by reading the written file back).
    """
    import onnx

    from detection.model_meta import PREFIX, ModelMeta, parse_conf
    from onnx_export.graph import set_metadata

    value = parse_conf(conf, f"{onnx_file} (operating point)")
    model = onnx.load(str(onnx_file))
    set_metadata(model, {PREFIX + "conf": json.dumps(value)})
    tmp = onnx_file.with_name(onnx_file.name + ".tmp")
    onnx.save(model, str(tmp))
    tmp.replace(onnx_file)
    if ModelMeta.from_onnx(onnx_file).conf != value:
        raise RuntimeError(f"{onnx_file}: skyinspect.conf did not read back as {value}")

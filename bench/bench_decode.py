"""Reduced-scale JPEG decode: one full-frame pass on held-out 4000×3000 flights, full decode vs the scale the model
needs (``Detector.decode_frame``), same model, same frames, one run.

For pv-rgb and wind-rgb: the shipped weights exported at a 640×640 input (a full-frame pass, what a site without
slicing would run), every held-out frame (flights 2100 / 2200) decoded (a) whole and letterboxed, (b) at the divisor
``decode_frame`` picks (1/4 here: 1000×750) and letterboxed, boxes mapped back to the full frame. Reported: mAP50
(conf 0.001, IoU 0.6, :class:`detection.metrics.MetricsAccumulator`) and the mean decode + detect time per frame.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

NAME = "decode"
DOMAINS = (("pv-rgb", 2100), ("wind-rgb", 2200))


def _frames(domain: str, seed: int, limit: int | None) -> tuple[Path, list[Path]]:
    from skyinspect.config import Settings

    flight = Path(Settings().data_dir) / "default-models" / domain / "flights" / f"{domain}-{seed}"
    frames = sorted(p for p in (flight / "flight").glob("*") if p.suffix.lower() in (".jpg", ".jpeg"))[:limit]
    if not frames:
        raise RuntimeError(
            f"{flight}: no held-out frames; run `python -m detection.default_models --domain {domain}`"
        )
    return flight, frames


def run(quick: bool = False) -> dict[str, Any]:
    import tempfile

    from detection import taxonomy
    from detection.default_models import export_onnx
    from detection.evaluate import Sample, ground_truth
    from detection.images import decode_image
    from detection.inference import Detector
    from detection.metrics import MetricsAccumulator

    root = Path(__file__).resolve().parents[1]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-decode-") as tmp:
        for domain, seed in DOMAINS:
            flight, frames = _frames(domain, seed, 2 if quick else None)
            onnx = export_onnx(root / "models" / domain / "best.pt", Path(tmp), (640, 640))
            det = Detector.from_onnx(onnx, conf=0.001, iou=0.6)
            names = taxonomy.class_names(domain)
            for mode in ("full decode", "reduced decode"):
                acc, seconds, sizes = MetricsAccumulator(names), 0.0, set()
                for p in frames:
                    data = p.read_bytes()
                    t0 = time.perf_counter()
                    if mode == "full decode":
                        img = decode_image(data, p)
                        dets, (h, w) = det.predict(img), img.shape[:2]
                    else:
                        img, full = det.decode_frame(data, p)
                        dets = det.predict_prepared([det.prepare_one(img, full)])[0]
                        h, w = full or img.shape[:2]
                    seconds += time.perf_counter() - t0
                    sizes.add(f"{img.shape[1]}×{img.shape[0]}")
                    gt, cls = ground_truth(
                        Sample(p, flight / "truth" / "labels" / f"{p.stem}.txt"), w, h, len(names)
                    )
                    acc.add(dets.xyxy, dets.confidence, dets.class_id, gt, cls)
                value = acc.compute().map50
                rows.append({"domain": domain, "frames": len(frames), "method": mode, "decoded": ", ".join(sorted(sizes)),
                             "map50": None if value is None else round(float(value), 4),
                             "ms_per_frame": round(1000 * seconds / len(frames), 1)})  # fmt: skip
    return {
        "title": "Reduced-scale JPEG decode: a full-frame pass at 640 on held-out 4000×3000 frames",
        "rows": rows,
        "notes": [
            "shipped weights exported at 640×640 (a full-frame pass); same frames and model for both rows of a domain",
            "ms_per_frame: decode + letterbox + model + NMS, one thread of Python, onnxruntime on every core",
        ],
    }

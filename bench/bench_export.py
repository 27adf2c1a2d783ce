"""Exported precisions on this CPU: PyTorch vs ONNX FP32 vs FP16 vs INT8 — latency, throughput, mAP50.

Model: the tests' tiny trained YOLO11n (``tests/detection/fixtures_training.py``: shapes set, pv-rgb classes,
trained offline on CPU), exported by :mod:`onnx_export.export` at ``IMGSZ`` (the same weights at a production
input size, so the compute is a real yolo11n's; quick mode uses 320). INT8 is calibrated on the set's train split.

Latency: the same prepared (1, 3, H, W) tensors (``Detector.prepare``) go to every model, interleaved image by
image so machine noise hits all alike; only the backend call is timed (p50 / p95 ms, images/s = 1 / mean).
mAP50: :func:`onnx_export.verify.verify` over the validation split through the full inference core, so the ONNX
numbers and their deltas are exactly what ``skyinspect export verify`` gates.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

NAME = "export"
IMGSZ = 640
QUICK_IMGSZ = 320


def _tiny_model(work: Path) -> Any:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "detection"))
    os.environ.setdefault("YOLO_CONFIG_DIR", str(work / "ultralytics"))
    from fixtures_training import train_tiny_model

    return train_tiny_model(work / "tiny")


def run(quick: bool) -> dict[str, Any]:
    from detection.images import read_image
    from detection.inference import Detector
    from detection.torch_backend import TorchBackend
    from onnx_export.export import ExportConfig, export_model
    from onnx_export.source import resolve
    from onnx_export.verify import verify

    imgsz = QUICK_IMGSZ if quick else IMGSZ
    rounds = 3 if quick else 10
    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        work = Path(tmp)
        tiny = _tiny_model(work)
        source = resolve(str(tiny.weights))
        result = export_model(
            source,
            ExportConfig(out=work / "out", imgsz=(imgsz, imgsz), half=True, int8=True, calib=tiny.data_yaml,
                         calib_count=24),
        )  # fmt: skip
        files = {v.precision: v.path for v in result.variants}
        allops = export_model(
            source,
            ExportConfig(out=work / "allops", imgsz=(imgsz, imgsz), int8=True, calib=tiny.data_yaml, calib_count=24,
                         int8_ops="all"),
        )  # fmt: skip
        files["int8-allops"] = allops.variants[-1].path
        images = sorted((tiny.data_yaml.parent / "images" / "val").glob("*.png"))
        torch_backend = TorchBackend(tiny.weights)
        dets = {p: Detector.from_onnx(f, providers=["CPUExecutionProvider"]) for p, f in files.items()}
        tensors = [dets["fp32"].prepare([read_image(p)])[0] for p in images]
        runners = {"pytorch": torch_backend.run, **{f"onnx-{p}": d.backend.run for p, d in dets.items()}}
        for fn in runners.values():  # warm-up
            fn(tensors[0])
        times: dict[str, list[float]] = {k: [] for k in runners}
        for _ in range(rounds):
            for x in tensors:
                for name, fn in runners.items():
                    t = time.perf_counter()
                    fn(x)
                    times[name].append(time.perf_counter() - t)
        order = ("fp32", "fp16", "int8", "int8-allops")
        report = verify(
            tiny.weights, [files[p] for p in order], tiny.data_yaml, match_conf=0.05, opencv=False
        )
        maps = {
            "pytorch": report.torch_map50,
            **{f"onnx-{p}": v.map50 for p, v in zip(order, report.variants, strict=True)},
        }
        deltas = {f"onnx-{p}": v.delta_points for p, v in zip(order, report.variants, strict=True)}
        sizes = {f"onnx-{p}": f.stat().st_size / 1e6 for p, f in files.items()}
    mean = {k: float(np.mean(v)) for k, v in times.items()}
    rows = []
    for name, t in times.items():
        ms = np.asarray(t) * 1000
        rows.append({
            "model": name,
            "imgsz": imgsz,
            "p50_ms": round(float(np.percentile(ms, 50)), 2),
            "p95_ms": round(float(np.percentile(ms, 95)), 2),
            "img_per_s": round(1.0 / mean[name], 1),
            "speed_vs_fp32": round(mean["onnx-fp32"] / mean[name], 2),
            "mAP50": round(maps[name], 4),
            "delta_pts": round(deltas.get(name, 0.0), 2),
            "size_MB": round(sizes.get(name, 0.0), 2) or "-",
        })  # fmt: skip
    speedup = mean["onnx-fp32"] / mean["onnx-int8"]
    int8_ok = speedup >= 1.5 and abs(deltas["onnx-int8"]) <= 2.0
    notes = [
        f"{len(images)} validation images x {rounds} rounds, batch 1, interleaved; {os.cpu_count()} CPUs; "
        "only the backend call is timed.",
        f"INT8 vs FP32 on this CPU: {speedup:.2f}x, mAP50 {deltas['onnx-int8']:+.2f} points -> "
        + (
            "recommend INT8 for CPU sites."
            if int8_ok
            else "do NOT recommend INT8 for CPU (aim: >= 1.5x at <= 2 points)."
        ),
        "onnx-int8 quantizes convolutions only (the default, --int8-ops conv); onnx-int8-allops every operator "
        "onnxruntime can (--int8-ops all). Both keep the stem conv and the head's last convs + decode in float.",
        "FP16 on a CPU runs through casts (onnxruntime has few FP16 CPU kernels): it is for GPUs/Jetson, not CPUs.",
        "The model is the tests' tiny 30-epoch model on a 12-image validation split: mAP deltas are noisy; "
        "re-run on a production model before deciding.",
    ]
    return {"title": f"Export precisions on CPU (yolo11n, {imgsz}x{imgsz})", "rows": rows, "notes": notes}

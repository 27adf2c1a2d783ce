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


def _export_all(source: Any, tiny: Any, out: Path, imgsz: int, calib_count: int) -> dict[str, Path]:
    """fp32 / fp16 / int8 (s8, conv only: the default) / int8 (s8, all ops) / int8 (u8, conv only) files."""
    from onnx_export.export import ExportConfig, export_model

    size = (imgsz, imgsz)
    main = export_model(source, ExportConfig(out=out / "main", imgsz=size, half=True, int8=True,
                                             calib=tiny.data_yaml, calib_count=calib_count))  # fmt: skip
    allops = export_model(source, ExportConfig(out=out / "allops", imgsz=size, int8=True, calib=tiny.data_yaml,
                                               calib_count=calib_count, int8_ops="all"))  # fmt: skip
    u8 = export_model(source, ExportConfig(out=out / "u8", imgsz=size, int8=True, calib=tiny.data_yaml,
                                           calib_count=calib_count, int8_activations="u8"))  # fmt: skip
    files = {v.precision: v.path for v in main.variants}
    files["int8-allops"] = allops.variants[-1].path
    files["int8-u8"] = u8.variants[-1].path
    return files


def run(quick: bool) -> dict[str, Any]:
    from detection.images import read_image
    from detection.inference import Detector
    from detection.torch_backend import TorchBackend
    from onnx_export.source import resolve
    from onnx_export.verify import verify

    imgsz = QUICK_IMGSZ if quick else IMGSZ
    rounds = 3 if quick else 10
    order = ("fp32", "fp16", "int8", "int8-allops", "int8-u8")
    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        work = Path(tmp)
        tiny = _tiny_model(work)
        source = resolve(str(tiny.weights))
        # accuracy at the size the model was trained for (its objects' scale), speed at a production size
        native = _export_all(source, tiny, work / "native", source.imgsz[0], calib_count=24)
        report = verify(
            tiny.weights, [native[p] for p in order], tiny.data_yaml, match_conf=0.05, opencv=False
        )
        maps = {"pytorch": report.torch_map50}
        maps.update({f"onnx-{p}": v.map50 for p, v in zip(order, report.variants, strict=True)})
        deltas = {f"onnx-{p}": v.delta_points for p, v in zip(order, report.variants, strict=True)}
        files = _export_all(source, tiny, work / "speed", imgsz, calib_count=8)
        sizes = {f"onnx-{p}": f.stat().st_size / 1e6 for p, f in files.items()}
        images = sorted((tiny.data_yaml.parent / "images" / "val").glob("*.png"))
        torch_backend = TorchBackend(tiny.weights)
        dets = {p: Detector.from_onnx(files[p], providers=["CPUExecutionProvider"]) for p in order}
        tensors = [dets["fp32"].prepare([read_image(p)])[0] for p in images]
        runners = {"pytorch": torch_backend.run, **{f"onnx-{p}": dets[p].backend.run for p in order}}
        for fn in runners.values():  # warm-up
            fn(tensors[0])
        times: dict[str, list[float]] = {k: [] for k in runners}
        for _ in range(rounds):
            for x in tensors:
                for name, fn in runners.items():
                    t = time.perf_counter()
                    fn(x)
                    times[name].append(time.perf_counter() - t)
    mean = {k: float(np.mean(v)) for k, v in times.items()}
    rows = []
    for name, t in times.items():
        ms = np.asarray(t) * 1000
        rows.append({
            "model": name,
            "latency_imgsz": imgsz,
            "p50_ms": round(float(np.percentile(ms, 50)), 2),
            "p95_ms": round(float(np.percentile(ms, 95)), 2),
            "img_per_s": round(1.0 / mean[name], 2),
            "speed_vs_fp32": round(mean["onnx-fp32"] / mean[name], 2),
            f"mAP50@{source.imgsz[0]}": round(maps[name], 4),
            "delta_pts": round(deltas.get(name, 0.0), 2),
            "size_MB": round(sizes.get(name, 0.0), 2) or "-",
        })  # fmt: skip
    best = max(("onnx-int8", "onnx-int8-allops", "onnx-int8-u8"), key=lambda k: mean["onnx-fp32"] / mean[k])
    speedup = mean["onnx-fp32"] / mean[best]
    int8_ok = speedup >= 1.5 and abs(deltas[best]) <= 2.0
    notes = [
        f"Latency: {len(images)} validation images x {rounds} rounds at {imgsz}x{imgsz}, batch 1, interleaved; "
        f"{os.cpu_count()} CPUs (shared with other jobs: absolute times are inflated, ratios are what counts); "
        "only the backend call is timed.",
        f"mAP50: the {len(images)}-image validation split at the training size {source.imgsz[0]} (the tiny model "
        "detects nothing when its 128 px objects are blown up to 640), full inference core, vs PyTorch.",
        f"Fastest INT8 ({best}) vs FP32 on this CPU: {speedup:.2f}x, mAP50 {deltas[best]:+.2f} points -> "
        + (
            "recommend INT8 for CPU sites."
            if int8_ok
            else "do NOT recommend INT8 for CPU (aim: >= 1.5x at <= 2 points)."
        ),
        "onnx-int8: symmetric s8 activations, convolutions only (the defaults; TensorRT-ready); onnx-int8-allops: "
        "s8, every operator onnxruntime can quantize (--int8-ops all); onnx-int8-u8: asymmetric uint8 activations "
        "(--int8-activations u8, onnxruntime's fast path on x86 without VNNI). All keep the stem conv and the "
        "head's last convs + decode in float. This CPU has AVX2 but no VNNI.",
        "FP16 on a CPU runs through casts (onnxruntime has few FP16 CPU kernels): it is for GPUs/Jetson, not CPUs.",
        "The model is the tests' tiny 30-epoch model on a 12-image validation split: mAP deltas are noisy; "
        "re-run on a production model before deciding.",
    ]
    return {
        "title": f"Export precisions on CPU (yolo11n; latency {imgsz}x{imgsz})",
        "rows": rows,
        "notes": notes,
    }

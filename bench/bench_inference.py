"""Inference core vs ultralytics (PyTorch predict, ONNX predict) vs a bare onnxruntime session.

Same model (YOLO11n built from its architecture yaml, 640×640, untrained but *calibrated* so it outputs boxes
with spread scores — see below), same images, one run, methods interleaved image by image so machine noise hits
all of them alike. Per method and frame size: images/s, p50/p95 latency, and the core's speed relative to each.

- ``core``: ``Detector.from_onnx(...).predict(frame)`` — read nothing from disk, full pre- and post-processing.
- ``ultralytics-torch``: ``YOLO.predict(frame, rect=False)`` on the in-memory PyTorch model (``rect=False`` so it
  letterboxes to the same 640×640 input as the ONNX paths; its default ``rect=True`` would pad less).
- ``ultralytics-onnx``: ``YOLO("model.onnx").predict(frame)`` — ultralytics' own onnxruntime path.
- ``bare-ort``: ``session.run`` on an already prepared tensor: the model alone, no pre/post-processing (a floor).
- ``core-sliced``: ``SlicedDetector`` (640 tiles, 20 % overlap, batches of 8) on the large frames — a different
  amount of work (many tiles), reported for scale, not compared.

Calibration: a freshly initialised YOLO11 outputs one constant score (activations vanish), so NMS would have
nothing to do. One train-mode forward pass with BatchNorm momentum 1 over letterboxed synthetic frames sets the
running statistics, and the class convolution is scaled so ~100 boxes pass conf=0.25 — a realistic decode load.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench._support import calibrate_untrained

NAME = "inference"
IMGSZ = 640
CONF, IOU = 0.25, 0.45


def _frame(h: int, w: int, seed: int) -> np.ndarray:
    import cv2

    rng = np.random.default_rng(seed)
    img = np.empty((h, w, 3), np.uint8)
    img[:] = np.linspace(40, 200, w, dtype=np.uint8)[None, :, None]
    noise = rng.integers(0, 24, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
    img += cv2.resize(noise, (w, h), interpolation=cv2.INTER_LINEAR)
    for _ in range(20):
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        s = int(rng.integers(max(4, min(h, w) // 60), max(5, min(h, w) // 5)))
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        cv2.rectangle(img, (x, y), (x + s, int(y + s * rng.uniform(0.2, 3))), colour, -1)
    return img


def _calibrated_model(workdir: Path) -> tuple[Any, Path]:
    """(in-memory ultralytics YOLO, exported ONNX path) — see the module docstring."""
    from detection.offline import ensure_offline

    ensure_offline(config_dir=workdir / "ultralytics")
    import torch
    from ultralytics import YOLO

    from detection.preprocess import letterbox

    torch.manual_seed(0)
    model = YOLO("yolo11n.yaml")  # architecture only: nothing is downloaded
    net = model.model
    shapes = [(512, 640), (3000, 4000), (640, 640), (1080, 1920)] * 2
    frames = [letterbox(_frame(h, w, 100 + i), (IMGSZ, IMGSZ))[0] for i, (h, w) in enumerate(shapes)]
    batch = np.ascontiguousarray(np.stack(frames)[..., ::-1].transpose(0, 3, 1, 2), dtype=np.float32) / 255.0
    calibrate_untrained(net, batch)
    with contextlib.chdir(workdir):
        out = Path(model.export(format="onnx", imgsz=IMGSZ, simplify=False, verbose=False)).resolve()
    path = workdir / "yolo11n-640.onnx"
    shutil.move(out, path)
    return model, path


def _stats(ms: list[float]) -> dict[str, float]:
    arr = np.asarray(ms)
    return {
        "images_per_s": round(1000.0 / float(arr.mean()), 2),
        "p50_ms": round(float(np.percentile(arr, 50)), 1),
        "p95_ms": round(float(np.percentile(arr, 95)), 1),
    }


def run(quick: bool = False) -> dict:
    """Run the comparison; ``quick``: 5 small frames and 1 large one instead of 20 and 3."""
    import onnxruntime as ort
    import torch
    from ultralytics import YOLO

    from detection.inference import Detector
    from detection.preprocess import letterbox, to_tensor
    from detection.slicing import SlicedDetector

    threads = os.cpu_count() or 1
    torch.set_num_threads(threads)
    n_small, n_large = (5, 1) if quick else (20, 3)
    groups = {
        "640x512": [_frame(512, 640, i) for i in range(n_small)],
        "4000x3000": [_frame(3000, 4000, 50 + i) for i in range(n_large)],
    }
    with tempfile.TemporaryDirectory(prefix="bench-inference-") as tmp:
        yolo, onnx_path = _calibrated_model(Path(tmp))
        core = Detector.from_onnx(onnx_path, conf=CONF, iou=IOU, intra_op_threads=threads)
        sliced = SlicedDetector(core, tile=IMGSZ, overlap=0.2, batch_size=8)
        ultra_onnx = YOLO(str(onnx_path), task="detect")
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = threads
        bare = ort.InferenceSession(str(onnx_path), sess_options=opts, providers=["CPUExecutionProvider"])
        bare_in = bare.get_inputs()[0].name
        kw = {"imgsz": IMGSZ, "conf": CONF, "iou": IOU, "verbose": False}

        methods = {
            "core": lambda img, x: core.predict(img),
            "ultralytics-torch": lambda img, x: yolo.predict(img, rect=False, **kw),
            "ultralytics-onnx": lambda img, x: ultra_onnx.predict(img, **kw),
            "bare-ort": lambda img, x: bare.run(None, {bare_in: x}),
        }
        warm = groups["640x512"][0]
        warm_x = to_tensor(letterbox(warm, (IMGSZ, IMGSZ))[0][None])
        for fn in methods.values():  # warm-up: sessions, predictor set-up, torch fusing
            fn(warm, warm_x)
            fn(warm, warm_x)

        times: dict[tuple[str, str], list[float]] = {}
        counts: dict[tuple[str, str], list[int]] = {}
        for group, frames in groups.items():
            for i, img in enumerate(frames):
                x = to_tensor(letterbox(img, (IMGSZ, IMGSZ))[0][None])
                order = list(methods)
                order = order[i % len(order) :] + order[: i % len(order)]  # rotate who goes first
                for name in order:
                    t0 = time.perf_counter()
                    out = methods[name](img, x)
                    times.setdefault((name, group), []).append((time.perf_counter() - t0) * 1000)
                    if name == "core":
                        counts.setdefault((name, group), []).append(len(out))
                    elif name.startswith("ultralytics"):
                        counts.setdefault((name, group), []).append(len(out[0].boxes))
                if group == "4000x3000":
                    t0 = time.perf_counter()
                    found = sliced.predict(img)
                    times.setdefault(("core-sliced", group), []).append((time.perf_counter() - t0) * 1000)
                    counts.setdefault(("core-sliced", group), []).append(len(found))

    rows: list[dict] = []
    for group in groups:
        core_ms = float(np.mean(times[("core", group)]))
        for name in [*methods, "core-sliced"]:
            key = (name, group)
            if key not in times:
                continue
            row: dict[str, Any] = {
                "method": name,
                "frames": group,
                "images": len(times[key]),
                **_stats(times[key]),
            }
            row["mean_boxes"] = round(float(np.mean(counts[key])), 1) if key in counts else None
            if name not in ("core", "core-sliced"):
                row["core_speedup"] = round(float(np.mean(times[key])) / core_ms, 2)
            rows.append(row)
    n_tiles = len(sliced.windows((3000, 4000)))
    notes = [
        f"YOLO11n from yolo11n.yaml (untrained, calibrated), ONNX opset default, input 640x640, conf={CONF}, iou={IOU}",
        f"CPU only, {threads} threads for torch and onnxruntime (ultralytics-onnx keeps ultralytics' session defaults)",
        "core_speedup = method mean latency / core mean latency (>1: the core is faster)",
        "bare-ort is the model alone on a prepared tensor (no letterbox, decode or NMS): the floor for ONNX paths",
        f"core-sliced on 4000x3000 runs {n_tiles} tiles of 640 (20 % overlap, batches of 8) + merging: more work",
        "methods interleaved per image, first method rotated; one warm-up call each; one run, not averaged over runs",
    ]
    return {"title": "Inference core vs ultralytics vs bare onnxruntime (CPU)", "rows": rows, "notes": notes}


if __name__ == "__main__":  # python -m bench.bench_inference [--quick]
    import json
    import sys

    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))

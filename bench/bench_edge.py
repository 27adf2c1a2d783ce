"""On-site runtime (skyinspect-edge) vs ultralytics: full pipeline, slicing overhead, resident memory.

Same model (YOLO11n, 640×640, untrained but calibrated — see ``bench.bench_inference``), same images, one run.

1. **Full pipeline, decode → detections**, from JPEG files on disk, whole passes over the files (rounds rotated):
   - ``edge``: what ``skyinspect-edge run`` does — a reader thread reads + decodes (:meth:`jetson.pipeline.
     Pipeline.decode`: a JPEG detected whole is decoded at the scale the model needs, here 1/2 of 1920×1080 for a
     640 input; ultralytics decodes it whole) and pre-processes each frame (:meth:`jetson.pipeline.Pipeline.prepare`)
     while the model thread detects (:func:`detection.prefetch.background`), on the Detector opened by
     :func:`jetson.engine.open_detector` with the default edge config (backend ``auto``: onnxruntime on CPU; formerly OpenVINO on an x86 CPU
     where it is installed); ``edge-onnxruntime``: the same with ``backend: onnxruntime`` (the CPU provider);
   - ``ultralytics-torch``: ``YOLO.predict(path, rect=False)`` on the in-memory PyTorch model (it reads the file);
   - ``ultralytics-onnx``: ``YOLO("model.onnx").predict(path)`` — ultralytics' own onnxruntime path on
     ultralytics' own ONNX export of the weights; the edge runs skyinspect's graph of the same weights (that export
     through :func:`onnx_export.export.finish_graph`: onnxslim, the DFL softmax as reductions — the same values to
     float rounding); ``ultralytics-onnx (skyinspect's file)`` runs ultralytics' predict on skyinspect's graph, to
     show how much of the difference is the graph and how much the pipeline;
   - ``edge-durable``: for scale, the whole edge step including what makes it durable — thumbnail, SQLite commit
     (fsync) and JSONL append (fsync) — via :meth:`jetson.pipeline.Pipeline.process`.
2. **Slicing** a 4000×3000 frame: ``SlicedDetector.predict`` (tile views, letterbox, batching, decode, mapping,
   NMS + greedy merge) vs the model alone (``backend.run``) over the same tiles, prepared beforehand.
3. **Resident memory**: ``skyinspect-edge run --once`` in a fresh process over 4000×3000 JPEGs with slicing;
   peak RSS from the kernel (``ru_maxrss`` of the child) and sampled with psutil.

Targets: edge ≥ 2× ultralytics PyTorch and ≥ 1.1× ultralytics ONNX; slicing overhead ≤ 1.15×; RSS ≤ 400 MB.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

NAME = "edge"
CONF, IOU = 0.25, 0.45
ROOT = Path(__file__).resolve().parents[1]
HWM_CODE = (
    "import atexit, sys\n"
    "def hwm():\n"
    "    line = next(x for x in open('/proc/self/status') if x.startswith('VmHWM'))\n"
    "    print('SKYINSPECT_VMHWM', line.split()[1], file=sys.stderr)\n"
    "atexit.register(hwm)\n"
    "from jetson.cli import main\n"
    "main()\n"
)
"""``skyinspect-edge`` in a child that reports its VmHWM (peak RSS since its exec) on exit. ``ru_maxrss`` would
also count the forked copy of this torch-laden bench process from before the exec."""


def _jpeg(img: np.ndarray, path: Path) -> Path:
    import cv2

    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 92])
    if not ok:
        raise RuntimeError("cannot encode a JPEG")
    path.write_bytes(buf.tobytes())
    return path


def skyinspect_graph(ultra_onnx: Path, out: Path) -> Path:
    """The graph skyinspect's export makes of the same weights: ultralytics' ONNX file through
    :func:`onnx_export.export.finish_graph` (onnxslim, DFL softmax as reductions), ultralytics' metadata kept."""
    import onnx

    from onnx_export.export import finish_graph

    onnx.save(finish_graph(onnx.load(str(ultra_onnx)), str(ultra_onnx))[0], str(out))
    return out


def _pipeline_compare(
    tmp: Path, yolo: Any, ultra_onnx: Path, onnx_path: Path, files: list[Path], threads: int, rounds: int
) -> list[dict]:
    from ultralytics import YOLO

    from detection.prefetch import background
    from jetson.config import parse_edge_config
    from jetson.engine import FrameRunner, file_sha256, open_detector
    from jetson.outbox import Outbox
    from jetson.pipeline import ModelInfo, Pipeline
    from jetson.sources import Frame

    base = {
        "conf": CONF,
        "iou": IOU,
        "intra_op_threads": threads,
        "tiling": {"mode": "never"},
        "sync": {"enabled": False},
        "storage": {"min_free_mb": 0},
    }
    counter = iter(range(10**9))

    def frames_of(paths: list[Path], pipe: Pipeline) -> Any:
        def produce(stop: Any) -> Any:  # what the folder source does: read + decode, in the reader thread
            for path in paths:
                image, full = pipe.decode(path.read_bytes(), path)
                yield Frame(f"bench-{next(counter)}", 0, "image", str(path), image, full_shape=full)

        return produce

    pipelines: dict[str, Pipeline] = {}
    for name, backend in (("edge", "auto"), ("edge-onnxruntime", "onnxruntime")):
        cfg = parse_edge_config({**base, "backend": backend})
        runner = FrameRunner.build(open_detector(onnx_path, cfg, tmp / "trt-cache"), cfg)
        info = ModelInfo(str(onnx_path), file_sha256(onnx_path), None, "wind-rgb")
        pipelines[name] = Pipeline(runner, Outbox(tmp / f"queue-{name}.sqlite"), cfg, "bench", info,
                                   tmp / f"out-{name}", tmp / f"spool-{name}")  # fmt: skip

    def edge_pass(name: str) -> Any:
        """The runtime's loop without its durable writes: reader thread decodes + prepares, model thread detects."""
        pipe = pipelines[name]

        def run(paths: list[Path]) -> list[int]:
            out = []
            for frame, prepared in background(frames_of(paths, pipe), prepare=pipe.prepare, maxsize=4):
                dets = (
                    pipe.runner.detector.predict_prepared([prepared])[0]
                    if prepared is not None
                    else pipe.runner(frame.image)[0]
                )
                out.append(len(dets))
            return out

        return run

    def durable(paths: list[Path]) -> list[int]:
        import threading

        got: list[int] = []
        pipelines["edge"].run(
            frames_of(paths, pipelines["edge"]),
            threading.Event(),
            on_result=lambda r: got.append(len(r["detections"])),
        )
        return got

    ultra_own = YOLO(str(ultra_onnx), task="detect")
    ultra_ours = YOLO(str(onnx_path), task="detect")
    kw = {"imgsz": 640, "conf": CONF, "iou": IOU, "verbose": False}
    methods = {
        "edge": edge_pass("edge"),
        "edge-onnxruntime": edge_pass("edge-onnxruntime"),
        "ultralytics-torch": lambda ps: [len(yolo.predict(str(p), rect=False, **kw)[0].boxes) for p in ps],
        "ultralytics-onnx": lambda ps: [len(ultra_own.predict(str(p), **kw)[0].boxes) for p in ps],
        "ultralytics-onnx (skyinspect's file)": lambda ps: [
            len(ultra_ours.predict(str(p), **kw)[0].boxes) for p in ps
        ],
        "edge-durable": durable,
    }
    for fn in methods.values():  # warm-up: sessions, predictor set-up, torch fusing
        fn(files[:1])
        fn(files[:1])
    seconds: dict[str, list[float]] = {m: [] for m in methods}
    boxes: dict[str, list[int]] = {m: [] for m in methods}
    names = list(methods)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            t0 = time.perf_counter()
            counts = methods[name](files)
            seconds[name].append(time.perf_counter() - t0)
            boxes[name] = counts
    for pipe in pipelines.values():
        pipe.outbox.close()
    edge_s = float(np.sum(seconds["edge"]))
    rows = []
    for name in methods:
        total = float(np.sum(seconds[name]))
        row: dict[str, Any] = {
            "step": "decode→detections",
            "method": name,
            "frames": len(files) * rounds,
            "frames_per_s": round(len(files) * rounds / total, 2),
            "mean_ms": round(1000 * total / (len(files) * rounds), 1),
            "mean_boxes": round(float(np.mean(boxes[name])), 1),
            "backend": pipelines[name].runner.detector.backend.name if name in pipelines else "",
        }
        row["edge_speedup"] = round(total / edge_s, 2) if name != "edge" else 1.0
        rows.append(row)
    return rows


def _slicing_overhead(onnx_path: Path, frames: list[np.ndarray], threads: int, tmp: Path) -> dict:
    from detection.slicing import SlicedDetector
    from jetson.config import parse_edge_config
    from jetson.engine import open_detector

    cfg = parse_edge_config({"conf": CONF, "iou": IOU, "intra_op_threads": threads})
    detector = open_detector(onnx_path, cfg, tmp / "trt-cache")
    sliced = SlicedDetector(detector, overlap=0.2, batch_size=8)
    pipe_s, model_s, merge_s, n_boxes, n_raw = [], [], [], [], []
    sliced.predict(frames[0][:640, :640])  # warm-up
    for img in frames:
        wins = sliced.windows(img.shape[:2])
        tensors = [
            detector.prepare([img[y1:y2, x1:x2] for x1, y1, x2, y2 in wins[s : s + 8]])[0]
            for s in range(0, len(wins), 8)
        ]
        for first in ("pipeline", "model") if len(pipe_s) % 2 == 0 else ("model", "pipeline"):
            if first == "pipeline":
                t0 = time.perf_counter()
                raw = sliced.predict_tiles(img)
                t1 = time.perf_counter()
                found = sliced.merge_detections(raw)
                t2 = time.perf_counter()
                pipe_s.append(t2 - t0)
                merge_s.append(t2 - t1)
                n_boxes.append(len(found))
                n_raw.append(len(raw))
            else:
                t0 = time.perf_counter()
                for x in tensors:
                    detector.backend.run(x)
                model_s.append(time.perf_counter() - t0)
    ratio = float(np.mean(pipe_s)) / float(np.mean(model_s))
    return {
        "step": "slicing 4000×3000",
        "method": f"{len(sliced.windows((3000, 4000)))} tiles of 640, 20 % overlap",
        "frames": len(frames),
        "pipeline_ms": round(float(np.mean(pipe_s)) * 1000, 1),
        "model_only_ms": round(float(np.mean(model_s)) * 1000, 1),
        "merge_ms": round(float(np.mean(merge_s)) * 1000, 1),
        "raw_boxes": round(float(np.mean(n_raw)), 1),
        "mean_boxes": round(float(np.mean(n_boxes)), 1),
        "overhead": round(ratio, 3),
        "target": "≤ 1.15",
    }


def _rss_peak(onnx_path: Path, files_dir: Path, tmp: Path, threads: int) -> dict:
    import psutil

    cfg = tmp / "edge.yaml"
    cfg.write_text(
        json.dumps(
            {
                "conf": CONF,
                "intra_op_threads": threads,
                "tiling": {"mode": "always"},
                "source": {"stable_s": 0.0, "poll_s": 0.05},
                "sync": {"enabled": False},
                "storage": {"min_free_mb": 0},
            }
        )
    )
    env = {**os.environ, "SKYINSPECT_DATA_DIR": str(tmp / "rss-data"), "PYTHONPATH": str(ROOT)}
    cmd = [
        sys.executable,
        "-c",
        HWM_CODE,
        "--edge-config",
        str(cfg),
        "run",
        "--source",
        str(files_dir),
        "--model",
        str(onnx_path),
        "--once",
        "--out",
        str(tmp / "rss-out"),
    ]
    log_out, log_err = tmp / "rss.out", tmp / "rss.err"
    with log_out.open("w") as fo, log_err.open("w") as fe:
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=fo, stderr=fe)
    sampled = [0]

    def sample() -> None:
        try:
            p = psutil.Process(proc.pid)
            while True:
                sampled[0] = max(sampled[0], p.memory_info().rss)
                time.sleep(0.05)
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            pass

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    proc.wait()
    t.join(timeout=5)
    out, err = log_out.read_text(), log_err.read_text()
    if proc.returncode != 0:
        raise RuntimeError(f"skyinspect-edge run failed: {err[-2000:]}")
    peak_kb = int(next(x for x in err.splitlines() if x.startswith("SKYINSPECT_VMHWM")).split()[1])
    return {
        "step": "resident memory",
        "method": "skyinspect-edge run --once (sliced 4000×3000, nano)",
        "frames": len(list(files_dir.iterdir())),
        "rss_peak_mb": round(peak_kb / 1024, 1),
        "rss_sampled_mb": round(sampled[0] / 2**20, 1),
        "target": "≤ 400 MB",
        "output": out.strip().splitlines()[-1] if out.strip() else "",
    }


def run(quick: bool = False) -> dict:
    """Run all three comparisons; ``quick``: 4 pipeline frames and 1 large frame instead of 12 and 3."""
    import torch

    from bench.bench_inference import _calibrated_model, _frame

    threads = os.cpu_count() or 1
    torch.set_num_threads(threads)
    n_small, n_large = (4, 1) if quick else (12, 3)
    with tempfile.TemporaryDirectory(prefix="bench-edge-") as tmp_name:
        tmp = Path(tmp_name)
        yolo, ultra_onnx = _calibrated_model(tmp)
        onnx_path = skyinspect_graph(ultra_onnx, tmp / "yolo11n-640-skyinspect.onnx")
        small_dir, large_dir = tmp / "small", tmp / "large"
        small_dir.mkdir()
        large_dir.mkdir()
        small = [_jpeg(_frame(1080, 1920, i), small_dir / f"f{i:03d}.jpg") for i in range(n_small)]
        large_frames = [_frame(3000, 4000, 50 + i) for i in range(n_large)]
        _jpeg(large_frames[0], large_dir / "L000.jpg")  # the peak is reached on the first frame
        rows = _pipeline_compare(tmp, yolo, ultra_onnx, onnx_path, small, threads, rounds=1 if quick else 5)
        rows.append(_slicing_overhead(onnx_path, large_frames, threads, tmp))
        rows.append(_rss_peak(onnx_path, large_dir, tmp, threads))
    by = {r["method"]: r for r in rows if r["step"] == "decode→detections"}
    ort_vs = {
        m: round(by[m]["mean_ms"] / by["edge-onnxruntime"]["mean_ms"], 2)
        for m in ("ultralytics-torch", "ultralytics-onnx")
    }
    graph_gap = by["ultralytics-onnx (skyinspect's file)"]["edge_speedup"]
    notes = [
        "YOLO11n from yolo11n.yaml (untrained, calibrated as in bench_inference), ONNX 640×640, "
        f"conf={CONF}, iou={IOU}; CPU only, {threads} threads for torch and onnxruntime",
        "decode→detections: 1920×1080 JPEG files, whole passes over all files, methods rotated per round; edge = "
        "the runtime's loop (reader thread decodes and pre-processes, model thread detects) with the default "
        f"backend (auto: {by['edge']['backend']} here); edge_speedup = method time / edge time (>1: edge faster); "
        f"targets ≥ 2 for ultralytics-torch (got {by['ultralytics-torch']['edge_speedup']}), "
        f"≥ 1.1 for ultralytics-onnx (got {by['ultralytics-onnx']['edge_speedup']}); with the onnxruntime CPU "
        f"provider pinned (edge-onnxruntime): {ort_vs['ultralytics-torch']}× and {ort_vs['ultralytics-onnx']}×",
        "ultralytics-torch runs with rect=False (same 640×640 letterbox as the ONNX paths)",
        "model files: the edge runs skyinspect's graph of the weights (ultralytics' ONNX export + "
        "onnx_export.finish_graph: onnxslim, DFL softmax as reductions — same values to float rounding); "
        "ultralytics-onnx runs ultralytics' own export; ultralytics-onnx (skyinspect's file) shows how much of the "
        f"gap is the graph: edge {graph_gap}× it",
        "edge-durable adds the thumbnail, the SQLite commit (synchronous=FULL) and the JSONL fsync: the real per-frame cost",
        "slicing: overhead = pipeline / model-only over the same tiles (tensors prepared beforehand); merge_ms is the "
        "NMS + greedy-merge share",
        "RSS: VmHWM of the runtime process (kernel peak since its exec); rss_sampled_mb: psutil every 50 ms",
        "one run; 2 warm-up calls each",
    ]
    return {
        "title": "skyinspect-edge vs ultralytics: pipeline, slicing overhead, memory (CPU)",
        "rows": rows,
        "notes": notes,
    }


if __name__ == "__main__":  # python -m bench.bench_edge [--quick]
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2, default=str))

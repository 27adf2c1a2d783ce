"""Evaluate a PyTorch (.pt) or ONNX (.onnx) model through the project's own inference path.

Every image goes through :class:`detection.inference.Detector` (letterbox → backend → decode/NMS → rescale), with
:class:`~detection.backends.OrtBackend` for ONNX and :class:`~detection.torch_backend.TorchBackend` for PyTorch, and
optionally through :class:`~detection.slicing.SlicedDetector` (``slice=True``) for full-resolution frames. The
detections are scored against the ground truth with :mod:`detection.metrics`, so a ``.pt`` and its ONNX export are
measured by exactly the code that will run them in production.

Data: a YOLO ``data.yaml`` (or a folder holding one; the ``split`` is used), or a flight folder
(``OUT/flight`` + ``OUT/truth/labels``, see the synthetic flight contract), evaluated frame by frame.

Output (``out``): ``metrics.json`` (the report below), ``pr_curve.png``, ``confusion_matrix.png``. The report has
``map50``, ``map50_95``, ``precision``, ``recall``, ``per_class`` {name: {precision, recall, ap50, ap50_95,
support, predictions}}, ``confusion_matrix``, ``images``, ``model``, ``dataset_version``, and the settings used.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from detection.inference import Detector
from detection.metrics import DetectionMetrics, MetricsAccumulator
from detection.slicing import SlicedDetector

logger = logging.getLogger(__name__)

REPORT_FORMAT = "skyinspect-eval/1"


class EvaluateError(RuntimeError):
    """Evaluation cannot run: unknown model type, data that cannot be read, class names that do not match."""


@dataclass(frozen=True)
class EvalConfig:
    """What to evaluate and how.

    Attributes:
        model: ``.pt`` or ``.onnx`` file.
        data: data.yaml, a folder with one, or a flight folder.
        split: the data.yaml split (``train``/``val``/``test``); ignored for flight folders.
        conf: keep detections above this (0.001, as validators do, so the whole PR curve is measured).
        iou: NMS IoU threshold.
        max_det: detections kept per image (per frame when sliced).
        imgsz: model input size for dynamic-input models (default: the model's own).
        slice: tile each frame (tile = the model's input size) and merge, as for 4000×3000 drone frames.
        overlap: tile overlap when slicing.
        batch: images (or tiles) per backend call.
        device: ``cpu`` or a CUDA device; for ONNX it selects the execution provider.
        out: folder for metrics.json and plots (``None``: write nothing).
        plots: draw the PR curve and confusion matrix PNGs.
        limit: evaluate only the first N images (smoke tests).
        threads: CPU threads for the backend (``None``: the library default).
        ap_method: ``coco`` (101-point mean, default) or ``ultralytics`` (interpolated trapezoid); see
            :mod:`detection.metrics`.
    """

    model: Path
    data: Path
    split: str = "val"
    conf: float = 0.001
    iou: float = 0.6
    max_det: int = 300
    imgsz: int | None = None
    slice: bool = False
    overlap: float = 0.2
    batch: int = 8
    device: str = "cpu"
    out: Path | None = None
    plots: bool = True
    limit: int | None = None
    threads: int | None = None
    ap_method: str = "coco"
    recall_conf: float = 0.25


SMALL_FRACTION = 1 / 40
"""An object is *small* when its longest side is under this fraction of the frame's longest side."""


class SizeRecall:
    """Recall at one confidence threshold, split into small objects and the rest (see the module docstring)."""

    def __init__(self, conf: float, iou: float = 0.5) -> None:
        if not 0.0 <= conf <= 1.0:
            raise ValueError(f"recall_conf must be in 0..1, got {conf}")
        self.conf, self.iou = conf, iou
        self.found = {"small": 0, "other": 0}
        self.total = {"small": 0, "other": 0}

    def add(self, xyxy: np.ndarray, conf: np.ndarray, cls: np.ndarray, gt_xyxy: np.ndarray, gt_cls: np.ndarray,
            frame_hw: tuple[int, int]) -> None:  # fmt: skip
        """One image: detections (N, 4)/(N,)/(N,) and ground truth (M, 4)/(M,), pixel xyxy of the same frame."""
        from detection.boxes import box_iou

        if len(gt_xyxy) == 0:
            return
        small = np.max(gt_xyxy[:, 2:] - gt_xyxy[:, :2], axis=1) < SMALL_FRACTION * max(frame_hw)
        matched = np.zeros(len(gt_xyxy), dtype=bool)
        keep = conf >= self.conf
        xyxy, conf, cls = xyxy[keep], conf[keep], cls[keep]
        if len(xyxy):
            iou = box_iou(xyxy, gt_xyxy)
            iou[cls[:, None] != gt_cls[None, :]] = 0.0
            for i in np.argsort(-conf, kind="stable"):  # greedy, best detection first, one GT per detection
                free = np.where(matched, 0.0, iou[i])
                j = int(np.argmax(free))
                if free[j] >= self.iou:
                    matched[j] = True
        for bucket, mask in (("small", small), ("other", ~small)):
            self.total[bucket] += int(mask.sum())
            self.found[bucket] += int((matched & mask).sum())

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"conf": self.conf, "iou": self.iou, "small_fraction": SMALL_FRACTION}
        for bucket in ("small", "other"):
            n = self.total[bucket]
            out[bucket] = {"objects": n, "found": self.found[bucket],
                           "recall": round(self.found[bucket] / n, 4) if n else None}  # fmt: skip
        return out


@dataclass(frozen=True)
class Sample:
    """One evaluation image: its file and a loader for its ground truth given the image's (h, w)."""

    path: Path
    labels: Path | None
    """YOLO label file (normalised to the full image); ``None`` or missing = no objects."""


@dataclass(frozen=True)
class EvalData:
    """The images and class names of the data being evaluated."""

    kind: str
    """``yolo`` or ``flight``."""
    source: Path
    names: list[str]
    samples: list[Sample]
    version: str
    version_method: str


@dataclass(frozen=True)
class EvalResult:
    """Metrics plus the JSON report (as written to ``metrics.json``) and the files written."""

    metrics: DetectionMetrics
    report: dict[str, Any]
    files: dict[str, Path]


# -------------------------------------------------------------------------------------------------- data
def _sha256_of(paths: list[Path], extra: bytes = b"") -> str:
    digest = hashlib.sha256(extra)
    for p in paths:
        digest.update(p.name.encode())
        digest.update(b"\0")
        if p.is_file():
            digest.update(p.read_bytes())
    return digest.hexdigest()[:16]


def load_eval_data(data: Path, split: str = "val") -> EvalData:
    """Find the images, labels and class names of a YOLO set split or a flight folder.

    Raises:
        EvaluateError: not a YOLO set or flight, no images in the split.
    """
    from datasets.yolo import DatasetError, find_yolo_set, label_path_for

    data = Path(data)
    if not data.exists():
        raise EvaluateError(f"data {data} does not exist")
    is_flight = data.is_dir() and (
        (data / "flight").is_dir() or (data.name == "flight" and (data.parent / "truth").is_dir())
    )
    if is_flight and not (data / "data.yaml").is_file():
        from datasets.sources import RGB_SUFFIXES, THERMAL_SUFFIXES, open_flight
        from detection import taxonomy

        try:
            flight = open_flight(data)
        except DatasetError as exc:
            raise EvaluateError(str(exc)) from exc
        suffixes = THERMAL_SUFFIXES if flight.domain is taxonomy.Domain.PV_THERMAL else RGB_SUFFIXES
        images = sorted(
            p for p in flight.images_dir.iterdir() if p.is_file() and p.suffix.lower() in suffixes
        )
        if not images:
            raise EvaluateError(f"{flight.images_dir}: no images for {flight.domain.value}")
        samples = [Sample(p, flight.labels_dir / f"{p.stem}.txt") for p in images]
        synth = flight.root / "synth.json"
        version = _sha256_of(
            [s.labels for s in samples if s.labels], synth.read_bytes() if synth.is_file() else b""
        )
        return EvalData("flight", flight.root, taxonomy.class_names(flight.domain), samples, version,
                        "sha256(synth.json + truth labels)")  # fmt: skip
    try:
        found = find_yolo_set(data)
    except DatasetError as exc:
        raise EvaluateError(str(exc)) from exc
    if not found.names:
        raise EvaluateError(f"{data}: the set has no class names (no data.yaml names, no classes.txt)")
    if found.data_yaml is not None:
        chosen = sorted(p for p, s in found.images.items() if s == split)
    else:
        chosen = sorted(p for p, s in found.images.items() if s in (split, ""))
    if not chosen:
        splits = sorted({s or "(none)" for s in found.images.values()})
        raise EvaluateError(
            f"{data}: no images in split {split!r}; splits present: {', '.join(splits) or 'none'}"
        )
    samples = []
    for p in chosen:
        try:
            samples.append(Sample(p, label_path_for(p)))
        except DatasetError:
            samples.append(Sample(p, None))
    try:
        from datasets.version import dataset_version

        version, method = dataset_version(found.data_yaml or found.root), "datasets.version.dataset_version"
    except ImportError:
        version, method = _sha256_of([s.labels for s in samples if s.labels]), "sha256(label files)"
    return EvalData("yolo", found.data_yaml or found.root, list(found.names), samples, version, method)


def ground_truth(sample: Sample, width: int, height: int, nc: int) -> tuple[np.ndarray, np.ndarray]:
    """(M, 4) float64 pixel xyxy and (M,) int64 class ids of one image.

    Raises:
        EvaluateError: a malformed label file (file and line named).
    """
    from datasets.yolo import DatasetError, labels_to_xyxy, read_labels

    if sample.labels is None:
        return np.zeros((0, 4)), np.zeros(0, dtype=np.int64)
    try:
        return labels_to_xyxy(read_labels(sample.labels, nc), width, height)
    except DatasetError as exc:
        raise EvaluateError(str(exc)) from exc


# -------------------------------------------------------------------------------------------------- model
def open_detector(cfg: EvalConfig) -> Detector:
    """The project's :class:`Detector` for ``cfg.model`` (ONNX → OrtBackend, .pt → TorchBackend).

    Raises:
        EvaluateError: unknown suffix; backend errors propagate as :class:`BackendError`.
    """
    path = Path(cfg.model)
    kwargs: dict[str, Any] = {
        "conf": cfg.conf,
        "iou": cfg.iou,
        "max_det": cfg.max_det,
        "batch_size": cfg.batch,
    }
    if cfg.imgsz:
        kwargs["imgsz"] = (cfg.imgsz, cfg.imgsz)
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        providers = ["CPUExecutionProvider"] if cfg.device == "cpu" else None
        return Detector.from_onnx(path, providers=providers, intra_op_threads=cfg.threads, **kwargs)
    if suffix == ".pt":
        from detection.torch_backend import TorchBackend

        if cfg.threads:
            import torch

            torch.set_num_threads(cfg.threads)
        backend = TorchBackend(path, device=cfg.device)
        return Detector(backend, backend.model_meta(), **kwargs)
    raise EvaluateError(f"model {path}: expected a .pt or .onnx file")


def _iter_images(samples: list[Sample]) -> Iterator[tuple[Sample, np.ndarray]]:
    from detection.images import read_image

    for s in samples:
        yield s, read_image(s.path)


# -------------------------------------------------------------------------------------------------- evaluate
def evaluate(cfg: EvalConfig) -> EvalResult:
    """Run the model over the data and score it (see module docstring).

    Raises:
        EvaluateError: see :func:`load_eval_data`; the model's class names differ from the data's.
    """
    data = load_eval_data(cfg.data, cfg.split)
    samples = data.samples[: cfg.limit] if cfg.limit else data.samples
    detector = open_detector(cfg)
    model_names = [detector.names[i] for i in range(len(detector.names))]
    if model_names != data.names:
        raise EvaluateError(
            f"class names differ: model {cfg.model} has {model_names}, data {data.source} has {data.names}"
        )
    runner: Detector | SlicedDetector = detector
    if cfg.slice:
        runner = SlicedDetector(detector, overlap=cfg.overlap, batch_size=cfg.batch)
    acc = MetricsAccumulator(data.names)
    by_size = SizeRecall(cfg.recall_conf)
    t0 = time.perf_counter()
    infer_s = 0.0
    bar = tqdm(total=len(samples), desc=f"evaluate {Path(cfg.model).name}", unit="img", disable=None)
    # Whole-image mode batches images; sliced mode batches tiles within a frame.
    step = 1 if cfg.slice else max(1, cfg.batch)
    it = _iter_images(samples)
    while True:
        chunk = [x for _, x in zip(range(step), it, strict=False)]
        if not chunk:
            break
        t = time.perf_counter()
        found = (
            [runner.predict(img) for _, img in chunk]
            if cfg.slice
            else runner.predict_batch([im for _, im in chunk])
        )
        infer_s += time.perf_counter() - t
        for (sample, img), dets in zip(chunk, found, strict=True):
            h, w = img.shape[:2]
            gt_xyxy, gt_cls = ground_truth(sample, w, h, len(data.names))
            acc.add(dets.xyxy, dets.confidence, dets.class_id, gt_xyxy, gt_cls)
            by_size.add(dets.xyxy, dets.confidence, dets.class_id, gt_xyxy, gt_cls, (h, w))
        bar.update(len(chunk))
    bar.close()
    metrics = acc.compute(method=cfg.ap_method)  # type: ignore[arg-type]
    wall = time.perf_counter() - t0
    report = {
        "format": REPORT_FORMAT,
        **metrics.to_dict(),
        "model": str(Path(cfg.model).resolve()),
        "model_sha256": _file_sha256(Path(cfg.model)),
        "recall_by_size": by_size.to_dict(),
        "backend": detector.backend.name,
        "providers": detector.backend.providers,
        "input_hw": list(detector.input_hw),
        "data": str(data.source),
        "data_kind": data.kind,
        "split": cfg.split if data.kind == "yolo" else None,
        "dataset_version": data.version,
        "dataset_version_method": data.version_method,
        "settings": {
            "conf": cfg.conf,
            "iou": cfg.iou,
            "max_det": cfg.max_det,
            "slice": cfg.slice,
            "overlap": cfg.overlap if cfg.slice else None,
            "tile": list(runner.tile) if isinstance(runner, SlicedDetector) else None,
            "limit": cfg.limit,
        },
        "timing": {
            "wall_s": round(wall, 3),
            "inference_s": round(infer_s, 3),
            "ms_per_image": round(1000 * infer_s / max(len(samples), 1), 2),
        },
    }
    files: dict[str, Path] = {}
    if cfg.out is not None:
        out = Path(cfg.out)
        out.mkdir(parents=True, exist_ok=True)
        files["metrics"] = out / "metrics.json"
        files["metrics"].write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        if cfg.plots:
            files["pr_curve"] = plot_pr_curves(metrics, out / "pr_curve.png")
            files["confusion_matrix"] = plot_confusion_matrix(metrics, out / "confusion_matrix.png")
    logger.info(
        "evaluated %s on %d images: mAP50 %s, mAP50-95 %s",
        cfg.model,
        len(samples),
        metrics.map50,
        metrics.map50_95,
    )
    return EvalResult(metrics, report, files)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


# -------------------------------------------------------------------------------------------------- plots
def plot_pr_curves(metrics: DetectionMetrics, path: Path) -> Path:
    """Precision–recall curves at IoU 0.5 (one per class with ground truth, plus their mean) → PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from detection.metrics import RECALL_POINTS

    fig = Figure(figsize=(7, 5), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    shown = [c for c in range(len(metrics.names)) if metrics.per_class[c].support > 0]
    for c in shown:
        pc = metrics.per_class[c]
        ax.plot(RECALL_POINTS, metrics.pr_curves[c], linewidth=1, label=f"{pc.name} {pc.ap50:.3f}")
    if shown:
        mean = metrics.pr_curves[shown].mean(0)
        ax.plot(
            RECALL_POINTS,
            mean,
            linewidth=2.5,
            color="black",
            label=f"all classes {metrics.map50:.3f} mAP@0.5",
        )
    ax.set(
        xlabel="Recall", ylabel="Precision", xlim=(0, 1), ylim=(0, 1.02), title="Precision–recall (IoU 0.5)"
    )
    ax.legend(loc="lower left", fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    return path


def plot_confusion_matrix(metrics: DetectionMetrics, path: Path) -> Path:
    """The confusion matrix (rows true, columns predicted, background last), counts annotated → PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    labels = [*metrics.names, "background"]
    m = metrics.confusion_matrix
    n = len(labels)
    fig = Figure(figsize=(2 + 0.7 * n, 1.5 + 0.6 * n), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(m, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046)
    ax.set_xticks(range(n), labels, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(n), labels, fontsize=7)
    ax.set(
        xlabel="Predicted",
        ylabel="True",
        title=f"Confusion matrix (conf ≥ {metrics.cm_conf}, IoU > {metrics.cm_iou})",
    )
    top = m.max() if m.size else 0
    for i in range(n):
        for j in range(n):
            if m[i, j]:
                ax.text(j, i, str(m[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if m[i, j] > top / 2 else "black")  # fmt: skip
    fig.tight_layout()
    fig.savefig(path)
    return path

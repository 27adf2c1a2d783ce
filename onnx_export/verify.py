"""Prove an export still detects what the PyTorch model detects.

The PyTorch checkpoint (:class:`~detection.torch_backend.TorchBackend`) and every ONNX file
(:class:`~detection.backends.OrtBackend`) run over the same validation images through the same
:class:`~detection.inference.Detector` (letterbox, thermal window, decode, NMS, rescale), chunk by chunk, so they
see identical inputs. Per ONNX file:

* **mAP50** against the ground truth (:mod:`detection.metrics`) and its delta to PyTorch's, in points (×100).
* **matched-box IoU**: each PyTorch detection scoring ≥ ``match_conf`` is matched, greedily by confidence, to the
  same-class ONNX detection (any score) it overlaps most; IoU ≥ 0.5 counts as matched. Reported: min / p1 /
  median of the matched IoUs, and how many PyTorch detections found no partner (``lost``).
* **OpenCV DNN parity**: the file is loaded by ``cv2.dnn.readNetFromONNX`` (a second, independent runtime) and
  its raw output compared with onnxruntime's on the same prepared batch: max abs diff of the box rows (pixels) and
  of the score rows. If OpenCV cannot load it, the failing operator and node are named.

Gates (:class:`Gates`): FP32 — |ΔmAP50| ≤ 0.5 points, every matched IoU ≥ 0.99, no lost box, OpenCV loads it and
matches; FP16 — |ΔmAP50| ≤ 1 point; INT8 — |ΔmAP50| ≤ 2 points. A file's precision is read from its graph
(QuantizeLinear → int8, float16 initializers → fp16, else fp32), not trusted from its metadata.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from onnx_export.errors import ExportError, VerificationFailed

logger = logging.getLogger(__name__)

REPORT_FORMAT = "skyinspect-export-verify/1"
MATCH_IOU = 0.5


@dataclass(frozen=True)
class Gates:
    """Pass/fail limits (mAP50 in points = ×100)."""

    fp32_map50_points: float = 0.5
    fp32_min_iou: float = 0.99
    fp16_map50_points: float = 1.0
    int8_map50_points: float = 2.0
    opencv_score_tol: float = 1e-3
    opencv_box_tol_rel: float = 1e-4
    """OpenCV box-row tolerance, relative to the input's longer side (0.064 px at 640)."""

    def map50_points(self, precision: str) -> float:
        return {
            "fp32": self.fp32_map50_points,
            "fp16": self.fp16_map50_points,
            "int8": self.int8_map50_points,
        }[precision]


@dataclass
class VariantReport:
    """The verification of one ONNX file."""

    path: Path
    precision: str
    dynamic_batch: bool
    input_hw: tuple[int, int]
    map50: float = float("nan")
    map50_95: float = float("nan")
    delta_points: float = float("nan")
    iou: dict[str, Any] = field(default_factory=dict)
    opencv: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": str(self.path),
            "precision": self.precision,
            "dynamic_batch": self.dynamic_batch,
            "input_hw": list(self.input_hw),
            "map50": _r(self.map50),
            "map50_95": _r(self.map50_95),
            "delta_map50_points": _r(self.delta_points),
            "iou": self.iou,
            "opencv": self.opencv,
            "passed": self.passed,
            "failures": self.failures,
        }


@dataclass
class VerifyReport:
    """PyTorch's reference numbers and one :class:`VariantReport` per ONNX file."""

    model: Path
    data: Path
    split: str
    images: int
    dataset_version: str | None
    torch_map50: float
    torch_map50_95: float
    variants: list[VariantReport]
    settings: dict[str, Any]
    gates: Gates

    @property
    def passed(self) -> bool:
        return all(v.passed for v in self.variants)

    @property
    def failures(self) -> list[str]:
        return [f"{v.path.name}: {f}" for v in self.variants for f in v.failures]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": REPORT_FORMAT,
            "model": str(self.model),
            "data": str(self.data),
            "split": self.split,
            "images": self.images,
            "dataset_version": self.dataset_version,
            "pytorch": {"map50": _r(self.torch_map50), "map50_95": _r(self.torch_map50_95)},
            "variants": [v.to_dict() for v in self.variants],
            "settings": self.settings,
            "gates": dataclasses.asdict(self.gates),
            "passed": self.passed,
            "failures": self.failures,
        }

    def table(self) -> str:
        """A plain-text table, one row per model."""
        head = f"{'model':<34} {'prec':<5} {'mAP50':>7} {'Δ pts':>7} {'IoU min':>8} {'p1':>6} {'median':>7} {'lost':>5}  opencv"
        rows = [head, "-" * len(head)]
        rows.append(
            f"{'pytorch ' + self.model.name:<34} {'fp32':<5} {self.torch_map50:>7.4f} {'':>7} {'':>8} {'':>6} {'':>7} {'':>5}"
        )
        for v in self.variants:
            iou = v.iou

            def f(x: Any, spec: str = ".4f") -> str:
                return "-" if x is None else format(x, spec)

            cv = v.opencv
            cv_text = (
                f"box {cv['max_abs_diff_boxes']:.2g} px, score {cv['max_abs_diff_scores']:.2g}"
                if cv.get("loaded")
                else f"fails at {cv.get('stage')}: {cv.get('error_op') or cv.get('error', '?')}"
                if cv
                else "-"
            )
            rows.append(
                f"{v.path.name:<34} {v.precision:<5} {v.map50:>7.4f} {v.delta_points:>+7.2f} {f(iou.get('min')):>8} "
                f"{f(iou.get('p1'), '.3f'):>6} {f(iou.get('median')):>7} {iou.get('lost', 0):>5}  {cv_text}"
            )
        rows.append("PASSED" if self.passed else "FAILED:\n  " + "\n  ".join(self.failures))
        return "\n".join(rows)


def _r(x: float) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), 6)


# -------------------------------------------------------------------------------------------------- pieces
def graph_precision(path: Path) -> str:
    """``int8`` (QuantizeLinear/DequantizeLinear nodes), ``fp16`` (float16 initializers) or ``fp32``.

    Raises:
        ExportError: not a readable ONNX file.
    """
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf DecodeError and friends
        raise ExportError(f"ONNX file {path}: not readable ({type(exc).__name__}: {exc})") from exc
    ops = {n.op_type for n in model.graph.node}
    if ops & {"QuantizeLinear", "DequantizeLinear", "QLinearConv"}:
        return "int8"
    if any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer):
        return "fp16"
    return "fp32"


def match_ious(ref: Any, cand: Any, min_conf: float) -> tuple[np.ndarray, int]:
    """Match reference detections (conf ≥ ``min_conf``) to candidates of the same class.

    Args:
        ref: the PyTorch :class:`Detections` of one image. cand: the ONNX :class:`Detections` of that image.

    Returns:
        (K,) IoUs of the matched pairs (IoU ≥ 0.5) and the number of reference boxes left unmatched.
    """
    from detection.metrics import box_iou

    keep = ref.confidence >= min_conf
    r_xyxy, r_cls, r_conf = ref.xyxy[keep], ref.class_id[keep], ref.confidence[keep]
    if len(r_xyxy) == 0:
        return np.zeros(0), 0
    iou = box_iou(r_xyxy, cand.xyxy) * (r_cls[:, None] == cand.class_id[None, :])
    taken = np.zeros(len(cand.xyxy), dtype=bool)
    out, lost = [], 0
    for i in np.argsort(-r_conf, kind="stable"):
        row = np.where(taken, -1.0, iou[i]) if len(cand.xyxy) else np.zeros(0)
        j = int(row.argmax()) if row.size else -1
        if j < 0 or row[j] < MATCH_IOU:
            lost += 1
            continue
        taken[j] = True
        out.append(row[j])
    return np.asarray(out, dtype=np.float64), lost


_CV_NODE = re.compile(r"Node \[(?P<op>[\w.]+)@(?P<domain>[\w.]*)\]:\(onnx_node!(?P<node>[^)]*)\)")
_CV_LAYER = re.compile(r"/(?P<file>\w+)\.cpp:\d+: error: .*? in function '(?P<func>\w+)'")
_CV_LAYER_OPS = {"pool": "MaxPool/AveragePool", "conv": "Conv", "eltwise": "Add/Mul", "concat": "Concat",
                 "resize": "Resize", "softmax": "Softmax", "quantize": "QuantizeLinear/DequantizeLinear"}  # fmt: skip


def opencv_error_op(text: str) -> str | None:
    """The operator (and node, or OpenCV layer) an OpenCV DNN error message points at, if it names one.

    ``Node [NoSuchOp@domain]:(onnx_node!name)`` → ``NoSuchOp (node name)``;
    ``…/int8layers/pool2_int8_layer.cpp:334: error: … in function 'forward'`` →
    ``MaxPool/AveragePool (OpenCV pool2_int8_layer.cpp, forward)``.
    """
    m = _CV_NODE.search(text)
    if m is not None:
        return f"{m.group('op')} (node {m.group('node')})"
    m = _CV_LAYER.search(text)
    if m is not None and m.group("file") not in {"onnx_importer", "onnx_importer2", "net_impl", "net"}:
        stem = m.group("file")
        op = next((v for k, v in _CV_LAYER_OPS.items() if stem.startswith(k)), stem)
        return f"{op} (OpenCV {stem}.cpp, {m.group('func')})"
    return None


def opencv_parity(path: Path, batch: np.ndarray, reference: np.ndarray, nc: int) -> dict[str, Any]:
    """Run ``path`` in OpenCV's DNN module on ``batch`` (B, 3, H, W) and compare with ``reference`` (B, 4+nc, N).

    Returns:
        ``{"loaded", "opencv", "max_abs_diff_boxes", "max_abs_diff_scores"}`` or, when OpenCV fails,
        ``{"loaded": False, "stage": "load"|"forward", "error", "error_op"}`` naming the operator it stopped at.
    """
    import cv2

    out: dict[str, Any] = {"opencv": cv2.__version__}
    stage = "load"
    try:
        net = cv2.dnn.readNetFromONNX(str(path))
        stage = "forward"
        ys = []
        for start in range(len(batch)):  # one image per call: static and dynamic models alike
            net.setInput(np.ascontiguousarray(batch[start : start + 1]))
            ys.append(np.asarray(net.forward(), dtype=np.float32))
        y = np.concatenate(ys)
    except cv2.error as exc:
        text = str(exc)
        return {**out, "loaded": False, "stage": stage, "error": " ".join(text.split())[-400:],
                "error_op": opencv_error_op(text)}  # fmt: skip
    if y.shape != reference.shape:
        return {**out, "loaded": True, "error": f"output shape {y.shape}, onnxruntime gives {reference.shape}",
                "max_abs_diff_boxes": float("inf"), "max_abs_diff_scores": float("inf")}  # fmt: skip
    diff = np.abs(y - reference)
    return {
        **out,
        "loaded": True,
        "images": len(batch),
        "max_abs_diff_boxes": float(diff[:, :4].max()),
        "max_abs_diff_scores": float(diff[:, 4 : 4 + nc].max()) if nc else 0.0,
    }


# -------------------------------------------------------------------------------------------------- verify
def verify(
    model: Path,
    onnx_files: list[Path],
    data: Path,
    *,
    split: str = "val",
    conf: float = 0.001,
    iou: float = 0.6,
    match_conf: float = 0.25,
    batch: int = 8,
    limit: int | None = None,
    opencv: bool = True,
    opencv_images: int = 2,
    threads: int | None = None,
    gates: Gates | None = None,
) -> VerifyReport:
    """Verify every file of ``onnx_files`` against the checkpoint ``model`` on ``data`` (see module docstring).

    Returns the report whether or not it passed (check ``report.passed``); see :func:`verify_or_raise`.

    Raises:
        ExportError: a missing/corrupt checkpoint or ONNX file, unreadable data, or class names that differ.
    """
    from detection.backends import BackendError
    from detection.evaluate import EvaluateError, ground_truth, load_eval_data
    from detection.images import read_image
    from detection.inference import Detector
    from detection.metrics import MetricsAccumulator
    from detection.model_meta import ModelMetadataError
    from detection.torch_backend import TorchBackend
    from onnx_export.source import from_file

    gates = gates or Gates()
    if not onnx_files:
        raise ExportError("verify: no ONNX file given (--onnx FILE, repeatable)")
    source = from_file(Path(model))
    try:
        eval_data = load_eval_data(Path(data), split)
    except EvaluateError as exc:
        raise ExportError(f"verify data {data}: {exc}") from exc
    samples = eval_data.samples[:limit] if limit else eval_data.samples
    names = [source.names[i] for i in range(len(source.names))]
    if names != eval_data.names:
        raise ExportError(
            f"class names differ: model {model} has {names}, data {eval_data.source} has {eval_data.names}"
        )
    kwargs: dict[str, Any] = {"conf": conf, "iou": iou, "max_det": 300, "batch_size": batch}

    variants: list[tuple[VariantReport, Any]] = []
    for path in onnx_files:
        path = Path(path)
        if not path.is_file():
            raise ExportError(f"ONNX file {path} does not exist")
        precision = graph_precision(path)
        try:
            det = Detector.from_onnx(
                path, providers=["CPUExecutionProvider"], intra_op_threads=threads, **kwargs
            )
        except (BackendError, ModelMetadataError) as exc:
            raise ExportError(f"ONNX file {path}: {exc}") from exc
        report = VariantReport(path, precision, det.backend.dynamic_batch, tuple(det.input_hw))  # type: ignore[arg-type]
        if det.names != source.names:
            raise ExportError(
                f"ONNX file {path}: class names {det.names} differ from {model}'s {source.names}"
            )
        claimed = (det.meta.extra.get("skyinspect.export") or {}).get("precision")
        if claimed and claimed != precision:
            report.failures.append(f"metadata says {claimed}, the graph is {precision}")
        if det.meta.input_kind != source.input_kind or (
            source.input_kind == "thermal"
            and tuple(det.meta.thermal_window_c) != tuple(source.thermal_window_c)
        ):
            report.failures.append(
                f"metadata input {det.meta.input_kind} {det.meta.thermal_window_c} differs from the training set's "
                f"{source.input_kind} {source.thermal_window_c}"
            )
        variants.append((report, det))

    if threads:
        import torch

        torch.set_num_threads(threads)
    backend = TorchBackend(source.weights, device="cpu")
    base_meta = backend.model_meta()
    torch_dets: dict[tuple[int, int], Any] = {}
    for report, _ in variants:
        hw = report.input_hw
        if hw not in torch_dets:
            meta = dataclasses.replace(base_meta, imgsz=hw, input_kind=source.input_kind,
                                       thermal_window_c=source.thermal_window_c)  # fmt: skip
            torch_dets[hw] = Detector(backend, meta, **kwargs)

    nc = len(names)
    torch_acc = {hw: MetricsAccumulator(names) for hw in torch_dets}
    accs = [MetricsAccumulator(names) for _ in variants]
    ious: list[list[np.ndarray]] = [[] for _ in variants]
    lost = [0] * len(variants)
    refs = [0] * len(variants)
    first_batch: list[np.ndarray] = []
    bar = tqdm(total=len(samples), desc="verify", unit="img", disable=None)
    for start in range(0, len(samples), batch):
        chunk = samples[start : start + batch]
        images = [read_image(s.path) for s in chunk]
        if len(first_batch) < opencv_images:
            first_batch.extend(images[: opencv_images - len(first_batch)])
        truth = []
        for s, img in zip(chunk, images, strict=True):
            try:
                truth.append(ground_truth(s, img.shape[1], img.shape[0], nc))
            except EvaluateError as exc:
                raise ExportError(str(exc)) from exc
        ref_found = {hw: d.predict_batch(images) for hw, d in torch_dets.items()}
        for hw, found in ref_found.items():
            for dets, (gx, gc) in zip(found, truth, strict=True):
                torch_acc[hw].add(dets.xyxy, dets.confidence, dets.class_id, gx, gc)
        for k, (report, det) in enumerate(variants):
            found = det.predict_batch(images)
            for ref, dets, (gx, gc) in zip(ref_found[report.input_hw], found, truth, strict=True):
                accs[k].add(dets.xyxy, dets.confidence, dets.class_id, gx, gc)
                matched, n_lost = match_ious(ref, dets, match_conf)
                ious[k].append(matched)
                lost[k] += n_lost
                refs[k] += int((ref.confidence >= match_conf).sum())
        bar.update(len(chunk))
    bar.close()

    torch_metrics = {hw: acc.compute() for hw, acc in torch_acc.items()}
    for k, (report, det) in enumerate(variants):
        m = accs[k].compute()
        ref_m = torch_metrics[report.input_hw]
        report.map50, report.map50_95 = m.map50, m.map50_95
        report.delta_points = 100.0 * (m.map50 - ref_m.map50)
        all_iou = np.concatenate(ious[k]) if ious[k] else np.zeros(0)
        report.iou = {
            "reference_boxes": refs[k],
            "matched": int(all_iou.size),
            "lost": lost[k],
            "min": float(all_iou.min()) if all_iou.size else None,
            "p1": float(np.percentile(all_iou, 1)) if all_iou.size else None,
            "median": float(np.median(all_iou)) if all_iou.size else None,
        }
        limit_pts = gates.map50_points(report.precision)
        if not abs(report.delta_points) <= limit_pts:
            report.failures.append(
                f"{report.precision} mAP50 {m.map50:.4f} vs PyTorch {ref_m.map50:.4f}: "
                f"{report.delta_points:+.2f} points, allowed ±{limit_pts}"
            )
        if report.precision == "fp32":
            if all_iou.size and all_iou.min() < gates.fp32_min_iou:
                report.failures.append(
                    f"fp32 matched-box IoU min {all_iou.min():.4f} < {gates.fp32_min_iou} (p1 {report.iou['p1']:.4f})"
                )
            if lost[k]:
                report.failures.append(
                    f"fp32 lost {lost[k]} of {refs[k]} PyTorch detections (conf ≥ {match_conf}): no same-class box "
                    f"with IoU ≥ {MATCH_IOU}"
                )
            if refs[k] == 0:
                logger.warning("%s: PyTorch found no box with conf ≥ %s; the IoU gate had nothing to check",
                               report.path.name, match_conf)  # fmt: skip
        if opencv and first_batch:
            prepared, _ = det.prepare(first_batch)
            reference = det.infer(prepared)
            report.opencv = opencv_parity(report.path, prepared, reference, nc)
            if report.precision == "fp32":
                cv = report.opencv
                box_tol = gates.opencv_box_tol_rel * max(report.input_hw)
                if not cv.get("loaded"):
                    report.failures.append(
                        f"OpenCV DNN cannot load it: {cv.get('error_op') or cv.get('error')}"
                    )
                elif cv.get("error"):
                    report.failures.append(f"OpenCV DNN: {cv['error']}")
                elif cv["max_abs_diff_boxes"] > box_tol or cv["max_abs_diff_scores"] > gates.opencv_score_tol:
                    report.failures.append(
                        f"OpenCV DNN output differs: boxes {cv['max_abs_diff_boxes']:.3g} px (≤ {box_tol:.3g}), "
                        f"scores {cv['max_abs_diff_scores']:.3g} (≤ {gates.opencv_score_tol})"
                    )
    first_hw = next(iter(torch_metrics))
    return VerifyReport(
        model=Path(model),
        data=Path(eval_data.source),
        split=split,
        images=len(samples),
        dataset_version=eval_data.version,
        torch_map50=torch_metrics[first_hw].map50,
        torch_map50_95=torch_metrics[first_hw].map50_95,
        variants=[r for r, _ in variants],
        settings={
            "conf": conf,
            "iou": iou,
            "match_conf": match_conf,
            "match_iou": MATCH_IOU,
            "batch": batch,
            "limit": limit,
            "opencv": opencv,
            "opencv_images": opencv_images,
        },
        gates=gates,
    )


def verify_or_raise(*args: Any, **kwargs: Any) -> VerifyReport:
    """:func:`verify`, raising :class:`VerificationFailed` (every failure listed) when a gate fails."""
    report = verify(*args, **kwargs)
    if not report.passed:
        raise VerificationFailed("export verification failed:\n  " + "\n  ".join(report.failures))
    return report


def write_report(report: VerifyReport, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
    return path

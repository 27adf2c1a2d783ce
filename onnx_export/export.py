"""Export a detection checkpoint to the ONNX files the on-site runtime runs: FP32, FP16 and INT8, static or
dynamic-batch, each self-describing.

    source = resolve("runs/pv-rgb/weights/best.pt")
    result = export_model(source, ExportConfig(out=Path("export"), dynamic_batch=True, half=True,
                                               int8=True, calib=Path("sets/pv-rgb/data.yaml")))
    [v.path for v in result.variants]   # pv-rgb-fp32.onnx, pv-rgb-fp32-dynbatch.onnx, pv-rgb-fp16.onnx, ...

How each file is made:

* **FP32**: ultralytics' ONNX export (TorchScript exporter, pinned opset :data:`DEFAULT_OPSET`, ``nms=False``: the
  runtime's own decode/NMS runs on the raw ``(B, 4 + nc, anchors)`` output), then ``onnxslim.slim`` (called here,
  so a simplifier failure is an error rather than ultralytics' warning), then the DFL head's ``Softmax(axis=1)``
  rewritten as reductions along that axis (:func:`onnx_export.graph.decompose_softmax`: the same values to float
  rounding; onnxruntime's CPU kernel spent 36 % of the default pv-thermal model's time in that one node). The dynamic-batch variant is exported
  with dynamic axes and then its height and width are pinned to ``imgsz``, so only the batch is dynamic (batched
  tiles; a TensorRT profile needs only a batch range).
* **FP16**: the FP32 file converted by ``onnxruntime.transformers.float16.convert_float_to_float16`` with
  ``keep_io_types=True`` (float32 input and output; ultralytics' own ``half=True`` needs CUDA), then put back into
  topological order.
* **INT8**: ``onnxruntime.quantization.quantize_static`` in QDQ format, per-channel symmetric int8 weights and
  symmetric int8 activations (zero point 0, as TensorRT's explicit quantization requires), calibrated on real
  training images of the model's domain prepared by the inference core (see :mod:`onnx_export.calibration`). The
  detection head's decode (DFL, box/score arithmetic, concat), by default the last conv of each box/class branch
  and the stem conv stay in float (``int8_exclude``, see :data:`onnx_export.graph.EXCLUDE_LEVELS`), and by
  default only convolutions are quantized (``int8_ops="conv"``; SiLU, concat, resize and pooling run in float).
  Measured on the tiny test model (12 val images, mAP50 0.147): exclude none → 0.000, decode → 0.032, head → 0.113
  (all ops), head+stem with all ops → 0.124, head+stem with conv only → 0.161.

Every file carries ultralytics' metadata keys plus the ``skyinspect.*`` keys :mod:`detection.model_meta` reads;
``skyinspect.export`` records how the file was made (precision, opset, shapes, calibration, tool versions).
An ``export.json`` beside the files lists them with their sha256.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from detection import taxonomy
from onnx_export import graph
from onnx_export.errors import ExportError
from onnx_export.source import ModelSource, sha256_file

logger = logging.getLogger(__name__)

DEFAULT_OPSET = 17
"""Opset 17: written by every onnx ≥ 1.12, read by onnxruntime, OpenCV 5 and TensorRT 8.6 and 10 (8.6 reads up to
17), and below 21, which onnxruntime's static INT8 quantization rejects."""
MIN_OPSET = 11
EXPORT_FORMAT = "skyinspect-export/1"
NORMALISATION = "0-1"
"""RGB channel order, ``pixel / 255``, no mean/std: what :func:`detection.preprocess.to_tensor` does."""
PRECISIONS = ("fp32", "fp16", "int8")
ARTIFACT_KIND = {"fp32": "onnx", "fp16": "onnx-fp16", "int8": "onnx-int8"}
CALIBRATE_METHODS = ("minmax", "percentile", "entropy")
INT8_OPS = {"conv": ["Conv"], "all": None}
INT8_ACTIVATIONS = ("s8", "u8")
"""``s8``: symmetric int8 activations (zero point 0), what TensorRT's explicit quantization takes — the Jetson.
``u8``: asymmetric uint8 activations, onnxruntime's fast path on x86 CPUs without VNNI (AVX2 only): measured 1.28x
FP32 at 320 px on this machine's AVX2 EPYC, where ``s8`` ran at 0.5x."""
FP16_CONVERTER = "onnxruntime.transformers.float16.convert_float_to_float16(keep_io_types=True)"
TOOLS = ("torch", "ultralytics", "onnx", "onnxruntime", "onnxslim", "opencv-python", "numpy")


@dataclass(frozen=True)
class ExportConfig:
    """What to export.

    Attributes:
        out: folder for the ONNX files and ``export.json``.
        imgsz: (h, w) input size (default: the training size); multiples of the model's stride.
        opset: ONNX opset (:data:`DEFAULT_OPSET`).
        dynamic_batch: also write dynamic-batch variants (every requested precision).
        half: also write FP16 variants.
        int8: also write INT8 variants (needs ``calib``).
        calib: calibration data: the model's training set (data.yaml or folder).
        calib_split: split the calibration images come from.
        calib_count: at most this many calibration images (a seeded sample).
        calib_method: ``minmax`` (default), ``percentile`` or ``entropy``.
        int8_exclude: nodes kept in float: ``none``, ``decode``, ``head`` or ``head+stem`` (default).
        int8_ops: ``conv`` (default: only convolutions are quantized; activations, concat, resize, pooling
            run in float between them) or ``all`` (every operator onnxruntime can quantize).
        int8_activations: ``s8`` (default, TensorRT) or ``u8`` (CPU sites), see :data:`INT8_ACTIVATIONS`.
        seed: calibration sample seed.
    """

    out: Path
    imgsz: tuple[int, int] | None = None
    opset: int = DEFAULT_OPSET
    dynamic_batch: bool = False
    half: bool = False
    int8: bool = False
    calib: Path | None = None
    calib_split: str = "train"
    calib_count: int = 128
    calib_method: str = "minmax"
    int8_exclude: str = "head+stem"
    int8_ops: str = "conv"
    int8_activations: str = "s8"
    seed: int = 0


@dataclass(frozen=True)
class Variant:
    """One exported file."""

    path: Path
    precision: str
    dynamic_batch: bool
    sha256: str
    bytes: int
    export: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        """The registry artifact kind (``onnx``, ``onnx-fp16``, ``onnx-int8``)."""
        return ARTIFACT_KIND[self.precision]

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.path.name, "precision": self.precision, "dynamic_batch": self.dynamic_batch,
                "sha256": self.sha256, "bytes": self.bytes, "kind": self.kind}  # fmt: skip


@dataclass(frozen=True)
class ExportResult:
    source: ModelSource
    variants: list[Variant]
    record_path: Path
    record: dict[str, Any]


# -------------------------------------------------------------------------------------------------- checks
def check_opset(opset: int) -> int:
    """Raises ExportError unless ``MIN_OPSET <= opset <=`` the newest opset the installed onnx writes."""
    import onnx

    newest = int(onnx.defs.onnx_opset_version())
    if not isinstance(opset, int) or opset < MIN_OPSET or opset > newest:
        raise ExportError(
            f"opset {opset}: the installed onnx {onnx.__version__} writes opsets {MIN_OPSET}..{newest} "
            f"(skyinspect pins {DEFAULT_OPSET})"
        )
    return opset


def check_imgsz(imgsz: tuple[int, int], stride: int) -> tuple[int, int]:
    h, w = (int(imgsz[0]), int(imgsz[1]))
    if h < stride or w < stride or h % stride or w % stride:
        raise ExportError(
            f"imgsz {h}x{w}: height and width must be positive multiples of the stride {stride}"
        )
    return h, w


def tool_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in TOOLS:
        try:
            out[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            out[name] = None
    return out


def variant_name(domain: taxonomy.Domain, precision: str, dynamic_batch: bool) -> str:
    """``pv-rgb-fp32.onnx``, ``pv-rgb-int8-dynbatch.onnx``…"""
    return f"{domain.value}-{precision}{'-dynbatch' if dynamic_batch else ''}.onnx"


# -------------------------------------------------------------------------------------------------- metadata
def skyinspect_metadata(source: ModelSource, export: dict[str, Any]) -> dict[str, str]:
    """The ``skyinspect.*`` keys (see :data:`detection.model_meta.SKYINSPECT_KEYS`), as strings."""
    from detection.model_meta import PREFIX, slice_tile_for

    values = {
        "domain": source.domain.value,
        "taxonomy_version": str(source.card.get("taxonomy_version") or taxonomy.TAXONOMY_VERSION),
        "input_kind": source.input_kind,
        "thermal_window_c": json.dumps([float(v) for v in source.thermal_window_c]),
        "normalisation": NORMALISATION,
        "model_version": source.model_version,
        "dataset_version": source.dataset_version or "unknown",
        "metrics": json.dumps(source.metrics, sort_keys=True, default=str),
        "export": json.dumps(export, sort_keys=True, default=str),
    }
    imgsz = export.get("imgsz")
    if imgsz:
        tile = slice_tile_for((int(imgsz[0]), int(imgsz[1])), source.imgsz[0], source.train_tile)
        if tile is not None:
            values["slice_tile"] = json.dumps(list(tile))
    return {PREFIX + k: v for k, v in values.items()}


# -------------------------------------------------------------------------------------------------- steps
def export_fp32(
    source: ModelSource, imgsz: tuple[int, int], opset: int, dynamic_batch: bool, workdir: Path
) -> tuple[Any, list[str]]:
    """ultralytics ONNX export + :func:`finish_graph` → (the ``onnx.ModelProto`` with ultralytics' metadata kept,
    the graph edits made).

    Raises:
        ExportError: the exporter or simplifier failed.
    """
    import onnx

    from detection.offline import ensure_offline

    ensure_offline()
    from ultralytics import YOLO

    work = Path(tempfile.mkdtemp(prefix="export-", dir=workdir))
    try:
        weights = (
            work / "model.pt"
        )  # ultralytics writes the .onnx beside the weights: never beside the user's
        shutil.copyfile(source.weights, weights)
        try:
            with contextlib.chdir(work):
                out = YOLO(str(weights), task="detect").export(
                    format="onnx", imgsz=list(imgsz), opset=opset, simplify=False, dynamic=dynamic_batch,
                    batch=1, nms=False, device="cpu", verbose=False,
                )  # fmt: skip
        except Exception as exc:  # torch.onnx / ultralytics raise many types
            raise ExportError(
                f"{source.weights}: ONNX export (opset {opset}) failed: {type(exc).__name__}: {exc}"
            ) from exc
        model = onnx.load(str(out))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if dynamic_batch:
        graph.pin_spatial_dims(model, imgsz)
    return finish_graph(model, str(source.weights))


def finish_graph(model: Any, name: str) -> tuple[Any, list[str]]:
    """What follows ultralytics' exporter: ``onnxslim.slim``, then :func:`graph.decompose_softmax` → (the model,
    the graph edits made, in words — recorded in the file's ``skyinspect.export``).

    Raises:
        ExportError: the simplifier failed (``name`` says which model).
    """
    import onnxslim

    try:
        slim = onnxslim.slim(model)
    except Exception as exc:
        raise ExportError(f"{name}: onnxslim failed: {type(exc).__name__}: {exc}") from exc
    if slim is None:
        raise ExportError(f"{name}: onnxslim returned nothing")
    rewritten = graph.decompose_softmax(slim)
    if rewritten:
        logger.info("softmax over a non-last axis rewritten as reductions: %s", ", ".join(rewritten))
    return slim, [f"{n}: softmax over a non-last axis as reductions (graph.decompose_softmax)" for n in rewritten]


def to_fp16(model: Any) -> Any:
    """FP32 ``ModelProto`` → FP16 weights and compute, float32 input/output (:data:`FP16_CONVERTER`)."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    meta = graph.get_metadata(model)
    half = convert_float_to_float16(model, keep_io_types=True)
    graph.topological_sort(half.graph)
    graph.set_metadata(half, meta)
    return half


def to_int8(
    fp32_path: Path,
    out_path: Path,
    calib: Any,
    method: str,
    exclude: str,
    ops: str,
    workdir: Path,
    activations: str = "s8",
) -> dict[str, Any]:
    """Quantize ``fp32_path`` into ``out_path`` (QDQ, see module docstring) → the int8 part of the export record.

    Raises:
        ExportError: calibration or quantization failed.
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from detection.inference import Detector
    from onnx_export.calibration import DetectorCalibrationReader

    methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
               "entropy": CalibrationMethod.Entropy}  # fmt: skip
    if method not in methods:
        raise ExportError(f"calibration method {method!r}: expected one of {', '.join(CALIBRATE_METHODS)}")
    if ops not in INT8_OPS:
        raise ExportError(f"int8 ops {ops!r}: expected one of {', '.join(INT8_OPS)}")
    if activations not in INT8_ACTIVATIONS:
        raise ExportError(f"int8 activations {activations!r}: expected one of {', '.join(INT8_ACTIVATIONS)}")
    symmetric = activations == "s8"
    act_type = QuantType.QInt8 if symmetric else QuantType.QUInt8
    pre = workdir / f".{out_path.stem}.pre.onnx"
    # Symbolic shape inference cannot finish on the pinned dynamic-batch graph; onnx's own inference suffices.
    quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
    pre_model = onnx.load(str(pre))
    excluded = graph.head_nodes_to_exclude(pre_model, exclude)
    detector = Detector.from_onnx(fp32_path, providers=["CPUExecutionProvider"])
    reader = DetectorCalibrationReader(detector, calib.images, detector.backend.session.get_inputs()[0].name)
    try:
        quantize_static(
            str(pre), str(out_path), reader,
            quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=act_type, weight_type=QuantType.QInt8,
            calibrate_method=methods[method], nodes_to_exclude=excluded,
            extra_options={"ActivationSymmetric": symmetric, "WeightSymmetric": True},
            **({"op_types_to_quantize": INT8_OPS[ops]} if INT8_OPS[ops] else {}),
        )  # fmt: skip
    except Exception as exc:
        raise ExportError(f"{fp32_path}: INT8 quantization failed: {type(exc).__name__}: {exc}") from exc
    finally:
        pre.unlink(missing_ok=True)
    return {
        "tool": "onnxruntime.quantization.quantize_static",
        "format": "QDQ",
        "per_channel": True,
        "activation_type": "QInt8" if symmetric else "QUInt8",
        "weight_type": "QInt8",
        "activation_symmetric": symmetric,
        "calibrate_method": method,
        "calibration": {
            "data": str(calib.source),
            "dataset_version": calib.dataset_version,
            "split": calib.split,
            "count": reader.fed,
            "available": calib.available,
        },
        "quantized_ops": INT8_OPS[ops] or "all",
        "exclude_level": exclude,
        "excluded_nodes": excluded,
    }


def _save(model: Any, path: Path, source: ModelSource, export: dict[str, Any]) -> Variant:
    """Write metadata, check the graph, save, and read the metadata back through ModelMeta."""
    import onnx

    from detection.model_meta import ModelMeta, ModelMetadataError

    graph.set_metadata(model, skyinspect_metadata(source, export))
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"{path.name}: the exported graph is not valid ONNX: {exc}") from exc
    tmp = path.with_name(f".{path.name}.part")
    onnx.save(model, str(tmp))
    tmp.replace(path)
    try:
        meta = ModelMeta.from_onnx(path)
    except ModelMetadataError as exc:  # our own metadata must parse: a bug if it does not
        raise ExportError(f"{path}: written metadata does not parse: {exc}") from exc
    if meta.names != source.names or meta.domain is not source.domain:
        raise ExportError(
            f"{path}: metadata read back {meta.names}/{meta.domain}, expected {source.names}/{source.domain}"
        )
    return Variant(
        path, export["precision"], export["dynamic_batch"], sha256_file(path), path.stat().st_size, export
    )


def export_model(source: ModelSource, cfg: ExportConfig) -> ExportResult:
    """Export ``source`` as configured (see module docstring).

    Raises:
        ExportError: bad opset / imgsz, INT8 without or with unusable calibration data, exporter failures.
    """
    import onnx

    opset = check_opset(cfg.opset)
    imgsz = check_imgsz(cfg.imgsz or source.imgsz, source.stride)
    if cfg.calib_method not in CALIBRATE_METHODS:
        raise ExportError(
            f"calibration method {cfg.calib_method!r}: expected one of {', '.join(CALIBRATE_METHODS)}"
        )
    if cfg.int8_exclude not in graph.EXCLUDE_LEVELS:
        raise ExportError(
            f"int8 exclude {cfg.int8_exclude!r}: expected one of {', '.join(graph.EXCLUDE_LEVELS)}"
        )
    calib = None
    if cfg.int8:
        if cfg.calib is None:
            raise ExportError("--int8 needs calibration data (--calib DATA: the model's training set)")
        from onnx_export.calibration import load_calibration_set

        calib = load_calibration_set(
            cfg.calib, source.names, source.domain, source.input_kind, source.thermal_window_c,
            split=cfg.calib_split, count=cfg.calib_count, seed=cfg.seed,
        )  # fmt: skip
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    tools = tool_versions()
    created = datetime.now(UTC).isoformat(timespec="seconds")
    base = {"format": EXPORT_FORMAT, "opset": opset, "imgsz": list(imgsz), "created": created, "tools": tools,
            "source_sha256": source.sha256, "simplifier": f"onnxslim {tools.get('onnxslim')}", "nms": False}  # fmt: skip
    variants: list[Variant] = []
    with tempfile.TemporaryDirectory(prefix=".work-", dir=out) as tmp:
        workdir = Path(tmp)
        for dynamic in [False, True] if cfg.dynamic_batch else [False]:
            logger.info("exporting %s: fp32 %s", source.weights, "dynamic batch" if dynamic else "static")
            fp32, edits = export_fp32(source, imgsz, opset, dynamic, workdir)
            common = {**base, "dynamic_batch": dynamic, "graph_edits": edits}
            fp32_variant = _save(fp32, out / variant_name(source.domain, "fp32", dynamic), source,
                                 {**common, "precision": "fp32"})  # fmt: skip
            variants.append(fp32_variant)
            if cfg.half:
                logger.info("converting to fp16 (%s)", FP16_CONVERTER)
                half = to_fp16(onnx.load(str(fp32_variant.path)))
                variants.append(_save(half, out / variant_name(source.domain, "fp16", dynamic), source,
                                      {**common, "precision": "fp16", "fp16": {"tool": FP16_CONVERTER}}))  # fmt: skip
            if calib is not None:
                logger.info("quantizing to int8 on %d calibration images", len(calib.images))
                path = out / variant_name(source.domain, "int8", dynamic)
                raw = workdir / f"{path.stem}.raw.onnx"
                int8 = to_int8(
                    fp32_variant.path,
                    raw,
                    calib,
                    cfg.calib_method,
                    cfg.int8_exclude,
                    cfg.int8_ops,
                    workdir,
                    cfg.int8_activations,
                )
                model = onnx.load(str(raw))
                graph.set_metadata(model, graph.get_metadata(onnx.load(str(fp32_variant.path))))
                variants.append(_save(model, path, source, {**common, "precision": "int8", "int8": int8}))
    record = {
        "format": EXPORT_FORMAT,
        "created": created,
        "source": {
            "weights": str(source.weights),
            "sha256": source.sha256,
            "domain": source.domain.value,
            "model_version": source.model_version,
            "dataset_version": source.dataset_version,
        },
        "settings": {
            "opset": opset,
            "imgsz": list(imgsz),
            "dynamic_batch": cfg.dynamic_batch,
            "half": cfg.half,
            "int8": cfg.int8,
            "calib": str(cfg.calib) if cfg.calib else None,
            "calib_split": cfg.calib_split,
            "calib_count": cfg.calib_count,
            "calib_method": cfg.calib_method,
            "int8_exclude": cfg.int8_exclude,
            "int8_ops": cfg.int8_ops,
            "int8_activations": cfg.int8_activations,
        },
        "tools": tools,
        "variants": [v.to_dict() for v in variants],
    }
    record_path = out / "export.json"
    record_path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    logger.info("exported %s", ", ".join(v.path.name for v in variants))
    return ExportResult(source, variants, record_path, record)


def check_register_target(registry: Any, domain: str, version: str, source: ModelSource) -> dict[str, Any]:
    """The card of the registry version exports of ``source`` may be stored in (checked before exporting).

    The version's ``best.pt`` must be the checkpoint being exported (same sha256), so ONNX files are never
    attached to a different model.

    Raises:
        ExportError: unknown version, another domain, or the version's weights differ from ``source``.
    """
    from detection.registry import RegistryError

    if taxonomy.domain(domain) is not source.domain:
        raise ExportError(f"--register {domain}/{version}: the model is a {source.domain.value} model")
    try:
        card = registry.card(domain, version)
    except RegistryError as exc:
        raise ExportError(f"--register {domain}/{version}: {exc}") from exc
    pt = [a for a in card.get("artifacts", {}).values() if a.get("kind") == "pytorch"]
    if pt and pt[0].get("sha256") != source.sha256:
        raise ExportError(
            f"--register {domain}/{version}: that version's weights have sha256 {pt[0].get('sha256')}, the exported "
            f"checkpoint {source.weights} has {source.sha256}; export the version's own weights"
        )
    return card


def register_variants(registry: Any, domain: str, version: str, result: ExportResult) -> dict[str, Any]:
    """Store every exported file as an artifact of a registry version (sha256 in the card) → the card.

    Raises:
        ExportError: see :func:`check_register_target`; a failed upload.
    """
    from detection.registry import RegistryError

    card = check_register_target(registry, domain, version, result.source)
    for v in result.variants:
        info = {
            "precision": v.precision,
            "dynamic_batch": v.dynamic_batch,
            "opset": v.export.get("opset"),
            "imgsz": v.export.get("imgsz"),
        }
        try:
            card = registry.add_artifact(domain, version, v.path, v.kind, name=v.path.name, info=info)
        except RegistryError as exc:
            raise ExportError(f"--register {domain}/{version}: {exc}") from exc
    return card

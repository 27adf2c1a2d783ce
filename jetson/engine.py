"""Opening a model on the device: the shared :class:`~detection.inference.Detector` with edge provider settings.

Provider choice is the core's (:func:`detection.backends.choose_providers`): TensorRT (FP16, engine and timing
caches in ``cache_dir``) → CUDA → CPU, keeping what onnxruntime offers; this module adds what is edge-specific:

* INT8 in TensorRT only when the model can carry it: a QDQ model (explicit ``QuantizeLinear`` /
  ``DequantizeLinear`` nodes), or a calibration table shipped next to it (``<model>.calib`` or
  ``calibration.flatbuffers`` / ``calibration.cache``). ``int8: true`` forces it, ``false`` never.
* the configured ``provider_options`` merged over those defaults,
* the frame runner: whole-frame :class:`Detector` or :class:`~detection.slicing.SlicedDetector` per frame size.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from detection.detections import Detections
from detection.inference import Detector
from detection.model_meta import DEFAULT_CONF, resolve_conf
from detection.slicing import SlicedDetector
from jetson.config import EdgeConfig

logger = logging.getLogger(__name__)

TRT = "TensorrtExecutionProvider"
CALIBRATION_NAMES = ("calibration.flatbuffers", "calibration.cache", "calibration.table")


def is_qdq_model(path: Path) -> bool:
    """Whether the ONNX file holds QuantizeLinear/DequantizeLinear nodes (op types are plain strings in it)."""
    found: set[bytes] = set()
    tail = b""
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            data = tail + chunk
            for op in (b"QuantizeLinear", b"DequantizeLinear"):
                if op in data:
                    found.add(op)
            if len(found) == 2:
                return True
            tail = data[-32:]
    return False


def calibration_table(path: Path) -> Path | None:
    """A TensorRT calibration table shipped with the model, if any."""
    candidates = [path.with_suffix(".calib"), *(path.parent / n for n in CALIBRATION_NAMES)]
    return next((c for c in candidates if c.is_file()), None)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def provider_options_for(model: Path, cfg: EdgeConfig) -> dict[str, dict[str, Any]]:
    """Per-provider options: INT8 settings for TensorRT when applicable, then the config's own options."""
    options: dict[str, dict[str, Any]] = {}
    table = calibration_table(model)
    qdq = is_qdq_model(model) if cfg.int8 == "auto" else False
    int8 = cfg.int8 == "true" or (cfg.int8 == "auto" and (qdq or table is not None))
    if int8:
        trt: dict[str, Any] = {"trt_int8_enable": True}
        if table is not None and not qdq:
            trt["trt_int8_calibration_table_name"] = table.name
            trt["trt_int8_use_native_calibration_table"] = table.name != "calibration.flatbuffers"
        options[TRT] = trt
    for name, extra in cfg.provider_options.items():
        options[name] = {**options.get(name, {}), **extra}
    return options


def open_detector(model: Path, cfg: EdgeConfig, cache_dir: Path) -> Detector:
    """The shared Detector on ``model`` with the config's thresholds and providers (choice logged). The confidence
    threshold is the config's ``conf``, else the model's operating point (``skyinspect.conf``), else 0.25
    (:func:`detection.model_meta.resolve_conf`); the log line says which it was (``config`` / ``model`` /
    ``default``).

    Raises:
        BackendError: the file cannot be loaded or a configured provider is unavailable.
        ModelMetadataError: the model's metadata lacks what the runtime needs (the keys are named).
    """
    options = provider_options_for(model, cfg)
    detector = Detector.from_onnx(
        model,
        conf=DEFAULT_CONF if cfg.conf is None else cfg.conf,
        iou=cfg.iou,
        max_det=cfg.max_det,
        batch_size=cfg.batch_size,
        providers=list(cfg.providers) if cfg.providers else None,
        provider_options=options or None,
        intra_op_threads=cfg.intra_op_threads,
        cache_dir=cache_dir,
        fp16=cfg.fp16,
        backend=cfg.backend,
        hint=cfg.performance_hint,
    )
    detector.conf, conf_from = resolve_conf(cfg.conf, detector.meta)
    logger.info(
        "model %s: providers %s, input %s, %d classes (%s), int8 %s, conf %.3g (from %s)",
        model,
        detector.backend.providers,
        detector.input_hw,
        detector.meta.nc,
        detector.meta.domain.value if detector.meta.domain else "no domain",
        bool(options.get(TRT, {}).get("trt_int8_enable")) and TRT in detector.backend.providers,
        detector.conf,
        conf_from,
    )
    return detector


@dataclass
class FrameRunner:
    """Whole-frame or sliced detection, chosen per frame from ``tiling`` settings."""

    detector: Detector
    sliced: SlicedDetector
    mode: str
    min_pixels: int

    @classmethod
    def build(cls, detector: Detector, cfg: EdgeConfig) -> FrameRunner:
        t = cfg.tiling
        sliced = SlicedDetector(
            detector,
            tile=t.tile,
            overlap=t.overlap,
            batch_size=cfg.batch_size,
            full_frame=t.full_frame,
            merge=t.merge,  # type: ignore[arg-type]
        )
        return cls(detector, sliced, t.mode, t.min_pixels)

    def use_slicing(self, shape: tuple[int, ...]) -> bool:
        """Whether a frame of ``shape`` (H, W[, C]) is sliced."""
        if self.mode == "always":
            return True
        if self.mode == "never":
            return False
        return int(shape[0]) * int(shape[1]) > self.min_pixels

    def decode(
        self, data: bytes, source: str | Path = "<bytes>"
    ) -> tuple[np.ndarray, tuple[int, int] | None]:
        """Image bytes → (pixels, the full (h, w) when reduced): a JPEG this runner detects whole is decoded at the
        scale the model needs (:meth:`detection.inference.Detector.decode_frame`), sliced frames at full size."""
        return self.detector.decode_frame(data, source, lambda s: not self.use_slicing(s))

    def detect_encoded(self, data: bytes, source: str | Path = "<bytes>") -> tuple[Detections, bool]:
        """Image bytes → (Detections in the frame's pixels, whether it was sliced), decoding as the folder source
        does (:meth:`jetson.pipeline.Pipeline.decode`: a JPEG detected whole at the scale the model needs).

        Raises:
            detection.images.ImageReadError: undecodable bytes.
        """
        image, full = self.decode(data, source)
        if full is not None:
            return self.detector.predict_prepared([self.detector.prepare_one(image, full)])[0], False
        return self(image)

    def __call__(self, frame: np.ndarray) -> tuple[Detections, bool]:
        """(H, W[, 3]) frame → (Detections in frame pixels, whether it was sliced)."""
        if self.use_slicing(frame.shape):
            return self.sliced.predict(frame), True
        return self.detector.predict(frame), False

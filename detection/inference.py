"""``Detector``: the numpy inference core, ``prepare → infer → decode → rescale``, over any :class:`Backend`.

Used as it is by the cloud pipeline and the on-site runtime; imports no torch, ultralytics or dagster.

    det = Detector.from_onnx("wind-rgb.onnx", conf=0.25)
    found = det.predict(read_image("DJI_0001.JPG"))        # Detections in frame pixels
    records = found.to_records(det.names)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from detection.backends import Backend, open_backend
from detection.detections import Detections
from detection.images import decode_image, decode_reduction, jpeg_header
from detection.model_meta import ModelMeta
from detection.postprocess import decode
from detection.preprocess import (
    LetterboxInfo,
    letterbox,
    letterbox_params,
    to_model_image,
    to_tensor,
    unletterbox_boxes,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreparedImage:
    """One image made ready for the model ahead of time (e.g. in a reader thread, :mod:`detection.prefetch`).

    Attributes:
        tensor: (3, h, w) float32 RGB 0..1, letterboxed to the detector's input.
        info: how it was letterboxed (maps boxes back to the image's pixels).
    """

    tensor: np.ndarray
    info: LetterboxInfo


class Detector:
    """Runs a detection model on whole images.

    Args:
        backend: the engine (:class:`~detection.backends.OrtBackend`, :class:`~detection.backends.OpenVinoBackend`,
            or a torch backend in the cloud).
        meta: the model's metadata (class names, input size, stride, input kind, thermal window).
        conf: keep detections scoring strictly above this.
        iou: NMS IoU threshold.
        max_det: at most this many detections per image.
        batch_size: images per backend call in :meth:`predict_batch` (static-batch models are chunked by the backend).
        agnostic: class-agnostic NMS.
        imgsz: (h, w) input size for models with dynamic spatial dims (default: the metadata's ``imgsz``).

    Raises:
        ValueError: thresholds outside 0..1, or an input size the model's static input contradicts.
    """

    def __init__(
        self,
        backend: Backend,
        meta: ModelMeta,
        conf: float = 0.25,
        iou: float = 0.45,
        max_det: int = 300,
        batch_size: int = 8,
        agnostic: bool = False,
        imgsz: tuple[int, int] | None = None,
    ) -> None:
        if not 0.0 <= conf <= 1.0 or not 0.0 <= iou <= 1.0:
            raise ValueError(f"Detector: conf and iou must be in 0..1, got conf={conf}, iou={iou}")
        if max_det < 1 or batch_size < 1:
            raise ValueError(f"Detector: max_det and batch_size must be >= 1, got {max_det}, {batch_size}")
        self.backend = backend
        self.meta = meta
        self.conf, self.iou, self.max_det = float(conf), float(iou), int(max_det)
        self.batch_size, self.agnostic = int(batch_size), agnostic
        _, _, h, w = backend.input_shape
        if h is not None and w is not None:
            if imgsz is not None and tuple(imgsz) != (h, w):
                raise ValueError(
                    f"Detector: imgsz {imgsz} given, but {meta.source} has a static input of {(h, w)}"
                )
            if (h, w) != meta.imgsz:
                logger.warning(
                    "%s: metadata imgsz %s differs from the input %s; using the input",
                    meta.source,
                    meta.imgsz,
                    (h, w),
                )
            self.input_hw: tuple[int, int] = (h, w)
        else:
            self.input_hw = tuple(imgsz) if imgsz is not None else meta.imgsz  # type: ignore[assignment]

    @classmethod
    def from_onnx(
        cls,
        path: str | Path,
        *,
        conf: float = 0.25,
        iou: float = 0.45,
        max_det: int = 300,
        batch_size: int = 8,
        providers: Sequence[str | tuple[str, dict[str, Any]]] | None = None,
        provider_options: dict[str, dict[str, Any]] | None = None,
        intra_op_threads: int | None = None,
        cache_dir: str | Path | None = None,
        fp16: bool = True,
        agnostic: bool = False,
        imgsz: tuple[int, int] | None = None,
        backend: str | None = None,
        hint: str = "latency",
        streams: int | None = None,
    ) -> Detector:
        """Open an ONNX model; class names, input size and input kind come from its own metadata.

        ``backend`` is ``auto`` / ``onnxruntime`` / ``openvino`` (``None``: ``$SKYINSPECT_INFERENCE_BACKEND``, else
        auto — see :func:`detection.backends.choose_backend`; named ``providers`` imply onnxruntime).
        ``intra_op_threads`` sets the threads of whichever backend opens the model; ``hint`` / ``streams`` are the
        performance hint and stream count (:data:`detection.backends.PERFORMANCE_HINTS`).

        Raises:
            BackendError: the file cannot be loaded, a requested provider or backend is unavailable.
            ModelMetadataError: the metadata lacks names / imgsz / stride / task (the keys are named).
        """
        engine = open_backend(
            path,
            backend,
            providers=providers,
            provider_options=provider_options,
            threads=intra_op_threads,
            cache_dir=cache_dir,
            fp16=fp16,
            hint=hint,
            streams=streams,
        )
        meta = ModelMeta.from_metadata(engine.metadata, path)
        return cls(
            engine,
            meta,
            conf=conf,
            iou=iou,
            max_det=max_det,
            batch_size=batch_size,
            agnostic=agnostic,
            imgsz=imgsz,
        )

    # ------------------------------------------------------------------------------------------------ facts
    @property
    def names(self) -> dict[int, str]:
        return self.meta.names

    def __repr__(self) -> str:
        return (
            f"Detector({self.meta.source}, {self.backend.name} {self.backend.providers}, input {self.input_hw}, "
            f"{self.meta.nc} classes, conf={self.conf}, iou={self.iou})"
        )

    # ------------------------------------------------------------------------------------------------ stages
    def model_image(self, image: np.ndarray) -> np.ndarray:
        """Any readable image → the (H, W, 3) uint8 BGR view this model takes (thermal windowing, grey → 3ch)."""
        return to_model_image(image, self.meta.input_kind, self.meta.thermal_window_c)

    def prepare(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, list[LetterboxInfo]]:
        """Images → ((B, 3, h, w) float32 RGB 0..1, one :class:`LetterboxInfo` each), letterboxed into one buffer."""
        h, w = self.input_hw
        buf = np.empty((len(images), h, w, 3), dtype=np.uint8)
        infos = []
        for i, image in enumerate(images):
            view = self.model_image(image)
            _, info = letterbox(view, (h, w), self.meta.stride, auto=False, out=buf[i])
            infos.append(info)
        return to_tensor(buf), infos

    def prepare_one(self, image: np.ndarray, full_shape: tuple[int, int] | None = None) -> PreparedImage:
        """One image → :class:`PreparedImage`: the pre-processing of :meth:`predict`, to run ahead in a thread.

        ``full_shape``: the (h, w) of the frame when ``image`` is a reduced decode of it
        (:meth:`decode_reduction`); boxes then map back to the full frame's pixels.
        """
        batch, infos = self.prepare([image])
        info = infos[0]
        if full_shape is not None and tuple(full_shape) != info.orig_shape:
            h, w = int(full_shape[0]), int(full_shape[1])
            rh, rw = info.resized_shape
            info = replace(info, orig_shape=(h, w), ratio=min(rh / h, rw / w))
        return PreparedImage(batch[0], info)

    def decode_frame(
        self,
        data: bytes,
        source: str | Path = "<bytes>",
        whole: Callable[[tuple[int, int]], bool] | None = None,
    ) -> tuple[np.ndarray, tuple[int, int] | None]:
        """Decode a frame's bytes for this model → (pixels, full (h, w) when the pixels are a reduced decode, else
        ``None``). A JPEG that will be detected whole (``whole(shape)``, default: always) is decoded at the scale
        :meth:`decode_reduction` picks; anything else at full size. Pass ``full_shape`` on to :meth:`prepare_one`.

        Raises:
            detection.images.ImageReadError: empty or undecodable data.
        """
        header = jpeg_header(data)
        if header is not None:
            shape = (header[0], header[1])
            f = self.decode_reduction(shape) if whole is None or whole(shape) else 1
            if f > 1:
                return decode_image(data, source, reduce=f), shape
        return decode_image(data, source), None

    def decode_reduction(self, shape: tuple[int, int]) -> int:
        """The JPEG decode scale divisor (1, 2, 4, 8) for a whole frame of ``shape`` (h, w) on this model: the
        largest that still leaves at least the pixels the letterbox resizes the frame to (1 when it would upscale)."""
        resized = letterbox_params(shape, self.input_hw, self.meta.stride).resized_shape
        return decode_reduction(shape, resized)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """(B, 3, h, w) float32 → raw output (B, …) from the backend."""
        return self.backend.run(batch)

    def decode(self, raw: np.ndarray) -> list[Detections]:
        """Raw output → one :class:`Detections` per image, in model-input pixels."""
        return decode(raw, self.conf, self.iou, self.max_det, self.meta.nc, self.meta.end2end, self.agnostic)

    @staticmethod
    def rescale(dets: Sequence[Detections], infos: Sequence[LetterboxInfo]) -> list[Detections]:
        """Detections in model-input pixels → original-image pixels (clipped to the image)."""
        return [
            Detections(unletterbox_boxes(d.xyxy, info), d.confidence, d.class_id, d.data)
            for d, info in zip(dets, infos, strict=True)
        ]

    # ------------------------------------------------------------------------------------------------ predict
    def predict_batch(self, images: Sequence[np.ndarray]) -> list[Detections]:
        """Detect in several images (any sizes), ``batch_size`` at a time → one :class:`Detections` each."""
        out: list[Detections] = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start : start + self.batch_size]
            batch, infos = self.prepare(chunk)
            out.extend(self.rescale(self.decode(self.infer(batch)), infos))
        return out

    def predict_prepared(self, prepared: Sequence[PreparedImage]) -> list[Detections]:
        """Detect in images already prepared by :meth:`prepare_one` (``batch_size`` per backend call).

        Same results as :meth:`predict_batch` on the original images.
        """
        out: list[Detections] = []
        for start in range(0, len(prepared), self.batch_size):
            chunk = prepared[start : start + self.batch_size]
            batch = chunk[0].tensor[None] if len(chunk) == 1 else np.stack([p.tensor for p in chunk])
            out.extend(self.rescale(self.decode(self.infer(batch)), [p.info for p in chunk]))
        return out

    def predict(self, image: np.ndarray) -> Detections:
        """Detect in one image → :class:`Detections` in its pixels."""
        return self.predict_batch([image])[0]

    __call__ = predict

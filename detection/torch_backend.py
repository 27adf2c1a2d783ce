"""``TorchBackend``: an ultralytics ``.pt`` checkpoint behind the inference core's :class:`~detection.backends.Backend`.

The PyTorch model takes the same preprocessed (B, 3, H, W) float32 RGB 0..1 batch as an ONNX model and returns the
same raw head output — (B, 4 + nc, N) with xywh boxes in input pixels, or (B, max_det, 6) for end-to-end heads —
so PyTorch and ONNX models go through the *same* letterbox, decode and NMS (:class:`detection.inference.Detector`).
Cloud only: imports torch and ultralytics (offline, see :mod:`detection.offline`).

    det = detector_from_pt("best.pt", conf=0.25)
    found = det.predict(read_image("DJI_0001.JPG"))
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from detection.backends import BackendError
from detection.model_meta import PREFIX, ModelMeta, slice_tile_for, train_tile_of

logger = logging.getLogger(__name__)


class TorchBackend:
    """An ultralytics detection checkpoint run with PyTorch, eval mode, Conv+BN fused.

    Args:
        weights: path to a ``.pt`` checkpoint (never downloaded: a missing file is an error).
        device: ``cpu``, ``cuda``, ``cuda:0``…
        half: run in FP16 (CUDA only); inputs are cast, outputs returned as float32.

    Raises:
        BackendError: missing or unreadable checkpoint, not a detection model, or an unavailable device.
    """

    name = "torch"

    def __init__(self, weights: str | Path, device: str = "cpu", half: bool = False) -> None:
        from detection.offline import ensure_offline

        path = Path(weights).expanduser().resolve()  # absolute: ultralytics never treats it as an asset name
        if not path.is_file():
            raise BackendError(f"model file {path} does not exist")
        if path.suffix.lower() != ".pt":
            raise BackendError(
                f"model file {path}: TorchBackend loads .pt checkpoints (use OrtBackend for .onnx)"
            )
        ensure_offline()
        import torch
        from ultralytics.nn.tasks import load_checkpoint

        self.source = str(path)
        try:
            model, ckpt = load_checkpoint(str(path), device="cpu", fuse=False)
        except Exception as exc:  # torch/pickle/zip errors and ultralytics' TypeErrors for bad files
            raise BackendError(f"cannot load checkpoint {path}: {type(exc).__name__}: {exc}") from exc
        task = getattr(model, "task", None)
        if task != "detect":
            raise BackendError(f"{path}: a {task!r} model; skyinspect runs 'detect' models only")
        dev = str(device).strip().lower()
        if dev.isdigit():
            dev = f"cuda:{dev}"
        try:
            self.device = torch.device(dev)
            if self.device.type == "cuda" and not torch.cuda.is_available():
                raise BackendError(f"{path}: device {device!r} requested but CUDA is not available")
        except RuntimeError as exc:
            raise BackendError(f"{path}: unknown device {device!r}: {exc}") from exc
        self.half = bool(half and self.device.type == "cuda")
        if hasattr(model, "fuse"):
            model = model.fuse(verbose=False)
        model = model.to(self.device).eval()
        model = model.half() if self.half else model.float()
        for p in model.parameters():
            p.requires_grad_(False)
        self.model = model
        self._torch = torch
        self.checkpoint_info = {k: ckpt.get(k) for k in ("date", "version", "epoch") if k in ckpt}
        train_args = ckpt.get("train_args") or {}
        imgsz = train_args.get("imgsz", 640)
        self._imgsz = (int(imgsz), int(imgsz)) if isinstance(imgsz, int) else (int(imgsz[0]), int(imgsz[1]))
        self._names = {int(k): str(v) for k, v in dict(model.names).items()}
        self._stride = (
            int(max(model.stride.tolist())) if hasattr(model.stride, "tolist") else int(model.stride)
        )
        self._end2end = bool(getattr(model, "end2end", False))
        self._train_args = {
            k: train_args.get(k) for k in ("data", "epochs", "imgsz", "batch", "seed", "model")
        }
        logger.info(
            "torch %s: device %s%s, %d classes, imgsz %s, end2end %s",
            path, self.device, " fp16" if self.half else "", len(self._names), self._imgsz, self._end2end,
        )  # fmt: skip

    # ------------------------------------------------------------------------------------------------ protocol
    @property
    def input_shape(self) -> tuple[int | None, int | None, int | None, int | None]:
        return (None, 3, None, None)

    @property
    def dynamic_batch(self) -> bool:
        return True

    @property
    def providers(self) -> list[str]:
        return [str(self.device)]

    @property
    def metadata(self) -> dict[str, str]:
        """The checkpoint's facts in the keys an ultralytics ONNX export carries (strings)."""
        from detection import taxonomy

        meta = {
            "names": repr(self._names),
            "imgsz": json.dumps(list(self._imgsz)),
            "stride": str(self._stride),
            "task": "detect",
            "batch": "1",
            "end2end": str(self._end2end),
            "channels": "3",
            "args": json.dumps({k: v for k, v in self._train_args.items() if v is not None}, default=str),
        }
        slice_tile = slice_tile_for(self._imgsz, self._imgsz[0], train_tile_of(self._train_args.get("data")))
        if slice_tile is not None:
            meta[PREFIX + "slice_tile"] = json.dumps(list(slice_tile))
        try:
            meta[PREFIX + "domain"] = taxonomy.domain_of_names(self._names).value
        except taxonomy.TaxonomyError:
            pass
        return meta

    def model_meta(self) -> ModelMeta:
        """:class:`ModelMeta` of this checkpoint (domain inferred from the class names)."""
        return ModelMeta.from_metadata(self.metadata, self.source)

    def run(self, batch: np.ndarray) -> np.ndarray:
        """(B, 3, H, W) float32 RGB 0..1 → the model's first output as float32 numpy.

        Raises:
            BackendError: not a 4-D, 3-channel batch, or spatial dims not multiples of the stride.
        """
        if batch.ndim != 4 or batch.shape[1] != 3:
            raise BackendError(f"{self.source}: expected a (B, 3, H, W) batch, got shape {batch.shape}")
        if batch.shape[2] % self._stride or batch.shape[3] % self._stride:
            raise BackendError(
                f"{self.source}: input {batch.shape[2]}x{batch.shape[3]} is not a multiple of stride {self._stride}"
            )
        torch = self._torch
        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
        if self.half:
            x = x.half()
        with torch.inference_mode():
            y: Any = self.model(x)
        if isinstance(y, (list, tuple)):
            y = y[0]
        return y.float().cpu().numpy()


def detector_from_pt(
    weights: str | Path,
    *,
    device: str = "cpu",
    half: bool = False,
    **detector_kwargs: Any,
) -> Any:
    """A :class:`~detection.inference.Detector` over a :class:`TorchBackend` (kwargs: conf, iou, max_det, …)."""
    from detection.inference import Detector

    backend = TorchBackend(weights, device=device, half=half)
    return Detector(backend, backend.model_meta(), **detector_kwargs)

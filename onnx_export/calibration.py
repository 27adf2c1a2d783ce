"""INT8 calibration data: real training images of the model's domain, through the inference core's preprocessing.

The images are checked to belong to the model (same class names, same domain and input kind, same thermal window)
and are prepared by :meth:`detection.inference.Detector.prepare` of the FP32 export itself — the exact letterbox,
thermal windowing and normalisation the runtime applies — so the activation ranges INT8 learns are those the
deployed model will see.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from onnxruntime.quantization import CalibrationDataReader

from detection import taxonomy
from onnx_export.errors import ExportError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CalibrationSet:
    """The images chosen for calibration.

    Attributes:
        source: the data.yaml / folder given.
        split: the split they come from (``train``).
        images: the chosen image files (sorted, then a seeded sample).
        available: how many images the split has.
        dataset_version: the set's version (``datasets.version``), for the export record.
    """

    source: Path
    split: str
    images: list[Path]
    available: int
    dataset_version: str | None


def load_calibration_set(
    data: Path,
    names: dict[int, str],
    domain: taxonomy.Domain,
    input_kind: str,
    thermal_window_c: tuple[float, float],
    split: str = "train",
    count: int = 128,
    seed: int = 0,
) -> CalibrationSet:
    """Choose ``count`` images of ``split`` from a YOLO set that matches the model.

    Raises:
        ExportError: no such set, no images in the split, class names / domain / input kind / thermal window that
            differ from the model's (the mismatch is named).
    """
    from datasets.yolo import DatasetError, find_yolo_set

    data = Path(data)
    if not data.exists():
        raise ExportError(f"calibration data {data} does not exist")
    if count < 1:
        raise ExportError(f"calibration count must be at least 1, got {count}")
    try:
        found = find_yolo_set(data)
    except DatasetError as exc:
        raise ExportError(f"calibration data {data}: {exc}") from exc
    model_names = [names[i] for i in range(len(names))]
    if found.names is not None and list(found.names) != model_names:
        raise ExportError(
            f"calibration data {data}: class names {list(found.names)} differ from the model's {model_names} "
            f"({domain.value}); calibrate with the model's own training data"
        )
    extra = found.extra or {}
    if extra.get("domain"):
        try:
            data_domain = taxonomy.domain(extra["domain"])
        except taxonomy.TaxonomyError as exc:
            raise ExportError(f"calibration data {data}: {exc}") from exc
        if data_domain is not domain:
            raise ExportError(
                f"calibration data {data}: domain {data_domain.value}, the model is {domain.value}"
            )
    data_kind = extra.get("input_kind") or (
        ("thermal" if taxonomy.domain(extra["domain"]) is taxonomy.Domain.PV_THERMAL else "rgb")
        if extra.get("domain")
        else None
    )
    if data_kind and data_kind != input_kind:
        raise ExportError(f"calibration data {data}: input kind {data_kind}, the model takes {input_kind}")
    window = extra.get("thermal_window_c")
    if (
        input_kind == "thermal"
        and window is not None
        and tuple(float(v) for v in window) != tuple(thermal_window_c)
    ):
        raise ExportError(
            f"calibration data {data}: thermal window {list(window)} °C, the model uses {list(thermal_window_c)} °C"
        )
    if found.data_yaml is not None:
        pool = sorted(p for p, s in found.images.items() if s == split)
    else:
        pool = sorted(p for p, s in found.images.items() if s in (split, ""))
    if not pool:
        splits = sorted({s or "(none)" for s in found.images.values()})
        raise ExportError(
            f"calibration data {data}: no images in split {split!r} (splits present: {', '.join(splits) or 'none'})"
        )
    rng = np.random.default_rng(seed)
    chosen = (
        pool if len(pool) <= count else [pool[i] for i in sorted(rng.choice(len(pool), count, replace=False))]
    )
    try:
        from datasets.version import dataset_version

        version: str | None = dataset_version(found.data_yaml or found.root)
    except Exception as exc:  # version is provenance only; an odd set still calibrates
        logger.warning("calibration data %s: no dataset version (%s)", data, exc)
        version = None
    logger.info("calibration: %d of %d %s images from %s", len(chosen), len(pool), split, data)
    return CalibrationSet(Path(data), split, chosen, len(pool), version)


class DetectorCalibrationReader(CalibrationDataReader):
    """An onnxruntime ``CalibrationDataReader`` that feeds one prepared image at a time.

    Args:
        detector: a :class:`detection.inference.Detector` over the FP32 export (its ``prepare`` is used).
        images: image files.
        input_name: the model's input name.
    """

    def __init__(self, detector: Any, images: list[Path], input_name: str) -> None:
        self.detector = detector
        self.images = list(images)
        self.input_name = input_name
        self._it: Iterator[dict[str, np.ndarray]] | None = None
        self.fed = 0

    def _batches(self) -> Iterator[dict[str, np.ndarray]]:
        from detection.images import read_image

        for path in self.images:
            batch, _ = self.detector.prepare([read_image(path)])
            self.fed += 1
            yield {self.input_name: batch}

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._it is None:
            self._it = self._batches()
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = None

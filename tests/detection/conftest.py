"""Fixtures of the inference-core tests: tiny real ONNX models exported once per session (see fixtures_inference).

ultralytics is put offline (``detection.offline.ensure_offline``) before it is imported, and a socket guard
(``fixtures_inference.no_network``) makes any non-local connection attempted while building or exporting a model
raise, so a download attempt fails the tests loudly instead of passing silently on a connected machine.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures_inference import ExportedModel, build_calibrated_yolo, export_onnx, no_network

IMGSZ = (320, 320)
RECT_IMGSZ = (192, 320)


@pytest.fixture(scope="session")
def yolo_workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from detection.offline import ensure_offline

    workdir = tmp_path_factory.mktemp("inference-models")
    ensure_offline(config_dir=workdir / "ultralytics")
    return workdir


@pytest.fixture(scope="session")
def calibrated_yolo(yolo_workdir: Path):
    """The in-memory ultralytics YOLO (untrained, calibrated, wind classes) all exported models come from."""
    with no_network():
        return build_calibrated_yolo(yolo_workdir, IMGSZ)


@pytest.fixture(scope="session")
def onnx_model(yolo_workdir: Path, calibrated_yolo) -> ExportedModel:
    """Static (1, 3, 320, 320) input, raw (1, 10, 2100) output."""
    path = export_onnx(calibrated_yolo, yolo_workdir, IMGSZ, "static320")
    return ExportedModel(path, calibrated_yolo, IMGSZ)


@pytest.fixture(scope="session")
def onnx_model_rect(yolo_workdir: Path, calibrated_yolo) -> ExportedModel:
    """Static non-square (1, 3, 192, 320) input: height and width differ, as 384×640 production models do."""
    return ExportedModel(
        export_onnx(calibrated_yolo, yolo_workdir, RECT_IMGSZ, "static192x320"), calibrated_yolo, RECT_IMGSZ
    )


@pytest.fixture(scope="session")
def onnx_model_dynamic(yolo_workdir: Path, calibrated_yolo) -> ExportedModel:
    """Dynamic batch / height / width input."""
    path = export_onnx(calibrated_yolo, yolo_workdir, IMGSZ, "dynamic320", dynamic=True)
    return ExportedModel(path, calibrated_yolo, IMGSZ)


@pytest.fixture(scope="session")
def onnx_model_e2e(yolo_workdir: Path, calibrated_yolo) -> ExportedModel:
    """NMS inside the graph (``nms=True``): end-to-end (1, 300, 6) output."""
    path = export_onnx(calibrated_yolo, yolo_workdir, IMGSZ, "e2e320", nms=True, conf=0.05, iou=0.45)
    return ExportedModel(path, calibrated_yolo, IMGSZ)

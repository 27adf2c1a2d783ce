"""Fixtures of the inference-core tests: tiny real ONNX models exported once per session (see fixtures_inference).

ultralytics is put offline (``detection.offline.ensure_offline``) before it is imported, and a socket guard makes
any network connection attempted during the exports fail the session loudly.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from fixtures_inference import ExportedModel, build_calibrated_yolo, export_onnx

IMGSZ = (320, 320)
RECT_IMGSZ = (192, 320)


class NetworkAttempted(RuntimeError):
    pass


@pytest.fixture(scope="session")
def no_network() -> Iterator[list[str]]:
    """Refuse (and record) every non-local socket connection while the fixture is active."""
    attempts: list[str] = []
    original = socket.socket.connect

    def guarded(self: socket.socket, address: object) -> object:
        host = address[0] if isinstance(address, tuple) else str(address)
        if self.family in (socket.AF_INET, socket.AF_INET6) and host not in ("127.0.0.1", "::1", "localhost"):
            attempts.append(str(address))
            raise NetworkAttempted(f"network access attempted during the tests: {address}")
        return original(self, address)

    socket.socket.connect = guarded  # type: ignore[method-assign]
    try:
        yield attempts
    finally:
        socket.socket.connect = original  # type: ignore[method-assign]


@pytest.fixture(scope="session")
def yolo_workdir(tmp_path_factory: pytest.TempPathFactory, no_network: list[str]) -> Path:
    from detection.offline import ensure_offline

    workdir = tmp_path_factory.mktemp("inference-models")
    ensure_offline(config_dir=workdir / "ultralytics")
    return workdir


@pytest.fixture(scope="session")
def calibrated_yolo(yolo_workdir: Path):
    """The in-memory ultralytics YOLO (untrained, calibrated, wind classes) all exported models come from."""
    return build_calibrated_yolo(yolo_workdir, IMGSZ)


@pytest.fixture(scope="session")
def onnx_model(yolo_workdir: Path, calibrated_yolo, no_network: list[str]) -> ExportedModel:
    """Static (1, 3, 320, 320) input, raw (1, 10, 2100) output."""
    path = export_onnx(calibrated_yolo, yolo_workdir, IMGSZ, "static320")
    assert not no_network, f"network attempted during export: {no_network}"
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

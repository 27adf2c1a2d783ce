"""Fixtures of the pipeline tests: a tiny real ONNX model (wind classes), a tiny ingested synthetic wind flight,
and resources pointing at the session's real SeaweedFS server on a fresh bucket."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from skyinspect.config import Settings

# The tiny-model builders live with the inference-core tests; reuse them rather than copy them.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "detection"))
from fixtures_inference import build_calibrated_yolo, export_onnx


@pytest.fixture(scope="session")
def wind_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A calibrated, untrained YOLO11n with the wind-rgb classes, exported to ONNX (static 1×3×320×320)."""
    from detection.offline import ensure_offline

    work = tmp_path_factory.mktemp("pipeline-model")
    ensure_offline(config_dir=work / "ultralytics")
    yolo = build_calibrated_yolo(work, (320, 320))
    return export_onnx(yolo, work, (320, 320), "wind320")


@pytest.fixture(scope="session")
def shipped_models(tmp_path_factory: pytest.TempPathFactory, wind_onnx: Path) -> Path:
    """A models/ folder holding the tiny model as the shipped wind-rgb default."""
    folder = tmp_path_factory.mktemp("models")
    shutil.copy(wind_onnx, folder / "wind-rgb.onnx")
    return folder


@pytest.fixture(scope="session")
def wind_flight(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-image synthetic wind flight (640×480) in the shared folder layout."""
    from datasets.synth.generate import generate_flight

    out = tmp_path_factory.mktemp("wind-flight")
    generate_flight("wind-rgb", 2, 5, out, progress=False, image_size=(640, 480))
    return out


@pytest.fixture
def pipeline_settings(s3_settings: Settings, object_store, tmp_path: Path) -> Settings:
    """The session server, this test's fresh bucket and its own data dir."""
    return s3_settings.replace(s3_bucket=object_store.bucket, data_dir=tmp_path / "data")


@pytest.fixture
def pipeline_resources(pipeline_settings: Settings, shipped_models: Path) -> dict:
    from pipelines.resources import ModelRegistryResource, ObjectStoreResource, SettingsResource

    store = ObjectStoreResource(settings=SettingsResource.from_settings(pipeline_settings))
    return {"store": store, "models": ModelRegistryResource(store=store, models_dir=str(shipped_models))}

"""Fixtures of the export tests: the shared tiny TRAINED model (tests/detection/fixtures_training.py) and its
exports, made once per session by the real export code (ultralytics → onnxslim → float16 / QDQ int8)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "detection"))

from fixtures_training import TinyModel, tiny_model

__all__ = ["tiny_model"]


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory, tiny_model: TinyModel):
    """Static + dynamic-batch FP32 and FP16, and a static INT8 (calibrated on the tiny set's train split)."""
    from onnx_export.export import ExportConfig, export_model
    from onnx_export.source import resolve

    out = tmp_path_factory.mktemp("exported")
    source = resolve(str(tiny_model.weights))
    main = export_model(source, ExportConfig(out=out, dynamic_batch=True, half=True))
    int8 = export_model(
        source, ExportConfig(out=out / "int8", int8=True, calib=tiny_model.data_yaml, calib_count=16)
    )
    return {"source": source, "result": main, "int8": int8, "variants": [*main.variants, *int8.variants[1:]]}

"""Fixtures of the export tests: the shared tiny TRAINED model (tests/detection/fixtures_training.py) and its
exports, made once per session by the real export code (ultralytics → onnxslim → float16 / QDQ int8)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "detection"))

from fixtures_inference import no_network
from fixtures_training import TinyModel, tiny_model

__all__ = ["tiny_model"]


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory, tiny_model: TinyModel):
    """Static + dynamic-batch FP32 and FP16, a static INT8 (calibrated on the tiny set's train split) and a static
    INT8 with uint8 activations (``u8``, not in ``variants``)."""
    from onnx_export.export import ExportConfig, export_model
    from onnx_export.source import resolve

    out = tmp_path_factory.mktemp("exported")
    source = resolve(str(tiny_model.weights))
    with no_network() as attempts:  # export runs offline: nothing is fetched
        main = export_model(source, ExportConfig(out=out, dynamic_batch=True, half=True))
        int8 = export_model(
            source, ExportConfig(out=out / "int8", int8=True, calib=tiny_model.data_yaml, calib_count=16)
        )
        u8 = export_model(
            source,
            ExportConfig(
                out=out / "u8", int8=True, calib=tiny_model.data_yaml, calib_count=8, int8_activations="u8"
            ),
        )
    assert not attempts, f"network attempted during export: {attempts}"
    return {
        "source": source,
        "result": main,
        "int8": int8,
        "u8": u8,
        "variants": [*main.variants, *int8.variants[1:]],
    }

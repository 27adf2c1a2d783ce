"""Fixtures of the export tests: the shared tiny TRAINED model (tests/detection/fixtures_training.py) and its
exports, made once per session by the real export code (ultralytics → onnxslim → float16 / QDQ int8)."""

from __future__ import annotations

import contextlib
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "detection"))

from fixtures_training import TinyModel, tiny_model

__all__ = ["tiny_model"]


@contextlib.contextmanager
def refuse_network() -> Iterator[list[str]]:
    """Make every non-local socket connection fail (and record it) inside the block."""
    attempts: list[str] = []
    original = socket.socket.connect

    def guarded(self: socket.socket, address: object) -> object:
        host = address[0] if isinstance(address, tuple) else str(address)
        if self.family in (socket.AF_INET, socket.AF_INET6) and host not in ("127.0.0.1", "::1", "localhost"):
            attempts.append(str(address))
            raise OSError(f"network access attempted during export: {address}")
        return original(self, address)

    socket.socket.connect = guarded  # type: ignore[method-assign]
    try:
        yield attempts
    finally:
        socket.socket.connect = original  # type: ignore[method-assign]


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory, tiny_model: TinyModel):
    """Static + dynamic-batch FP32 and FP16, a static INT8 (calibrated on the tiny set's train split) and a static
    INT8 with uint8 activations (``u8``, not in ``variants``)."""
    from onnx_export.export import ExportConfig, export_model
    from onnx_export.source import resolve

    out = tmp_path_factory.mktemp("exported")
    source = resolve(str(tiny_model.weights))
    with refuse_network() as attempts:  # export runs offline: nothing is fetched
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

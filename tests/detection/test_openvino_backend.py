"""detection.backends: the automatic backend choice, and the OpenVINO runtime on the same ONNX files as onnxruntime.

OpenVINO's CPU kernels round differently from onnxruntime's, so outputs agree to ~1e-4 relative, not bit for bit;
detections are compared by matching boxes.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
from fixtures_inference import synthetic_frame

from detection.backends import (
    Backend,
    BackendError,
    OpenVinoBackend,
    OrtBackend,
    choose_backend,
    is_x86,
    openvino_available,
)
from detection.inference import Detector

TRT, CUDA, CPU = "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"
CONF, IOU = 0.05, 0.45

needs_openvino = pytest.mark.skipif(
    not (openvino_available() and is_x86()), reason="OpenVINO (x86 CPU plugin) not installed here"
)


@pytest.mark.parametrize(
    ("requested", "providers", "available", "has_ov", "machine", "env", "want"),
    [
        (None, None, [CPU], True, "x86_64", {}, "onnxruntime"),  # x86 CPU with OpenVINO: not faster here
        (None, None, [CPU], False, "x86_64", {}, "onnxruntime"),  # edge extra only: no openvino
        (None, None, [TRT, CUDA, CPU], True, "x86_64", {}, "onnxruntime"),  # GPU server: TensorRT first
        (None, None, [CUDA, CPU], True, "aarch64", {}, "onnxruntime"),  # Jetson
        (None, None, [CPU], True, "aarch64", {}, "onnxruntime"),  # ARM CPU: no OpenVINO CPU plugin choice
        (None, ["cpu"], [CPU], True, "x86_64", {}, "onnxruntime"),  # named providers mean onnxruntime
        ("auto", None, [CPU], True, "AMD64", {}, "onnxruntime"),
        (None, None, [CPU], True, "x86_64", {"SKYINSPECT_INFERENCE_BACKEND": "openvino"}, "openvino"),
        ("onnxruntime", None, [CPU], True, "x86_64", {}, "onnxruntime"),
        ("ORT", None, [CPU], True, "x86_64", {}, "onnxruntime"),
        ("openvino", None, [TRT, CPU], True, "x86_64", {}, "openvino"),  # explicit wins over the GPU
        (None, None, [CPU], True, "x86_64", {"SKYINSPECT_INFERENCE_BACKEND": "onnxruntime"}, "onnxruntime"),
        ("auto", None, [CPU], True, "x86_64", {"SKYINSPECT_INFERENCE_BACKEND": "openvino"}, "onnxruntime"),
        (None, None, [], True, "aarch64", {}, "openvino"),  # no onnxruntime at all
    ],
)
def test_choose_backend(requested, providers, available, has_ov, machine, env, want) -> None:
    name, reason = choose_backend(
        requested, providers, available_providers=available, has_openvino=has_ov, machine=machine, environ=env
    )
    assert name == want and reason


@pytest.mark.parametrize(
    ("requested", "has_ov", "env", "match"),
    [
        ("tensorflow", True, {}, r"inference backend 'tensorflow' \(requested\): expected one of auto"),
        ("openvino", False, {}, r"'openvino' \(requested\) is not installed"),
        (None, False, {"SKYINSPECT_INFERENCE_BACKEND": "openvino"}, r"SKYINSPECT_INFERENCE_BACKEND\) is not"),
    ],
)
def test_choose_backend_errors(requested, has_ov, env, match) -> None:
    with pytest.raises(BackendError, match=match):
        choose_backend(
            requested, available_providers=[CPU], has_openvino=has_ov, machine="x86_64", environ=env
        )


@needs_openvino
def test_openvino_static_model_matches_onnxruntime(onnx_model, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="detection.backends"):
        ov = OpenVinoBackend(onnx_model.path, threads=1)
    assert "hint latency, threads 1" in caplog.text
    ort = OrtBackend(onnx_model.path, intra_op_threads=1)
    assert isinstance(ov, Backend)
    assert ov.input_shape == ort.input_shape == (1, 3, 320, 320) and not ov.dynamic_batch
    assert ov.metadata == ort.metadata and ov.providers == ["OpenVINO:CPU"]
    batch = np.random.default_rng(0).random((3, 3, 320, 320), dtype=np.float32)
    out = ov.run(batch)  # static batch 1: chunked
    assert out.shape == (3, 10, 2100) and out.dtype == np.float32
    np.testing.assert_allclose(out, ort.run(batch), rtol=1e-3, atol=0.1)  # boxes in px: 0.1 px
    np.testing.assert_array_equal(out[1], ov.run(batch[1:2])[0])
    assert not np.allclose(out[0], out[1])


@needs_openvino
def test_openvino_throughput_hint_runs_chunks_in_parallel(onnx_model) -> None:
    latency = OpenVinoBackend(onnx_model.path, threads=2)
    streams = OpenVinoBackend(onnx_model.path, threads=2, hint="throughput", streams=2)
    assert len(streams._requests[(1, 3, 320, 320)]) >= 2
    batch = np.random.default_rng(1).random((5, 3, 320, 320), dtype=np.float32)
    np.testing.assert_allclose(streams.run(batch), latency.run(batch), rtol=1e-4, atol=1e-3)


@needs_openvino
def test_openvino_dynamic_model_compiles_per_shape(onnx_model_dynamic) -> None:
    ov = OpenVinoBackend(onnx_model_dynamic.path)
    assert ov.dynamic_batch and ov.input_shape == (None, 3, None, None)
    rng = np.random.default_rng(2)
    assert ov.run(rng.random((2, 3, 320, 256), dtype=np.float32)).shape[:2] == (2, 10)
    assert ov.run(rng.random((3, 3, 320, 320), dtype=np.float32)).shape == (3, 10, 2100)
    assert set(ov._compiled) == {(2, 3, 320, 256), (3, 3, 320, 320)}


@needs_openvino
@pytest.mark.parametrize(
    ("shape", "match"),
    [
        ((3, 320, 320), r"expected a \(B, C, H, W\) batch"),
        ((1, 3, 320, 256), "input dim 3 is 256, the model expects 320"),
    ],
)
def test_openvino_wrong_batch_shape(onnx_model, shape, match) -> None:
    with pytest.raises(BackendError, match=match):
        OpenVinoBackend(onnx_model.path).run(np.zeros(shape, np.float32))


@needs_openvino
def test_openvino_bad_files_and_options(tmp_path, onnx_model) -> None:
    assert OpenVinoBackend(onnx_model.path.read_bytes()).input_shape == (1, 3, 320, 320)
    with pytest.raises(BackendError, match="does not exist"):
        OpenVinoBackend(tmp_path / "missing.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(BackendError, match=rf"cannot read model {bad} with OpenVINO"):
        OpenVinoBackend(bad)
    with pytest.raises(BackendError, match="OpenVINO hint 'fast'"):
        OpenVinoBackend(onnx_model.path, hint="fast")


@needs_openvino
def test_detector_on_openvino_agrees_with_onnxruntime(onnx_model, caplog, monkeypatch) -> None:
    from test_inference import match

    with caplog.at_level(logging.INFO, logger="detection.backends"):
        auto = Detector.from_onnx(onnx_model.path, conf=CONF, iou=IOU, intra_op_threads=1, backend="openvino")
    assert auto.backend.name == "openvino"
    assert "openvino (requested)" in caplog.text
    ort = Detector.from_onnx(onnx_model.path, conf=CONF, iou=IOU, intra_op_threads=1, backend="onnxruntime")
    pinned = Detector.from_onnx(onnx_model.path, conf=CONF, iou=IOU, providers=["cpu"])
    assert ort.backend.name == pinned.backend.name == "onnxruntime"
    for shape in [(512, 640), (3000, 4000)]:
        img = synthetic_frame(*shape, seed=sum(shape))
        a, b = auto.predict(img), ort.predict(img)
        assert len(b) >= 5 and abs(len(a) - len(b)) <= max(1, len(b) // 50)
        iou, err = match(b, a)
        matched = iou >= 0.99
        assert matched.mean() >= 0.95 and err[matched].max() <= 0.5


@needs_openvino
def test_environment_overrides_auto(onnx_model, monkeypatch) -> None:
    monkeypatch.setenv("SKYINSPECT_INFERENCE_BACKEND", "onnxruntime")
    assert Detector.from_onnx(onnx_model.path).backend.name == "onnxruntime"
    monkeypatch.setenv("SKYINSPECT_INFERENCE_BACKEND", "openvino")
    assert Detector.from_onnx(onnx_model.path).backend.name == "openvino"
    assert Detector.from_onnx(onnx_model.path, backend="onnxruntime").backend.name == "onnxruntime"

"""detection.backends: provider choice, real onnxruntime sessions with static and dynamic batch."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest

from detection.backends import Backend, BackendError, OrtBackend, choose_providers

TRT, CUDA, CPU = "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"


@pytest.mark.parametrize(
    ("available", "requested", "want"),
    [
        ([CPU], None, [CPU]),
        (["AzureExecutionProvider", CPU], None, [CPU]),
        ([CUDA, CPU], None, [CUDA, CPU]),
        ([CPU, CUDA, TRT], None, [TRT, CUDA, CPU]),  # preference order, not the listing order
        ([TRT, CUDA, CPU], ["cuda", "cpu"], [CUDA, CPU]),  # explicit choice, short names
        ([TRT, CUDA, CPU], [CPU], [CPU]),
    ],
)
def test_choose_providers(tmp_path: Path, available, requested, want) -> None:
    chosen = choose_providers(available, requested, cache_dir=tmp_path / "trt")
    assert [n for n, _ in chosen] == want
    for name, opts in chosen:
        if name == TRT:
            assert opts["trt_fp16_enable"] is True and opts["trt_engine_cache_enable"] is True
            assert opts["trt_engine_cache_path"] == str(tmp_path / "trt") == opts["trt_timing_cache_path"]
            assert (tmp_path / "trt").is_dir()
        else:
            assert opts == {}


def test_choose_providers_rejects_unavailable() -> None:
    with pytest.raises(
        BackendError, match=r"'CUDAExecutionProvider' is not available; available: CPUExecutionProvider"
    ):
        choose_providers([CPU], ["cuda"])


def test_static_backend_chunks_batches(onnx_model, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="detection.backends"):
        backend = OrtBackend(onnx_model.path, intra_op_threads=1)
    assert isinstance(backend, Backend)
    assert "providers ['CPUExecutionProvider'] (requested auto)" in caplog.text  # the choice is logged
    assert backend.input_shape == (1, 3, 320, 320) and not backend.dynamic_batch
    assert backend.providers == [CPU] and backend.metadata["task"] == "detect"
    rng = np.random.default_rng(0)
    batch = rng.random((3, 3, 320, 320), dtype=np.float32)
    out = backend.run(batch)
    assert out.shape == (3, 10, 2100) and out.dtype == np.float32
    for i in range(3):
        np.testing.assert_array_equal(out[i], backend.run(batch[i : i + 1])[0])
    assert not np.allclose(out[0], out[1])


def test_dynamic_backend_runs_any_batch(onnx_model_dynamic) -> None:
    backend = OrtBackend(onnx_model_dynamic.path, providers=["cpu"])
    assert backend.dynamic_batch and backend.input_shape == (None, 3, None, None)
    out = backend.run(np.random.default_rng(1).random((2, 3, 320, 256), dtype=np.float32))
    assert out.shape[0] == 2 and out.shape[1] == 10


@pytest.mark.parametrize("fixture", ["onnx_model", "onnx_model_dynamic"])
@pytest.mark.parametrize("streams", [2, 3])
def test_throughput_hint_splits_batches_across_sessions(request, fixture: str, streams: int) -> None:
    """``hint="throughput"``: one single-thread session per stream, a batch split across them, same outputs."""
    model = request.getfixturevalue(fixture)
    one = OrtBackend(model.path, intra_op_threads=1)
    many = OrtBackend(model.path, intra_op_threads=streams, hint="throughput", streams=streams)
    assert (one.streams, many.streams) == (1, streams)
    assert many.session.get_session_options().intra_op_num_threads == 1
    batch = np.random.default_rng(3).random((5, 3, 320, 320), dtype=np.float32)
    out = many.run(batch)
    assert out.shape == (5, 10, 2100)
    np.testing.assert_allclose(out, one.run(batch), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(many.run(batch[:1]), out[:1], rtol=1e-5, atol=1e-5)  # smaller than the streams


def test_streams_come_with_the_throughput_hint_only(onnx_model) -> None:
    """``latency`` keeps one session whatever ``streams`` says; ``throughput`` defaults to one per core."""
    assert OrtBackend(onnx_model.path, hint="latency", streams=4).streams == 1
    assert OrtBackend(onnx_model.path, hint="throughput").streams == (os.cpu_count() or 1)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"hint": "fastest"}, r"hint 'fastest': expected one of latency, throughput"),
        ({"streams": 0}, "streams"),
    ],
)
def test_bad_hint_or_streams(onnx_model, kwargs, match) -> None:
    with pytest.raises(BackendError, match=match):
        OrtBackend(onnx_model.path, **kwargs)


@pytest.mark.parametrize(
    ("shape", "match"),
    [
        ((3, 320, 320), r"expected a \(B, C, H, W\) batch"),
        ((1, 3, 320, 256), "input dim 3 is 256, the model expects 320"),
    ],
)
def test_wrong_batch_shape(onnx_model, shape, match) -> None:
    backend = OrtBackend(onnx_model.path)
    with pytest.raises(BackendError, match=match):
        backend.run(np.zeros(shape, np.float32))


def test_bytes_and_bad_files(tmp_path: Path, onnx_model) -> None:
    assert OrtBackend(onnx_model.path.read_bytes()).input_shape == (1, 3, 320, 320)
    with pytest.raises(BackendError, match="does not exist"):
        OrtBackend(tmp_path / "missing.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(BackendError, match=rf"cannot load ONNX model {bad}"):
        OrtBackend(bad)

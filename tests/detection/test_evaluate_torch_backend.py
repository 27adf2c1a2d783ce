"""detection.torch_backend: a .pt behind the Backend protocol, through the same Detector as ONNX models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fixtures_training import TINY_IMGSZ, tiny_model  # noqa: F401

from detection import taxonomy
from detection.backends import Backend, BackendError
from detection.images import read_image
from detection.torch_backend import TorchBackend, detector_from_pt


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.pt", None, "does not exist"),
        ("model.onnx", b"x", r"loads \.pt checkpoints"),
        ("empty.pt", b"", "cannot load checkpoint"),
        ("garbage.pt", b"\x00garbage", "cannot load checkpoint"),
    ],
)
def test_bad_files_are_backend_errors(tmp_path: Path, name: str, content: bytes | None, message: str) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(BackendError, match=message):
        TorchBackend(path)


def test_protocol_shapes_and_metadata(tiny_model) -> None:  # noqa: F811
    backend = TorchBackend(tiny_model.weights)
    assert isinstance(backend, Backend)
    assert backend.input_shape == (None, 3, None, None) and backend.dynamic_batch
    out = backend.run(np.zeros((2, 3, TINY_IMGSZ, TINY_IMGSZ), np.float32))
    n_anchors = sum((TINY_IMGSZ // s) ** 2 for s in (8, 16, 32))
    assert out.shape == (2, 4 + 6, n_anchors) and out.dtype == np.float32
    meta = backend.model_meta()
    assert meta.names == dict(enumerate(taxonomy.class_names("pv-rgb")))
    assert meta.domain is taxonomy.Domain.PV_RGB and meta.input_kind == "rgb"
    assert meta.imgsz == (TINY_IMGSZ, TINY_IMGSZ) and meta.stride == 32 and not meta.end2end
    with pytest.raises(BackendError, match="not a multiple of stride"):
        backend.run(np.zeros((1, 3, 100, 100), np.float32))
    with pytest.raises(BackendError, match=r"\(B, 3, H, W\)"):
        backend.run(np.zeros((3, 128, 128), np.float32))


def test_detections_equal_ultralytics_predict(tiny_model) -> None:  # noqa: F811
    """Our letterbox + decode + NMS over the torch output = ultralytics' own predict on the same square input."""
    from ultralytics import YOLO

    det = detector_from_pt(tiny_model.weights, conf=0.05, iou=0.6)
    model = YOLO(str(tiny_model.weights))
    images = sorted((tiny_model.data_yaml.parent / "images" / "val").glob("*.png"))[:6]
    compared = 0
    for path in images:
        img = read_image(path)
        ours = det.predict(img)
        ref = model.predict(img, imgsz=TINY_IMGSZ, conf=0.05, iou=0.6, rect=False, verbose=False)[0].boxes
        order = np.argsort(-ours.confidence, kind="stable")
        ref_order = np.argsort(-ref.conf.numpy(), kind="stable")
        assert len(ours) == len(ref)
        np.testing.assert_allclose(ours.xyxy[order], ref.xyxy.numpy()[ref_order], atol=1e-2)
        np.testing.assert_allclose(ours.confidence[order], ref.conf.numpy()[ref_order], atol=1e-5)
        np.testing.assert_array_equal(ours.class_id[order], ref.cls.numpy()[ref_order].astype(int))
        compared += len(ours)
    assert compared > 0, "no detections to compare"

"""detection.inference: the core against ultralytics' own ONNX predict and PyTorch predict, same model, same images.

What is aligned for the comparison: the same ``conf`` / ``iou`` / ``max_det`` / ``imgsz``; the same runtime
(``backend="onnxruntime"``: ultralytics runs ONNX files in onnxruntime; OpenVINO's kernels round differently, its
agreement is checked in ``test_openvino_backend.py``); for PyTorch predict
``rect=False`` (ultralytics' default ``rect=True`` pads a .pt model's input only to the next multiple of 32, while
an ONNX model with a static input is always padded to the full square — so is ours). Nothing else is changed:
ultralytics reads the images, letterboxes and runs NMS in its own code.
"""

from __future__ import annotations

import numpy as np
import pytest
from fixtures_inference import NAMES, synthetic_frame

from detection import radiometry, taxonomy
from detection.backends import BackendError
from detection.detections import Detections
from detection.inference import Detector
from detection.model_meta import ModelMetadataError
from detection.preprocess import thermal_to_bgr

CONF, IOU = 0.05, 0.45
SHAPES = [(512, 640), (300, 400), (640, 360), (1080, 1920), (3000, 4000)]  # (h, w), landscape and portrait


def match(a: Detections, b: Detections) -> tuple[np.ndarray, np.ndarray]:
    """Greedy one-to-one matching of same-class boxes by IoU → (IoU of each of a's boxes, max abs px error)."""
    from detection.boxes import box_iou

    ious = box_iou(a.xyxy, b.xyxy) * (a.class_id[:, None] == b.class_id[None, :])
    best = np.zeros(len(a), np.float32)
    err = np.full(len(a), np.inf, np.float32)
    used: set[int] = set()
    for i in np.argsort(-a.confidence, kind="stable"):
        order = [j for j in np.argsort(-ious[i]) if j not in used]
        if order and ious[i, order[0]] > 0:
            j = order[0]
            used.add(int(j))
            best[i] = ious[i, j]
            err[i] = np.abs(a.xyxy[i] - b.xyxy[j]).max()
    return best, err


@pytest.fixture(scope="module")
def detector(onnx_model) -> Detector:
    return Detector.from_onnx(onnx_model.path, conf=CONF, iou=IOU, intra_op_threads=1, backend="onnxruntime")


def test_names_and_domain_come_from_the_model(detector: Detector) -> None:
    assert detector.names == dict(enumerate(NAMES))
    assert detector.meta.domain is taxonomy.Domain.WIND and detector.input_hw == (320, 320)


@pytest.mark.parametrize("shape", SHAPES)
def test_matches_ultralytics_onnx_predict(detector: Detector, onnx_model, shape) -> None:
    from ultralytics import YOLO

    img = synthetic_frame(*shape, seed=sum(shape))
    ours = detector.predict(img)
    res = YOLO(str(onnx_model.path), task="detect").predict(
        img, imgsz=320, conf=CONF, iou=IOU, verbose=False
    )[0]
    theirs = Detections.from_ultralytics(res)
    assert len(ours) == len(theirs) >= 5, "the calibrated model should give several boxes"
    np.testing.assert_allclose(ours.xyxy, theirs.xyxy, atol=0.05)
    np.testing.assert_allclose(ours.confidence, theirs.confidence, atol=1e-5)
    assert ours.class_id.tolist() == theirs.class_id.tolist()


@pytest.mark.parametrize("shape", SHAPES[:4])
def test_matches_ultralytics_pytorch_predict(detector: Detector, onnx_model, shape) -> None:
    img = synthetic_frame(*shape, seed=sum(shape) + 1)
    ours = detector.predict(img)
    res = onnx_model.yolo.predict(img, imgsz=320, conf=CONF, iou=IOU, rect=False, verbose=False)[0]
    theirs = Detections.from_ultralytics(res)
    assert len(theirs) >= 5
    # float32 ONNX vs PyTorch may flip a box sitting exactly on a threshold; everything else must agree
    assert abs(len(ours) - len(theirs)) <= max(1, len(theirs) // 50)
    iou, err = match(theirs, ours)
    matched = iou >= 0.99
    assert matched.mean() >= 0.95, f"only {matched.sum()} of {len(theirs)} boxes matched"
    assert err[matched].max() <= 1.0


def test_non_square_model_matches_ultralytics(onnx_model_rect) -> None:
    """A (192, 320) input: height and width differ, as production 384×640 models do."""
    from ultralytics import YOLO

    det = Detector.from_onnx(onnx_model_rect.path, conf=CONF, iou=IOU, backend="onnxruntime")
    assert det.input_hw == (192, 320) and det.meta.imgsz == (192, 320)
    for shape in [(3000, 4000), (4000, 3000), (512, 640)]:
        img = synthetic_frame(*shape, seed=7)
        ours = det.predict(img)
        yolo = YOLO(str(onnx_model_rect.path), task="detect")
        theirs = Detections.from_ultralytics(
            yolo.predict(img, imgsz=(192, 320), conf=CONF, iou=IOU, verbose=False)[0]
        )
        assert len(ours) == len(theirs) > 0
        np.testing.assert_allclose(ours.xyxy, theirs.xyxy, atol=0.05)


def test_end2end_model_matches_ultralytics(onnx_model_e2e, detector: Detector) -> None:
    from ultralytics import YOLO

    det = Detector.from_onnx(onnx_model_e2e.path, conf=CONF, iou=IOU, backend="onnxruntime")
    assert det.meta.end2end
    img = synthetic_frame(512, 640, seed=3)
    ours = det.predict(img)
    theirs = Detections.from_ultralytics(
        YOLO(str(onnx_model_e2e.path), task="detect").predict(
            img, imgsz=320, conf=CONF, iou=IOU, verbose=False
        )[0]
    )
    assert len(ours) == len(theirs) > 0
    np.testing.assert_allclose(ours.xyxy, theirs.xyxy, atol=0.05)
    # NMS inside the graph and our NMS over the raw head find the same boxes
    iou, _ = match(ours, detector.predict(img))
    assert (iou >= 0.99).mean() >= 0.95


def test_predict_batch_equals_single_and_dynamic_model(detector: Detector, onnx_model_dynamic) -> None:
    imgs = [synthetic_frame(h, w, seed=i) for i, (h, w) in enumerate([(512, 640), (300, 400), (640, 360)])]
    single = [detector.predict(im) for im in imgs]
    dyn = Detector.from_onnx(onnx_model_dynamic.path, conf=CONF, iou=IOU, batch_size=3, backend="onnxruntime")
    assert dyn.backend.dynamic_batch and dyn.input_hw == (320, 320)
    for a, b in zip(single, dyn.predict_batch(imgs), strict=True):
        assert len(a) == len(b)
        np.testing.assert_allclose(a.xyxy, b.xyxy, atol=0.05)
    for a, b in zip(
        single, detector.predict_batch(imgs), strict=True
    ):  # static model, chunked by the backend
        np.testing.assert_array_equal(a.xyxy, b.xyxy)


def test_boxes_are_in_frame_pixels(detector: Detector) -> None:
    img = synthetic_frame(3000, 4000, seed=5)
    d = detector.predict(img)
    assert len(d) > 0
    assert d.xyxy[:, [0, 2]].max() <= 4000 and d.xyxy[:, [1, 3]].max() <= 3000 and d.xyxy.min() >= 0
    assert d.xyxy[:, 2].max() > 640  # not left in model-input pixels


def thermal_model(tmp_path, onnx_model, window: tuple[float, float]) -> Detector:
    import onnx

    model = onnx.load(str(onnx_model.path))
    extra = {"skyinspect.input_kind": "thermal", "skyinspect.thermal_window_c": f"[{window[0]}, {window[1]}]"}
    for key, value in extra.items():
        prop = model.metadata_props.add()
        prop.key, prop.value = key, value
    path = tmp_path / "thermal.onnx"
    onnx.save(model, str(path))
    return Detector.from_onnx(path, conf=CONF, iou=IOU)


def test_thermal_frames_go_through_the_models_window(tmp_path, onnx_model) -> None:
    window = (10.0, 60.0)
    det = thermal_model(tmp_path, onnx_model, window)
    assert det.meta.input_kind == "thermal" and det.meta.thermal_window_c == window
    temps = 15.0 + synthetic_frame(480, 640, seed=9)[..., 1].astype(np.float64) / 255 * 40  # 15–55 °C
    counts = radiometry.celsius_to_counts(temps)
    ours = det.predict(counts)
    manual = det.predict(thermal_to_bgr(counts, window))
    assert len(ours) > 0
    np.testing.assert_array_equal(ours.xyxy, manual.xyxy)
    wrong = det.predict(thermal_to_bgr(counts, (0.0, 100.0)))  # the window matters
    assert len(wrong) != len(ours) or not np.array_equal(wrong.xyxy, ours.xyxy)


def test_rgb_model_refuses_radiometric_frame(detector: Detector) -> None:
    with pytest.raises(ValueError, match="16-bit radiometric"):
        detector.predict(np.zeros((64, 64), np.uint16))


@pytest.mark.parametrize(("kwargs", "match"), [({"conf": 1.5}, "conf and iou"), ({"max_det": 0}, "max_det")])
def test_detector_argument_errors(onnx_model, kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        Detector.from_onnx(onnx_model.path, **kwargs)


def test_from_onnx_errors(tmp_path, onnx_model) -> None:
    import onnx

    with pytest.raises(BackendError, match="does not exist"):
        Detector.from_onnx(tmp_path / "none.onnx")
    model = onnx.load(str(onnx_model.path))
    del model.metadata_props[:]
    onnx.save(model, str(tmp_path / "bare.onnx"))
    with pytest.raises(
        ModelMetadataError, match=r"bare.onnx: model metadata lacks required key\(s\) names, imgsz"
    ):
        Detector.from_onnx(tmp_path / "bare.onnx")


def test_network_guard_used_by_the_model_fixtures_refuses_outside_connections() -> None:
    import socket

    from fixtures_inference import NetworkAttempted, no_network

    with no_network() as attempts, pytest.raises(NetworkAttempted):
        socket.create_connection(("192.0.2.1", 443), timeout=1)  # TEST-NET-1: never routable
    assert attempts == ["('192.0.2.1', 443)"]


@pytest.mark.parametrize("full", [(1080, 1920), (3000, 4000), (481, 641)])
def test_a_reduced_decode_maps_boxes_to_the_full_frame(detector: Detector, full: tuple[int, int]) -> None:
    """prepare_one(reduced, full_shape): the model input is the reduced frame's letterbox, and boxes come back in
    the full frame's pixels — exactly the full letterbox's mapping when the resized sizes agree."""
    from detection.images import decode_reduction
    from detection.preprocess import letterbox_params, unletterbox_boxes

    factor = detector.decode_reduction(full)
    needed = letterbox_params(full, detector.input_hw).resized_shape
    assert factor == decode_reduction(full, needed) > 1
    small = np.zeros((-(-full[0] // factor), -(-full[1] // factor), 3), np.uint8)
    prepared = detector.prepare_one(small, full)
    assert prepared.info.orig_shape == full and prepared.tensor.shape[1:] == detector.input_hw
    boxes = np.array([[10, 20, 100, 200], [0, 0, detector.input_hw[1], detector.input_hw[0]]], np.float32)
    on_full = unletterbox_boxes(boxes, letterbox_params(full, detector.input_hw), clip=False)
    if prepared.info.resized_shape == needed:
        np.testing.assert_allclose(unletterbox_boxes(boxes, prepared.info, clip=False), on_full, rtol=1e-5)
    back = unletterbox_boxes(boxes, prepared.info)
    assert back[1].tolist() == [0, 0, full[1], full[0]]  # the whole input is the whole frame

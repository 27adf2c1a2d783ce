"""bench.bench_cpu's measuring code, in-process on a tiny real model: the streamed passes return what the Detector
finds image by image (any batch, both backends), and the mAP plumbing scores ground truth as perfect."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest

from bench import bench_cpu
from detection.backends import openvino_available
from detection.images import read_image
from detection.inference import Detector

ROOT = Path(__file__).resolve().parents[2]


def _tiny_model(path: Path) -> Path:
    spec = importlib.util.spec_from_file_location(
        "edge_fixtures_for_bench", ROOT / "tests" / "jetson" / "conftest.py"
    )
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module.build_tiny_onnx(path)


@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    root = tmp_path_factory.mktemp("bench-cpu")
    rng = np.random.default_rng(0)
    paths = []
    for i in range(5):
        h = 48 + 8 * i
        cells = rng.integers(
            0, 255, (h // 8, 12, 3), dtype=np.uint8
        )  # flat 8×8 colour cells: the tiny model's input
        img = cv2.resize(cells, (96, h), interpolation=cv2.INTER_NEAREST)
        path = root / f"f{i}.png"
        cv2.imwrite(str(path), img)
        paths.append(path)
    return _tiny_model(root / "tiny.onnx"), paths


BACKENDS = ["onnxruntime", *(["openvino"] if openvino_available() else [])]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("batch", [1, 2])
def test_streamed_pass_equals_the_detector(frames, backend: str, batch: int) -> None:
    model, paths = frames
    method = bench_cpu.Method("t", "skyinspect", str(model), imgsz=64, input_kind="rgb", window=(0.0, 100.0),
                              backend=backend, threads=1, batch=batch)  # fmt: skip
    bench_cpu._init_worker(method, "")
    res = bench_cpu._run_pass([str(p) for p in paths], 0.25, 0.45, keep=True)
    det = Detector.from_onnx(model, backend=backend, intra_op_threads=1, conf=0.25, iou=0.45)
    want = [det.predict(read_image(p)) for p in paths]
    assert len(res["intervals_ms"]) == len(paths) and res["seconds"] > 0 and res["rss_mb"] > 0
    assert sum(len(w) for w in want) > 0
    for (xyxy, conf, cls), w in zip(res["detections"], want, strict=True):
        np.testing.assert_allclose(conf, w.confidence, atol=1e-4)
        np.testing.assert_allclose(np.asarray(xyxy, np.float32).reshape(-1, 4), w.xyxy, atol=1e-3)
        assert list(cls) == w.class_id.tolist()


def test_map50_of_the_ground_truth_is_perfect(frames, tmp_path: Path) -> None:
    from detection import taxonomy

    _, paths = frames
    labels = tmp_path / "truth" / "labels"
    labels.mkdir(parents=True)
    names = taxonomy.class_names(taxonomy.Domain.WIND)
    detections = []
    for i, p in enumerate(paths):
        h, w = read_image(p).shape[:2]
        box = [10.0 + i, 8.0, 60.0, 30.0]
        (labels / f"{p.stem}.txt").write_text(
            f"{i % 2} {(box[0] + box[2]) / 2 / w} {(box[1] + box[3]) / 2 / h} {(box[2] - box[0]) / w} {(box[3] - box[1]) / h}\n"
        )
        detections.append(([box], [0.9], [i % 2]))
    dom = bench_cpu.Domain(
        "wind-rgb", paths[0], tmp_path, paths, None, True, 64, (64, 64), names, "rgb", (0.0, 100.0)
    )
    assert bench_cpu._map50(dom, [str(p) for p in paths], detections) == 1.0
    wrong = [(b, c, [1 - k[0]]) for b, c, k in detections]  # every class swapped
    assert bench_cpu._map50(dom, [str(p) for p in paths], wrong) == 0.0

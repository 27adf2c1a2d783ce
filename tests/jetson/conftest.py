"""Fixtures of the edge-runtime tests: a tiny hand-built ONNX detector (fast, real onnxruntime) and image folders.

The tiny model has the ultralytics raw layout: input ``images`` (1, 3, 64, 64), output (1, 4 + nc, 64) — one
candidate box per 8×8 cell, its scores a sigmoid of a fixed 1×1 convolution of the cell's mean colour, its box the
cell centre with a colour-dependent size. Detections therefore depend on the image content (different frames,
different results), the graph runs in about a millisecond, and it is built with ``onnx.helper`` (no torch).
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from detection import taxonomy

ROOT = Path(__file__).resolve().parents[2]
DOMAIN = taxonomy.Domain.WIND
NAMES = taxonomy.class_names(DOMAIN)
TINY_HW = (64, 64)
CELL = 8


def build_tiny_onnx(path: Path, metadata: dict[str, str] | None = None, seed: int = 0) -> Path:
    """Write the tiny detector (see the module docstring) to ``path``; ``metadata`` overrides the defaults."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    h, w = TINY_HW
    gh, gw = h // CELL, w // CELL
    nc = len(NAMES)
    rng = np.random.default_rng(seed)
    w_cls = rng.normal(0, 3, (nc, 3, 1, 1)).astype(np.float32)
    b_cls = np.full(nc, -4.0, np.float32)
    w_box = np.abs(rng.normal(0, 4, (4, 3, 1, 1))).astype(np.float32)
    w_box[:2] = 0  # centre offsets: none
    ys, xs = np.meshgrid(np.arange(gh), np.arange(gw), indexing="ij")
    grid = np.zeros((1, 4, gh, gw), np.float32)
    grid[0, 0], grid[0, 1] = (xs + 0.5) * CELL, (ys + 0.5) * CELL
    grid[0, 2:] = CELL
    inits = [
        numpy_helper.from_array(w_cls, "w_cls"),
        numpy_helper.from_array(b_cls, "b_cls"),
        numpy_helper.from_array(w_box, "w_box"),
        numpy_helper.from_array(grid, "grid"),
        numpy_helper.from_array(np.array([1, 4 + nc, gh * gw], np.int64), "shape"),
    ]
    nodes = [
        helper.make_node(
            "AveragePool", ["images"], ["pooled"], kernel_shape=[CELL, CELL], strides=[CELL, CELL]
        ),
        helper.make_node("Conv", ["pooled", "w_cls", "b_cls"], ["logits"]),
        helper.make_node("Sigmoid", ["logits"], ["scores"]),
        helper.make_node("Conv", ["pooled", "w_box"], ["box_delta"]),
        helper.make_node("Add", ["grid", "box_delta"], ["boxes"]),
        helper.make_node("Concat", ["boxes", "scores"], ["cat"], axis=1),
        helper.make_node("Reshape", ["cat", "shape"], ["output0"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny-detector",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, h, w])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 4 + nc, gh * gw])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    meta = {
        "names": repr(dict(enumerate(NAMES))),
        "imgsz": f"[{h}, {w}]",
        "stride": "32",
        "task": "detect",
        "batch": "1",
        "skyinspect.domain": DOMAIN.value,
        "skyinspect.model_version": f"tiny-{seed}",
    }
    if metadata is not None:
        meta.update(metadata)
        meta = {k: v for k, v in meta.items() if v is not None}
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def frame(h: int, w: int, seed: int) -> np.ndarray:
    """A deterministic (h, w, 3) uint8 BGR frame with coloured rectangles (content varies with ``seed``)."""
    rng = np.random.default_rng(seed)
    img = np.empty((h, w, 3), np.uint8)
    img[:] = np.linspace(30, 210, w, dtype=np.uint8)[None, :, None]
    for _ in range(10):
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        s = int(rng.integers(max(4, min(h, w) // 10), max(5, min(h, w) // 3)))
        cv2.rectangle(img, (x, y), (x + s, y + s), tuple(int(c) for c in rng.integers(0, 255, 3)), -1)
    return img


def write_images(folder: Path, n: int, hw: tuple[int, int] = (96, 128), start: int = 0) -> list[Path]:
    """``n`` JPEG frames ``img_0000.jpg``… in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(start, start + n):
        p = folder / f"img_{i:04d}.jpg"
        ok, buf = cv2.imencode(".jpg", frame(*hw, seed=i), [cv2.IMWRITE_JPEG_QUALITY, 92])
        assert ok
        p.write_bytes(buf.tobytes())
        out.append(p)
    return out


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_onnx(tmp_path_factory.mktemp("edge-models") / "tiny-wind.onnx")


@pytest.fixture
def edge_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Environment for a ``skyinspect-edge`` subprocess: its own data dir and edge config location."""
    import os

    env = dict(os.environ)
    env["SKYINSPECT_DATA_DIR"] = str(tmp_path / "data")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def edge_cmd(*args: str) -> list[str]:
    """The command line of ``skyinspect-edge`` run with this interpreter."""
    return [sys.executable, "-c", "from jetson.cli import main; main()", *args]

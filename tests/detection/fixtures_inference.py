"""Tiny real ONNX models for the inference-core tests, exported by ultralytics from the ARCHITECTURE yaml.

No weights are downloaded: the network is built from ``yolo11.yaml`` (scale n) with the wind-rgb taxonomy's
classes. A freshly initialised YOLO11 outputs a constant score everywhere (activations vanish through the
untrained layers), which would make any comparison meaningless. So the untrained model is *calibrated*: one
forward pass in train mode with BatchNorm momentum 1 over synthetic frames sets every BatchNorm's running
statistics to those of a batch of letterboxed synthetic frames, which keeps activations at unit scale, and the class-logit convolution is scaled so
scores spread over 0..1. The result is deterministic (seeded), untrained, and gives tens of boxes per frame with
distinct scores — what parity tests need.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from detection import taxonomy

DOMAIN = taxonomy.Domain.WIND
NAMES = taxonomy.class_names(DOMAIN)
CLS_WEIGHT_SCALE = 2.0
CLS_BIAS = -4.0


class NetworkAttempted(RuntimeError):
    """Raised by :func:`no_network` instead of opening a non-local connection."""


@contextlib.contextmanager
def no_network() -> Iterator[list[str]]:
    """Refuse every non-local IPv4/IPv6 connection inside the block; yields the list of attempts."""
    attempts: list[str] = []
    original = socket.socket.connect

    def guarded(self: socket.socket, address: object) -> object:
        host = address[0] if isinstance(address, tuple) else str(address)
        if self.family in (socket.AF_INET, socket.AF_INET6) and host not in ("127.0.0.1", "::1", "localhost"):
            attempts.append(str(address))
            raise NetworkAttempted(f"network access attempted: {address}")
        return original(self, address)

    socket.socket.connect = guarded  # type: ignore[method-assign]
    try:
        yield attempts
    finally:
        socket.socket.connect = original  # type: ignore[method-assign]


def synthetic_frame(h: int, w: int, seed: int = 0, shapes: int = 12) -> np.ndarray:
    """A deterministic (h, w, 3) uint8 BGR frame: a horizontal gradient with coloured rectangles."""
    rng = np.random.default_rng(seed)
    img = np.empty((h, w, 3), np.uint8)
    img[:] = np.linspace(40, 200, w, dtype=np.uint8)[None, :, None]
    for _ in range(shapes):
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        s = int(rng.integers(10, max(11, min(h, w) // 4)))
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        cv2.rectangle(img, (x, y), (x + s, int(y + s * rng.uniform(0.3, 2))), colour, -1)
    return img


@dataclass
class ExportedModel:
    """An exported ONNX model and the in-memory ultralytics YOLO it came from (same weights)."""

    path: Path
    yolo: Any
    imgsz: tuple[int, int]


def build_calibrated_yolo(workdir: Path, imgsz: tuple[int, int] = (320, 320), seed: int = 0) -> Any:
    """An untrained, calibrated YOLO11n with the wind classes (see the module docstring)."""
    import torch
    import ultralytics
    import yaml
    from ultralytics import YOLO

    cfg = yaml.safe_load((Path(ultralytics.__file__).parent / "cfg/models/11/yolo11.yaml").read_text())
    cfg["nc"] = len(NAMES)
    cfg_path = workdir / "yolo11n-skytest.yaml"  # the "n" in the stem selects the nano scale
    cfg_path.write_text(yaml.safe_dump(cfg))
    torch.manual_seed(seed)
    model = YOLO(str(cfg_path))
    model.model.names = dict(enumerate(NAMES))
    net = model.model
    head = net.model[-1]
    h, w = imgsz
    from detection.preprocess import letterbox

    shapes = [(h, w), (512, 640), (1080, 1920), (640, 360), (3000, 4000), (300, 400), (4000, 3000), (h, w)]
    frames = [
        letterbox(synthetic_frame(fh, fw, seed=100 + i), (h, w))[0] for i, (fh, fw) in enumerate(shapes)
    ]
    calib = np.stack(frames)[..., ::-1].transpose(0, 3, 1, 2)
    with torch.no_grad():
        for mod in net.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.momentum = 1.0
        net.train()
        net(torch.from_numpy(np.ascontiguousarray(calib, dtype=np.float32) / 255.0))
        net.eval()
        for seq in head.cv3:
            seq[-1].weight.mul_(CLS_WEIGHT_SCALE)
            seq[-1].bias.fill_(CLS_BIAS)
    return model


def export_onnx(model: Any, workdir: Path, imgsz: tuple[int, int], name: str, **kwargs: Any) -> Path:
    """Export ``model`` to ``workdir/name.onnx`` with ultralytics (opset default, no simplification)."""
    import shutil

    with no_network(), contextlib.chdir(workdir):  # ultralytics writes into the working directory
        out = Path(
            model.export(format="onnx", imgsz=list(imgsz), simplify=False, verbose=False, **kwargs)
        ).resolve()
    target = workdir / f"{name}.onnx"
    shutil.move(out, target)
    return target

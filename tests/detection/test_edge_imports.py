"""The inference core is what the Jetson runs: importing and USING it must not load torch, ultralytics or dagster."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

CORE_MODULES = [
    "detection.detections",
    "detection.boxes",
    "detection.preprocess",
    "detection.postprocess",
    "detection.slicing",
    "detection.backends",
    "detection.model_meta",
    "detection.inference",
    "detection.images",
    "detection.cli_predict",
    "detection.prefetch",
]
FORBIDDEN = ("torch", "torchvision", "ultralytics", "dagster")
ROOT = Path(__file__).resolve().parents[2]


def run_python(code: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def loaded_forbidden_snippet() -> str:
    return (
        "import json, sys\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})\n"
        "print(json.dumps({'forbidden': bad}))\n"
    )


@pytest.mark.parametrize("module", CORE_MODULES)
def test_importing_loads_no_heavy_framework(module: str) -> None:
    out = run_python(f"import {module}\n" + loaded_forbidden_snippet())
    assert out["forbidden"] == []


def test_running_the_core_end_to_end_loads_no_heavy_framework(onnx_model, tmp_path: Path) -> None:
    """Open the real ONNX model, predict whole-frame and sliced, through the CLI too, then inspect sys.modules."""
    import cv2
    from fixtures_inference import synthetic_frame

    image = tmp_path / "frame.png"
    cv2.imwrite(str(image), synthetic_frame(480, 600, seed=3))
    code = (
        "from detection.inference import Detector\n"
        "from detection.slicing import SlicedDetector\n"
        "from detection.images import read_image\n"
        "from detection.cli_predict import predict\n"
        f"det = Detector.from_onnx({str(onnx_model.path)!r}, conf=0.05)\n"
        f"img = read_image({str(image)!r})\n"
        "n1 = len(det.predict(img)); n2 = len(SlicedDetector(det).predict(img))\n"
        "assert n1 > 0 and n2 > 0, (n1, n2)\n"
        "try:\n"
        f"    predict.main([{str(onnx_model.path)!r}, {str(image)!r}, '--slice', '--json'], standalone_mode=False)\n"
        "except SystemExit:\n    pass\n" + loaded_forbidden_snippet()
    )
    out = run_python(code)
    assert out["forbidden"] == []


BLOCK_OPENVINO = (
    "import sys\n"
    "class _NoOpenVino:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name.split('.')[0] == 'openvino':\n"
    "            raise ModuleNotFoundError(f'No module named {name!r}')\n"
    "sys.meta_path.insert(0, _NoOpenVino())\n"
)
"""Makes ``openvino`` unimportable in the child, as on a Jetson or an ``edge``-extra install."""


def test_the_core_runs_without_openvino(onnx_model) -> None:
    """OpenVINO is optional (not in the ``edge`` extra): auto falls back to onnxruntime, a request names the fix."""
    code = BLOCK_OPENVINO + (
        "import json\n"
        "import numpy as np\n"
        "from detection.backends import BackendError, openvino_available\n"
        "from detection.inference import Detector\n"
        f"det = Detector.from_onnx({str(onnx_model.path)!r}, conf=0.05)\n"
        "n = len(det.predict(np.full((480, 600, 3), 90, np.uint8)))\n"
        "try:\n"
        f"    Detector.from_onnx({str(onnx_model.path)!r}, backend='openvino')\n"
        "    refused = ''\n"
        "except BackendError as exc:\n"
        "    refused = str(exc)\n"
        "print(json.dumps({'available': openvino_available(), 'backend': det.backend.name, 'n': n,\n"
        "                  'refused': refused, 'loaded': 'openvino' in sys.modules}))\n"
    )
    out = run_python(code)
    assert out["available"] is False and out["loaded"] is False
    assert out["backend"] == "onnxruntime" and out["n"] >= 0
    assert "'openvino' (requested) is not installed" in out["refused"]

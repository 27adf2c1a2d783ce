"""The ``skyinspect-edge`` CLI: help everywhere, providers/INT8 choice, bench, and the no-torch guard in a subprocess."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import ROOT, build_tiny_onnx, write_images

from jetson.cli import cli
from jetson.config import parse_edge_config
from jetson.engine import TRT, is_qdq_model, open_detector, provider_options_for

COMMANDS = ["run", "sync", "status", "update", "rollback", "install", "models", "bench"]
FORBIDDEN = ("torch", "torchvision", "ultralytics", "dagster")


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_everywhere(command: str | None) -> None:
    args = ["--help"] if command is None else [command, "--help"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    if command is None:
        assert all(c in result.output for c in COMMANDS)


def _qdq_model(path: Path) -> Path:
    """The tiny model with a QuantizeLinear → DequantizeLinear pair on its input (an explicitly quantized graph)."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(build_tiny_onnx(path)))
    g = model.graph
    g.initializer.extend(
        [
            numpy_helper.from_array(np.array(1 / 255, np.float32), "q_scale"),
            numpy_helper.from_array(np.array(0, np.uint8), "q_zero"),
        ]
    )
    for node in g.node:
        node.input[:] = ["images_dq" if i == "images" else i for i in node.input]
    g.node.insert(0, helper.make_node("DequantizeLinear", ["images_q", "q_scale", "q_zero"], ["images_dq"]))
    g.node.insert(0, helper.make_node("QuantizeLinear", ["images", "q_scale", "q_zero"], ["images_q"]))
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize(
    ("qdq", "calib", "int8", "want_int8"),
    [
        (False, False, "auto", False),
        (True, False, "auto", True),
        (False, True, "auto", True),
        (False, False, "true", True),
        (True, False, "false", False),
    ],
)
def test_int8_only_when_the_model_carries_it(
    tmp_path: Path, qdq: bool, calib: bool, int8: str, want_int8: bool
):
    model = _qdq_model(tmp_path / "m.onnx") if qdq else build_tiny_onnx(tmp_path / "m.onnx")
    if calib:
        (tmp_path / "calibration.cache").write_text("TRT-8601-EntropyCalibration2\n")
    assert is_qdq_model(model) is qdq
    cfg = parse_edge_config({"int8": int8, "provider_options": {TRT: {"trt_max_workspace_size": 1 << 30}}})
    options = provider_options_for(model, cfg)
    assert bool(options[TRT].get("trt_int8_enable")) is want_int8
    assert options[TRT]["trt_max_workspace_size"] == 1 << 30
    if calib:
        assert options[TRT]["trt_int8_calibration_table_name"] == "calibration.cache"
    assert open_detector(model, cfg, tmp_path / "cache").predict(np.zeros((64, 64, 3), np.uint8)) is not None


def test_automatic_provider_choice_is_logged(tiny_onnx: Path, tmp_path: Path, caplog) -> None:
    with caplog.at_level(logging.INFO):
        detector = open_detector(tiny_onnx, parse_edge_config({"backend": "onnxruntime"}), tmp_path / "cache")
    assert detector.backend.providers[-1] == "CPUExecutionProvider"
    assert f"providers {detector.backend.providers}" in caplog.text


def test_automatic_backend_choice_is_logged(tiny_onnx: Path, tmp_path: Path, caplog) -> None:
    from detection.backends import choose_backend

    want, reason = choose_backend("auto")  # what this machine has: onnxruntime on CPU
    with caplog.at_level(logging.INFO):
        detector = open_detector(tiny_onnx, parse_edge_config({}), tmp_path / "cache")
    assert detector.backend.name == want
    assert f"{want} ({reason})" in caplog.text
    assert f"providers {detector.backend.providers}" in caplog.text


def test_an_unavailable_configured_provider_is_refused(tiny_onnx: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SKYINSPECT_DATA_DIR", str(tmp_path / "data"))
    cfg = tmp_path / "edge.yaml"
    cfg.write_text("providers: [tensorrt]\n")
    (tmp_path / "card").mkdir()
    result = CliRunner().invoke(
        cli,
        [
            "--edge-config",
            str(cfg),
            "run",
            "--source",
            str(tmp_path / "card"),
            "--model",
            str(tiny_onnx),
            "--once",
        ],
    )
    assert result.exit_code == 1
    assert "'TensorrtExecutionProvider' is not available" in result.output


def test_bench_reports_latency_percentiles(tiny_onnx: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SKYINSPECT_DATA_DIR", str(tmp_path / "data"))
    write_images(tmp_path / "imgs", 3)
    result = CliRunner().invoke(
        cli,
        [
            "bench",
            "--model",
            str(tiny_onnx),
            "--images",
            str(tmp_path / "imgs"),
            "--n",
            "6",
            "--warmup",
            "1",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert [r["step"] for r in doc["rows"]] == ["decode+detect", "detect"]
    for row in doc["rows"]:
        assert row["n"] == 6 and 0 < row["p50_ms"] <= row["p95_ms"] and row["frames_per_s"] > 0


def test_the_runtime_loads_no_torch_ultralytics_or_dagster(tiny_onnx: Path, tmp_path: Path) -> None:
    """Import the CLI and do a real run over a folder (whole-frame and sliced) in a fresh interpreter."""
    write_images(tmp_path / "card", 2, hw=(200, 260))
    cfg = tmp_path / "edge.yaml"
    cfg.write_text(
        "source: {stable_s: 0.05, poll_s: 0.02}\nsync: {enabled: false}\nstorage: {min_free_mb: 0}\n"
        "tiling: {mode: auto, min_pixels: 40000}\nconf: 0.45\n"
    )
    code = (
        "import json, sys\n"
        "from jetson.cli import main\n"
        "try:\n"
        f"    main(['--edge-config', {str(cfg)!r}, 'run', '--source', {str(tmp_path / 'card')!r}, '--model',"
        f" {str(tiny_onnx)!r}, '--once', '--out', {str(tmp_path / 'out')!r}])\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})\n"
        "print(json.dumps({'forbidden': bad}))\n"
    )
    env = {"SKYINSPECT_DATA_DIR": str(tmp_path / "data"), "PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"forbidden": []}
    lines = (tmp_path / "out" / "detections.jsonl").read_text().splitlines()
    assert len(lines) == 2 and all(json.loads(x)["sliced"] for x in lines)

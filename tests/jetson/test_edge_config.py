"""Edge config: defaults, YAML and TOML files, every key documented, invalid values refused with the key named."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml
from conftest import build_tiny_onnx

from jetson import config as edge_config
from jetson.config import EdgeConfig, EdgeConfigError, load_edge_config, parse_edge_config
from jetson.engine import open_detector

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "jetson" / "deploy" / "edge.example.yaml"


def _all_keys(cls: type, prefix: str = "") -> list[str]:
    out = []
    for f in dataclasses.fields(cls):
        if f.name == "path":
            continue
        default = getattr(cls(), f.name)
        if dataclasses.is_dataclass(default):
            out.extend(_all_keys(type(default), f"{prefix}{f.name}."))
        else:
            out.append(prefix + f.name)
    return out


def test_defaults_without_a_file(tmp_path: Path) -> None:
    cfg = load_edge_config(None, environ={"XDG_CONFIG_HOME": str(tmp_path)})
    assert cfg == EdgeConfig()
    assert cfg.providers is None and cfg.tiling.mode == "auto" and cfg.path is None


def test_example_file_documents_every_key_and_equals_the_defaults() -> None:
    data = yaml.safe_load(EXAMPLE.read_text())
    flat = {
        f"{k}.{kk}" if isinstance(v, dict) and k != "provider_options" else k
        for k, v in data.items()
        for kk in (v if isinstance(v, dict) and k != "provider_options" else [None])
    }
    assert sorted(flat) == sorted(_all_keys(EdgeConfig))
    assert dataclasses.replace(load_edge_config(EXAMPLE), path=None) == EdgeConfig()
    doc = edge_config.__doc__ or ""
    for key in _all_keys(EdgeConfig):
        assert f"{key.split('.')[-1]}:" in doc, f"{key} is not documented in jetson/config.py"


@pytest.mark.parametrize("suffix", [".yaml", ".toml"])
def test_yaml_and_toml_files(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"edge{suffix}"
    if suffix == ".yaml":
        path.write_text("conf: 0.4\nproviders: [cuda, cpu]\ntiling:\n  mode: always\n  tile: 512\n")
    else:
        path.write_text('conf = 0.4\nproviders = ["cuda", "cpu"]\n[tiling]\nmode = "always"\ntile = 512\n')
    cfg = load_edge_config(path)
    assert (cfg.conf, cfg.providers, cfg.tiling.mode, cfg.tiling.tile, cfg.path) == (
        0.4,
        ("cuda", "cpu"),
        "always",
        512,
        path,
    )


def test_found_through_the_environment_and_xdg(tmp_path: Path) -> None:
    (tmp_path / "skyinspect").mkdir()
    (tmp_path / "skyinspect" / "edge.yaml").write_text("iou: 0.6\n")
    assert load_edge_config(environ={"XDG_CONFIG_HOME": str(tmp_path)}).iou == 0.6
    other = tmp_path / "other.yaml"
    other.write_text("iou: 0.3\n")
    env = {"XDG_CONFIG_HOME": str(tmp_path), edge_config.ENV_EDGE_CONFIG: str(other)}
    assert load_edge_config(environ=env).iou == 0.3


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"confidence": 0.3}, "unknown key(s) confidence"),
        ({"tiling": {"overlapp": 0.2}}, "tiling.overlapp"),
        ({"conf": "high"}, "conf: expected a number"),
        ({"conf": 1.5}, "conf must be in 0..1"),
        ({"max_det": 2.5}, "max_det: expected a whole number"),
        ({"tiling": {"mode": "sometimes"}}, "tiling.mode must be"),
        ({"tiling": {"overlap": 1.0}}, "tiling.overlap"),
        ({"sync": {"enabled": "yes"}}, "sync.enabled: expected true or false"),
        ({"sync": {"backoff_base_s": 10, "backoff_max_s": 1}}, "backoff_base_s <= backoff_max_s"),
        ({"providers": "cuda"}, None),
        ({"providers": [1]}, "providers: expected null or a list"),
        ({"provider_options": {"cuda": 3}}, "provider_options"),
        ({"int8": "maybe"}, "int8: expected auto"),
        ({"device": "bad id/with slash"}, "not a safe id"),
        ({"model_kind": "pytorch"}, "model_kind must be"),
        ({"storage": {"min_free_mb": -1}}, "min_free_mb"),
        ({"tiling": 3}, "tiling: expected a mapping"),
        ({"backend": "tensorflow"}, "backend must be auto, onnxruntime or openvino"),
        ({"performance_hint": "fast"}, "performance_hint must be latency or throughput"),
    ],
)
def test_invalid_values_name_the_key(data: dict, message: str | None) -> None:
    if message is None:
        assert parse_edge_config(data).providers == ("cuda",)
        return
    with pytest.raises(EdgeConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_edge_config(data)


@pytest.mark.parametrize(
    ("data", "backend", "hint"),
    [({}, "auto", "latency"), ({"backend": "OpenVINO", "performance_hint": "Throughput"}, "openvino", "throughput"),
     ({"backend": "onnxruntime"}, "onnxruntime", "latency")],
)  # fmt: skip
def test_backend_settings(data: dict, backend: str, hint: str) -> None:
    cfg = parse_edge_config(data)
    assert (cfg.backend, cfg.performance_hint) == (backend, hint)


def test_unparseable_and_missing_files(tmp_path: Path) -> None:
    bad = tmp_path / "edge.yaml"
    bad.write_text("conf: [unclosed\n")
    with pytest.raises(EdgeConfigError, match="cannot parse"):
        load_edge_config(bad)
    with pytest.raises(EdgeConfigError, match="does not exist"):
        load_edge_config(tmp_path / "missing.yaml")


def test_device_id_defaults_to_a_key_safe_host_name() -> None:
    from objectstore.keys import validate_id

    assert validate_id(EdgeConfig().device_id(), "device")
    assert EdgeConfig(device="jetson-07").device_id() == "jetson-07"


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("iou: 0.5\n", None),  # not set: the model's operating point
        ("conf: null\n", None),
        ("conf: 0.4\n", 0.4),
        ("conf: 0\n", 0.0),  # a whole number is a threshold too
    ],
)
def test_conf_is_null_unless_set(tmp_path: Path, text: str, want: float | None) -> None:
    path = tmp_path / "edge.yaml"
    path.write_text(text)
    assert load_edge_config(path).conf == want


@pytest.mark.parametrize(
    ("model_conf", "cfg_conf", "want"),
    [
        ("0.4", None, (0.4, "model")),  # conf: null → the model's skyinspect.conf
        ("0.4", 0.3, (0.3, "config")),  # an explicit conf is used exactly as before
        (None, None, (0.25, "default")),  # a model without the key: 0.25
    ],
)
def test_the_runtime_takes_the_models_operating_point_when_conf_is_null(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    model_conf: str | None,
    cfg_conf: float | None,
    want: tuple,
) -> None:
    model = build_tiny_onnx(tmp_path / "tiny.onnx", {"skyinspect.conf": model_conf})
    with caplog.at_level("INFO", logger="jetson.engine"):
        detector = open_detector(model, EdgeConfig(conf=cfg_conf), tmp_path / "cache")
    assert detector.conf == want[0]
    assert f"conf {want[0]:g} (from {want[1]})" in caplog.text

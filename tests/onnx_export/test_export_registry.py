"""Exports stored in the model registry (real SeaweedFS): sha256 in the card, pulled by alias, verified."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from detection.model_meta import ModelMeta
from detection.registry import ModelRegistry
from onnx_export.source import sha256_file
from skyinspect.cli import cli


def _env(s3_settings, store, tmp: Path) -> dict[str, str]:
    return {
        "SKYINSPECT_S3_ENDPOINT": s3_settings.s3_endpoint,
        "SKYINSPECT_S3_ACCESS_KEY": s3_settings.s3_access_key,
        "SKYINSPECT_S3_SECRET_KEY": s3_settings.s3_secret_key,
        "SKYINSPECT_S3_BUCKET": store.bucket,
        "SKYINSPECT_DATA_DIR": str(tmp / "data"),
    }


def test_export_registry_reference_stores_artifacts(
    s3_settings, object_store, tiny_model, tmp_path: Path
) -> None:
    registry = ModelRegistry(object_store)
    registry.register("pv-rgb", tiny_model.weights, version="v1")
    env = _env(s3_settings, object_store, tmp_path)
    runner = CliRunner()
    result = runner.invoke(
        cli, ["export", "pv-rgb:candidate", "--half", "--out", str(tmp_path / "out")], env=env
    )
    assert result.exit_code == 0, result.output
    card = registry.card("pv-rgb", "v1")
    arts = card["artifacts"]
    assert {"pv-rgb-fp32.onnx", "pv-rgb-fp16.onnx"} <= set(arts)
    assert arts["pv-rgb-fp32.onnx"]["kind"] == "onnx" and arts["pv-rgb-fp16.onnx"]["kind"] == "onnx-fp16"
    for name in ("pv-rgb-fp32.onnx", "pv-rgb-fp16.onnx"):
        assert arts[name]["sha256"] == sha256_file(tmp_path / "out" / name)
    pulled = registry.pull(
        "pv-rgb", "candidate", tmp_path / "site", kinds=["onnx"]
    )  # the on-site runtime's path
    meta = ModelMeta.from_onnx(pulled.path("onnx"))
    assert meta.model_version == "v1" and meta.domain is not None and meta.domain.value == "pv-rgb"

    # verify every ONNX artifact of the version, by reference
    result = runner.invoke(
        cli,
        ["export", "verify", "pv-rgb:v1", "--data", str(tiny_model.data_yaml), "--match-conf", "0.05"],
        env=env,
    )
    assert result.exit_code == 0, result.output
    assert "pv-rgb-fp32.onnx" in result.output and "pv-rgb-fp16.onnx" in result.output


@pytest.mark.parametrize(
    ("ref", "message"),
    [("pv-rgb:champion", "alias 'champion' is not set"), ("pv-rgb:v9", "version v9 is not registered")],
)
def test_unknown_registry_reference(
    s3_settings, object_store, tiny_model, tmp_path: Path, ref: str, message: str
) -> None:
    ModelRegistry(object_store).register("pv-rgb", tiny_model.weights, version="v1")
    result = CliRunner().invoke(cli, ["export", ref], env=_env(s3_settings, object_store, tmp_path))
    assert result.exit_code == 1 and message in result.output, result.output


def test_register_refuses_other_weights(s3_settings, object_store, tiny_model, tmp_path: Path) -> None:
    other = tmp_path / "other.pt"
    other.write_bytes(
        tiny_model.weights.read_bytes() + b"\0"
    )  # a different file (torch ignores trailing bytes)
    registry = ModelRegistry(object_store)
    registry.register("pv-rgb", other, version="v2", run_record={})
    result = CliRunner().invoke(
        cli, ["export", str(tiny_model.weights), "--register", "pv-rgb/v2", "--out", str(tmp_path / "o")],
        env=_env(s3_settings, object_store, tmp_path),
    )  # fmt: skip
    assert result.exit_code == 1 and "export the version's own weights" in result.output, result.output
    assert not [
        a for a in registry.card("pv-rgb", "v2")["artifacts"].values() if a["kind"].startswith("onnx")
    ]

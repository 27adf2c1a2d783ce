"""Installed models: pull the registry champion (sha256 verified), atomic swap, rollback, aliases, refusals."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import build_tiny_onnx

from detection.registry import ChecksumError, ModelRegistry
from jetson.cli import cli
from jetson.models import LocalModels, ModelStoreError, pull_and_install
from objectstore.client import ObjectStore


def register(registry: ModelRegistry, tmp_path: Path, version: str, seed: int, promote: bool = True) -> Path:
    weights = tmp_path / f"{version}.pt"
    weights.write_bytes(f"weights {version}".encode())  # the registry stores it; the edge never opens it
    registry.register("wind-rgb", weights, version=version)
    onnx = build_tiny_onnx(
        tmp_path / version / "model.onnx", {"skyinspect.model_version": version}, seed=seed
    )
    registry.add_artifact("wind-rgb", version, onnx, "onnx")
    if promote:
        registry.promote("wind-rgb", version)
    return onnx


def test_update_pulls_the_champion_and_rollback_swaps_back(object_store: ObjectStore, tmp_path: Path) -> None:
    registry = ModelRegistry(object_store)
    models = LocalModels(tmp_path / "models")
    first = register(registry, tmp_path, "v1", seed=1)
    m1 = pull_and_install(models, object_store, "wind-rgb")
    assert (m1.version, m1.alias) == ("v1", "champion")
    assert m1.path.read_bytes() == first.read_bytes()
    assert os.readlink(tmp_path / "models" / "wind-rgb" / "current") == "v1"

    register(registry, tmp_path, "v2", seed=2)
    pull_and_install(models, object_store, "wind-rgb")
    assert models.summary()["wind-rgb"] == {"current": "v2", "previous": "v1", "versions": ["v1", "v2"]}
    assert models.resolve("wind-rgb").version == "v2"
    assert models.resolve("previous").version == "v1"
    assert models.resolve("wind-rgb:v1").version == "v1"
    assert models.resolve("champion").version == "v2"

    assert models.rollback("wind-rgb") == ("v2", "v1")
    assert models.resolve("current").version == "v1"
    assert models.rollback("wind-rgb") == ("v1", "v2")  # and forward again


def test_a_tampered_artifact_is_never_swapped_in(object_store: ObjectStore, tmp_path: Path) -> None:
    registry = ModelRegistry(object_store)
    models = LocalModels(tmp_path / "models")
    register(registry, tmp_path, "v1", seed=1)
    pull_and_install(models, object_store, "wind-rgb")
    register(registry, tmp_path, "v2", seed=2)
    key = registry.card("wind-rgb", "v2")["artifacts"]["model.onnx"]["key"]
    object_store.put_bytes(key, b"swapped on the server")
    with pytest.raises(ChecksumError, match="sha256"):
        pull_and_install(models, object_store, "wind-rgb")
    assert models.resolve("current").version == "v1"
    assert not (tmp_path / "models" / "wind-rgb" / "v2" / "model.onnx").exists()


def test_install_refuses_a_model_without_metadata_and_keeps_the_current_one(tmp_path: Path) -> None:
    models = LocalModels(tmp_path / "models")
    good = models.install_file(build_tiny_onnx(tmp_path / "good.onnx"), version="good")
    bad = build_tiny_onnx(tmp_path / "bad.onnx", {"names": None, "imgsz": None})
    with pytest.raises(ModelStoreError, match=r"refused: .*lacks required key\(s\) names, imgsz"):
        models.install_file(bad, version="bad")
    assert models.resolve("current") == good


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("nothing", "no installed wind-rgb model is named or aliased 'nothing'"),
        ("pv-rgb", "no current model"),
        ("previous", "no previous model"),
    ],
)
def test_unknown_aliases_are_named(tmp_path: Path, ref: str, message: str) -> None:
    models = LocalModels(tmp_path / "models")
    with pytest.raises(ModelStoreError, match="no models are installed"):
        models.resolve("current")
    models.install_file(build_tiny_onnx(tmp_path / "m.onnx"), version="v1")
    with pytest.raises(ModelStoreError, match=message):
        models.resolve(ref)


def test_cli_update_run_by_alias_and_rollback(s3_settings, object_store, tmp_path: Path, monkeypatch) -> None:
    registry = ModelRegistry(object_store)
    register(registry, tmp_path, "v1", seed=1)
    env = {
        "SKYINSPECT_S3_ENDPOINT": s3_settings.s3_endpoint,
        "SKYINSPECT_S3_ACCESS_KEY": s3_settings.s3_access_key,
        "SKYINSPECT_S3_SECRET_KEY": s3_settings.s3_secret_key,
        "SKYINSPECT_S3_BUCKET": object_store.bucket,
        "SKYINSPECT_DATA_DIR": str(tmp_path / "data"),
    }
    runner = CliRunner()

    def edge(*args: str, code: int = 0) -> str:
        result = runner.invoke(cli, list(args), env=env, catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result.output

    assert "give --domain" in edge("update", code=1)
    assert "wind-rgb: v1 is current" in edge("update", "--domain", "wind-rgb")
    register(registry, tmp_path, "v2", seed=2)
    assert "wind-rgb: v2 is current" in edge("update")  # every installed domain
    assert "wind-rgb:v1 (previous)" in edge("models")
    (tmp_path / "card").mkdir()
    edge("run", "--source", str(tmp_path / "card"), "--model", "wind-rgb", "--once", "--no-sync")
    assert "v2/model.onnx" in edge("status")
    assert "rolled back from v2 to v1" in edge("rollback")
    assert "wind-rgb: current v1, previous v2" in edge("status")
    assert "version v9 is not registered" in edge("update", "--domain", "wind-rgb", "--ref", "v9", code=1)

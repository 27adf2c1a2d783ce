"""Model resolution: the registry's champion first, then the shipped defaults in a fixed order, else a clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.resources import (
    ModelNotAvailable,
    ModelRegistryResource,
    ObjectStoreResource,
    SettingsResource,
    shipped_model_path,
)
from skyinspect.config import Settings


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (["wind-rgb.onnx", "wind-rgb/best.onnx", "wind-rgb/best.pt"], "wind-rgb.onnx"),
        (["wind-rgb/best.onnx", "wind-rgb/best.pt"], "wind-rgb/best.onnx"),
        (["wind-rgb/best.pt", "pv-rgb.onnx"], "wind-rgb/best.pt"),
        ([], "wind-rgb/best.pt"),  # where `make models` will put it (does not exist yet)
    ],
)
def test_shipped_model_lookup_order(tmp_path: Path, files: list[str], expected: str) -> None:
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    assert shipped_model_path("wind-rgb", tmp_path) == tmp_path / expected


def test_no_champion_and_no_shipped_model_says_what_to_run(
    pipeline_settings: Settings, tmp_path: Path
) -> None:
    store = ObjectStoreResource(settings=SettingsResource.from_settings(pipeline_settings))
    models = ModelRegistryResource(store=store, models_dir=str(tmp_path))
    with pytest.raises(
        ModelNotAvailable, match=r"no pv-thermal model: the registry has no champion.*make models"
    ):
        models.resolve("pv-thermal")


def test_shipped_default_is_used_when_the_registry_has_no_champion(
    pipeline_settings: Settings, shipped_models: Path
) -> None:
    store = ObjectStoreResource(settings=SettingsResource.from_settings(pipeline_settings))
    resolved = ModelRegistryResource(store=store, models_dir=str(shipped_models)).resolve("wind")
    assert resolved.source == "shipped" and resolved.domain == "wind-rgb"
    assert resolved.path == shipped_models / "wind-rgb.onnx" and len(resolved.sha256) == 64


def test_settings_resource_overrides_only_what_it_is_given(pipeline_settings: Settings) -> None:
    got = SettingsResource.from_settings(pipeline_settings).get()
    assert (got.s3_endpoint, got.s3_bucket, got.data_dir) == (
        pipeline_settings.s3_endpoint, pipeline_settings.s3_bucket, pipeline_settings.data_dir,
    )  # fmt: skip
    assert got.ingest_workers == Settings().ingest_workers  # not given: from the environment / defaults

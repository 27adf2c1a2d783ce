"""The skyinspect.* metadata for every domain parses back through ModelMeta (no model needed)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from detection import taxonomy
from detection.model_meta import PREFIX, SKYINSPECT_KEYS, ModelMeta
from onnx_export.export import skyinspect_metadata, variant_name
from onnx_export.source import ModelSource, parse_registry_ref


def _source(domain: taxonomy.Domain, window: tuple[float, float]) -> ModelSource:
    names = dict(enumerate(taxonomy.class_names(domain)))
    return ModelSource(
        weights=Path("/nowhere/best.pt"), sha256="ab" * 32, names=names, domain=domain, imgsz=(384, 640), stride=32,
        model_version="20261129-v1", dataset_version="0123456789abcdef", metrics={"map50": 0.61, "map50_95": 0.4},
        thermal_window_c=window,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("domain", "window", "kind"),
    [
        (taxonomy.Domain.PV_THERMAL, (10.0, 80.0), "thermal"),
        (taxonomy.Domain.PV_RGB, (0.0, 100.0), "rgb"),
        (taxonomy.Domain.WIND, (0.0, 100.0), "rgb"),
    ],
)
def test_metadata_parses_for_every_domain(
    domain: taxonomy.Domain, window: tuple[float, float], kind: str
) -> None:
    source = _source(domain, window)
    export = {
        "precision": "int8",
        "opset": 17,
        "dynamic_batch": True,
        "int8": {"excluded_nodes": ["/model.23/Sub"]},
    }
    meta_map = {"names": repr(source.names), "imgsz": "[384, 640]", "stride": "32", "task": "detect",
                **skyinspect_metadata(source, export)}  # fmt: skip
    assert set(meta_map) >= {PREFIX + k for k in SKYINSPECT_KEYS}
    assert all(isinstance(v, str) for v in meta_map.values())  # ONNX metadata values are strings
    meta = ModelMeta.from_metadata(meta_map, "test")
    assert meta.domain is domain and meta.input_kind == kind and meta.thermal_window_c == window
    assert meta.imgsz == (384, 640) and meta.model_version == "20261129-v1"
    assert meta.dataset_version == "0123456789abcdef" and meta.taxonomy_version == taxonomy.TAXONOMY_VERSION
    assert meta.metrics == {"map50": 0.61, "map50_95": 0.4}
    assert meta.extra[PREFIX + "export"] == json.loads(json.dumps(export))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("pv-rgb:champion", ("pv-rgb", "champion")),
        ("wind:candidate", ("wind-rgb", "candidate")),
        ("pv-thermal/20261129-v1", ("pv-thermal", "20261129-v1")),
        ("runs/best.pt", None),
        ("best.pt", None),
        ("some/dir/model", None),
    ],
)
def test_parse_registry_ref(text: str, expected: tuple[str, str] | None) -> None:
    assert parse_registry_ref(text) == expected


@pytest.mark.parametrize(
    ("precision", "dynamic", "name"),
    [("fp32", False, "pv-rgb-fp32.onnx"), ("int8", True, "pv-rgb-int8-dynbatch.onnx")],
)
def test_variant_name(precision: str, dynamic: bool, name: str) -> None:
    assert variant_name(taxonomy.Domain.PV_RGB, precision, dynamic) == name


@pytest.mark.parametrize(
    ("train_tile", "export_imgsz", "want"),
    [(640, [384, 640], [640, 1067]), (384, [384, 640], [384, 640]), (None, [384, 640], None)],
)
def test_slice_tile_keeps_the_training_scale(train_tile, export_imgsz, want) -> None:
    """Trained at 384 on ``train_tile`` px tiles: the export says which frame pixels one input covers."""
    source = replace(_source(taxonomy.Domain.WIND, (0.0, 100.0)), train_tile=train_tile)
    meta_map = {"names": repr(source.names), "imgsz": json.dumps(export_imgsz), "stride": "32", "task": "detect",
                **skyinspect_metadata(source, {"imgsz": export_imgsz})}  # fmt: skip
    meta = ModelMeta.from_metadata(meta_map, "test")
    assert (list(meta.slice_tile) if meta.slice_tile else None) == want
    assert (PREFIX + "slice_tile" in meta_map) is (want is not None)

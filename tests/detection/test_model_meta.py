"""detection.model_meta: ultralytics' metadata strings, skyinspect keys, errors naming keys and file."""

from __future__ import annotations

import pytest

from detection import taxonomy
from detection.model_meta import (
    DEFAULT_CONF,
    ModelMeta,
    ModelMetadataError,
    resolve_conf,
    slice_tile_for,
    train_tile_of,
)

WIND = taxonomy.class_names("wind-rgb")
ULTRA = {
    "description": "Ultralytics YOLO11n model",
    "author": "Ultralytics",
    "version": "8.4.190",
    "task": "detect",
    "batch": "1",
    "stride": "32",
    "imgsz": "[384, 640]",
    "names": repr(dict(enumerate(WIND))),
    "end2end": "False",
    "channels": "3",
    "args": "{'batch': 1, 'nms': None, 'dynamic': False, 'half': False}",
}


def test_parses_ultralytics_metadata() -> None:
    meta = ModelMeta.from_metadata(ULTRA, "wind.onnx")
    assert meta.names == dict(enumerate(WIND)) and meta.nc == 6
    assert meta.imgsz == (384, 640)  # (height, width) as written
    assert (meta.stride, meta.task, meta.batch, meta.end2end, meta.channels) == (32, "detect", 1, False, 3)
    assert meta.domain is taxonomy.Domain.WIND  # inferred from the class names
    assert meta.input_kind == "rgb"
    assert meta.extra["args"]["batch"] == 1 and meta.extra["author"] == "Ultralytics"


def test_parses_skyinspect_keys() -> None:
    md = {
        **ULTRA,
        "names": repr(dict(enumerate(taxonomy.class_names("pv-thermal")))),
        "skyinspect.domain": "pv-thermal",
        "skyinspect.taxonomy_version": "1.0",
        "skyinspect.input_kind": "thermal",
        "skyinspect.thermal_window_c": "[10.0, 80.0]",
        "skyinspect.model_version": "pv-thermal-2026.11.29-1",
        "skyinspect.dataset_version": "ds-7",
        "skyinspect.metrics": '{"mAP50": 0.81}',
        "skyinspect.export": '{"precision": "fp16"}',
    }
    meta = ModelMeta.from_metadata(md, "t.onnx")
    assert meta.domain is taxonomy.Domain.PV_THERMAL and meta.input_kind == "thermal"
    assert meta.thermal_window_c == (10.0, 80.0) and meta.model_version == "pv-thermal-2026.11.29-1"
    assert meta.metrics == {"mAP50": 0.81} and meta.extra["skyinspect.export"] == {"precision": "fp16"}
    again = ModelMeta.from_metadata(meta.to_metadata(), "again")
    assert (again.names, again.imgsz, again.domain, again.thermal_window_c, again.metrics) == (
        meta.names,
        meta.imgsz,
        meta.domain,
        meta.thermal_window_c,
        meta.metrics,
    )


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"names": None}, r"wind.onnx: model metadata lacks required key\(s\) names "),
        ({"names": None, "stride": None, "task": None}, r"lacks required key\(s\) names, stride, task"),
        ({"imgsz": ""}, r"lacks required key\(s\) imgsz"),
        ({"task": "segment"}, r"wind.onnx: metadata key 'task' is 'segment'"),
        ({"names": "{0: 'a', 2: 'b'}"}, r"'names' ids must be 0..1"),
        ({"names": "not a literal ("}, r"'names' is not a JSON or Python literal"),
        ({"imgsz": "[1, 2, 3]"}, r"'imgsz' must be \[height, width\]"),
        ({"end2end": "maybe"}, r"'end2end' should be true/false"),
        ({"skyinspect.domain": "marine"}, r"'skyinspect.domain': unknown domain 'marine'"),
        ({"skyinspect.input_kind": "lidar"}, r"'skyinspect.input_kind' must be one of"),
        ({"skyinspect.thermal_window_c": "[50, 10]"}, r"thermal_window_c' must be \[low, high\]"),
    ],
)
def test_errors_name_the_key_and_file(changes, match) -> None:
    md = {**ULTRA, **changes}
    md = {k: v for k, v in md.items() if v is not None}
    with pytest.raises(ModelMetadataError, match=match):
        ModelMeta.from_metadata(md, "wind.onnx")


@pytest.mark.parametrize(
    ("key", "value", "field", "want"),
    [
        ("names", '["a", "b"]', "names", {0: "a", 1: "b"}),  # JSON list
        ("names", '{"0": "a", "1": "b"}', "names", {0: "a", 1: "b"}),  # JSON dict with string keys
        ("imgsz", "320", "imgsz", (320, 320)),
        ("stride", "[8, 16, 32]", "stride", 32),
        ("end2end", "True", "end2end", True),
        ("args", "{'nms': True}", "end2end", True),  # nms=True exports are end-to-end
    ],
)
def test_value_variants(key, value, field, want) -> None:
    meta = ModelMeta.from_metadata({**ULTRA, key: value})
    assert getattr(meta, field) == want


def test_unknown_names_leave_domain_unset() -> None:
    meta = ModelMeta.from_metadata({**ULTRA, "names": "{0: 'person'}"})
    assert meta.domain is None and meta.input_kind == "rgb"


def test_from_onnx_real_file(onnx_model) -> None:
    meta = ModelMeta.from_onnx(onnx_model.path)
    assert meta.names == dict(enumerate(WIND)) and meta.imgsz == (320, 320) and meta.stride == 32
    assert meta.domain is taxonomy.Domain.WIND and meta.source == str(onnx_model.path)


def test_from_onnx_missing_keys_names_file(tmp_path, onnx_model) -> None:
    import onnx

    model = onnx.load(str(onnx_model.path))
    keep = [p for p in model.metadata_props if p.key not in ("names", "task")]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    path = tmp_path / "stripped.onnx"
    onnx.save(model, str(path))
    with pytest.raises(
        ModelMetadataError, match=rf"{path}: model metadata lacks required key\(s\) names, task"
    ):
        ModelMeta.from_onnx(path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ModelMeta.from_onnx(tmp_path / "nope.onnx")


# ------------------------------------------------------------------------------------------------ slice tile
def test_slice_tile_round_trips_and_scales_with_the_input() -> None:
    meta = ModelMeta.from_metadata(
        {**ULTRA, "imgsz": "[320, 320]", "skyinspect.slice_tile": "[640, 640]"}, "w"
    )
    assert meta.slice_tile == (640, 640)
    assert meta.tile_for((320, 320)) == (
        640,
        640,
    )  # the exported input: the training scale (2 px per input px)
    assert meta.tile_for((640, 640)) == (1280, 1280)  # a torch model run at 640 keeps that scale
    assert ModelMeta.from_metadata(meta.to_metadata()).slice_tile == (640, 640)
    plain = ModelMeta.from_metadata(ULTRA)
    assert plain.slice_tile is None and plain.tile_for((384, 640)) == (384, 640)  # no slice_tile: 1:1
    assert "skyinspect.slice_tile" not in plain.to_metadata()


@pytest.mark.parametrize("value", ["[640]", "[0, 640]", "[640.5, 640]", "'big'"])
def test_bad_slice_tile_is_refused(value) -> None:
    with pytest.raises(ModelMetadataError, match=r"wind.onnx: metadata key 'skyinspect.slice_tile' must be"):
        ModelMeta.from_metadata({**ULTRA, "skyinspect.slice_tile": value}, "wind.onnx")


@pytest.mark.parametrize(
    ("input_hw", "train_imgsz", "train_tile", "want"),
    [
        ((320, 320), 320, 640, (640, 640)),  # 640 px tiles trained at 320: slice 640 px tiles
        ((640, 640), 320, 320, (640, 640)),  # 320 px crops at 320, exported at 640: whole 640 px views, 1:1
        ((320, 320), 320, 320, (320, 320)),
        ((320, 320), 320, None, None),  # whole frames resized: no scale to keep
    ],
)
def test_slice_tile_for(input_hw, train_imgsz, train_tile, want) -> None:
    assert slice_tile_for(input_hw, train_imgsz, train_tile) == want


def test_train_tile_of_reads_data_yaml(tmp_path) -> None:
    tiled, whole, broken = tmp_path / "tiled.yaml", tmp_path / "whole.yaml", tmp_path / "broken.yaml"
    tiled.write_text("names: {0: a}\ntile: 640\n")
    whole.write_text("names: {0: a}\n")
    broken.write_text("names: [\n")
    assert train_tile_of(tiled) == 640
    assert train_tile_of(whole) is None and train_tile_of(broken) is None
    assert train_tile_of(tmp_path / "missing.yaml") is None and train_tile_of(None) is None


# ------------------------------------------------------------------------------------------------ operating point
@pytest.mark.parametrize(
    ("value", "want"),
    [
        ("0.1", 0.1),
        (" 0.35 ", 0.35),
        ("0.4", 0.4),
        (0.5, 0.5),  # a non-string value (an in-memory map) passes through
        ("", None),  # written empty: absent
        (None, None),
    ],
)
def test_conf_is_read_and_round_trips(value, want) -> None:
    md = {**ULTRA} if value is None else {**ULTRA, "skyinspect.conf": value}
    meta = ModelMeta.from_metadata(md, "wind.onnx")
    assert meta.conf == want
    written = meta.to_metadata()
    assert ("skyinspect.conf" in written) is (want is not None)
    assert ModelMeta.from_metadata(written).conf == want
    assert "skyinspect.conf" not in meta.extra


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("0", "must be a confidence threshold in \\(0, 1\\), got '0'"),
        ("1", "must be a confidence threshold in \\(0, 1\\)"),
        ("1.5", "must be a confidence threshold in \\(0, 1\\)"),
        ("-0.1", "must be a confidence threshold in \\(0, 1\\)"),
        ("true", "must be a confidence threshold in \\(0, 1\\)"),  # a bool is not a threshold
        ("[0.25]", "must be a confidence threshold in \\(0, 1\\)"),
        ("'0.25'", "must be a confidence threshold in \\(0, 1\\)"),  # a quoted string
        ("nan", "is not a JSON or Python literal"),
        ("high", "is not a JSON or Python literal"),
    ],
)
def test_bad_conf_is_refused_naming_file_and_key(value, match) -> None:
    with pytest.raises(ModelMetadataError, match=rf"^wind\.onnx: metadata key 'skyinspect\.conf' {match}"):
        ModelMeta.from_metadata({**ULTRA, "skyinspect.conf": value}, "wind.onnx")


@pytest.mark.parametrize(("value", "ok"), [("0.15", True), ("1.5", False)])
def test_conf_in_a_real_onnx_file(tmp_path, onnx_model, value, ok) -> None:
    import onnx

    model = onnx.load(str(onnx_model.path))
    entry = model.metadata_props.add()
    entry.key, entry.value = "skyinspect.conf", value
    path = tmp_path / "with-conf.onnx"
    onnx.save(model, str(path))
    if ok:
        assert ModelMeta.from_onnx(path).conf == float(value)
        assert ModelMeta.from_onnx(onnx_model.path).conf is None  # the key is optional
    else:
        with pytest.raises(ModelMetadataError, match=rf"{path}: metadata key 'skyinspect\.conf' must be"):
            ModelMeta.from_onnx(path)


@pytest.mark.parametrize(
    ("explicit", "model_conf", "want"),
    [
        (None, 0.1, (0.1, "model")),  # nothing configured: the model's operating point
        (None, None, (DEFAULT_CONF, "default")),  # and without one: 0.25
        (0.3, 0.1, (0.3, "config")),  # a configured value wins, exactly as given
        (0.25, None, (0.25, "config")),
        (0.0, 0.1, (0.0, "config")),  # 0 is a value, not "unset"
    ],
)
def test_resolve_conf(explicit, model_conf, want) -> None:
    md = {**ULTRA} if model_conf is None else {**ULTRA, "skyinspect.conf": str(model_conf)}
    assert resolve_conf(explicit, ModelMeta.from_metadata(md)) == want
    assert resolve_conf(explicit, None) == (want if explicit is not None else (DEFAULT_CONF, "default"))

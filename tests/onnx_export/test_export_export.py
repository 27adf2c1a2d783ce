"""Export of the tiny trained model: variants, shapes, precisions, metadata round trip, the export record."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from detection import taxonomy
from detection.model_meta import PREFIX, REQUIRED_KEYS, SKYINSPECT_KEYS, ModelMeta
from onnx_export.export import DEFAULT_OPSET
from onnx_export.source import sha256_file
from onnx_export.verify import graph_precision


def _by(exported: dict, precision: str, dynamic: bool):
    return next(v for v in exported["variants"] if v.precision == precision and v.dynamic_batch == dynamic)


@pytest.mark.parametrize(
    ("precision", "dynamic", "batch"),
    [("fp32", False, 1), ("fp32", True, 3), ("fp16", False, 1), ("fp16", True, 2), ("int8", False, 1)],
)
def test_variant_shapes_and_precision(exported: dict, precision: str, dynamic: bool, batch: int) -> None:
    v = _by(exported, precision, dynamic)
    h, w = exported["source"].imgsz
    model = onnx.load(str(v.path))
    onnx.checker.check_model(model)
    dims = [d.dim_value or d.dim_param for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims[1:] == [3, h, w]  # height and width are pinned even in the dynamic-batch variant
    assert isinstance(dims[0], str) if dynamic else dims[0] == 1
    assert next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) == DEFAULT_OPSET
    assert graph_precision(v.path) == precision
    session = ort.InferenceSession(str(v.path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].type == "tensor(float)"  # fp16 keeps float32 I/O
    out = session.run(None, {"images": np.random.default_rng(0).random((batch, 3, h, w), dtype=np.float32)})[
        0
    ]
    nc = len(exported["source"].names)
    assert out.shape == (batch, 4 + nc, sum((h // s) * (w // s) for s in (8, 16, 32)))


def test_int8_keeps_stem_and_head_decode_in_float(exported: dict) -> None:
    v = _by(exported, "int8", False)
    model = onnx.load(str(v.path))
    excluded = v.export["int8"]["excluded_nodes"]
    assert any("/dfl/" in n for n in excluded) and any(n.endswith("cv3.0.2/Conv") for n in excluded)
    # an excluded conv reads float weights directly; a quantized one reads them through DequantizeLinear
    producers = {o: n for n in model.graph.node for o in n.output}
    convs = {n.name: n for n in model.graph.node if n.op_type == "Conv"}
    head_conv = convs[next(n for n in excluded if n.endswith("cv3.0.2/Conv"))]
    assert head_conv.input[1] not in producers  # an initializer, not a DequantizeLinear output
    stem = convs["/model.0/conv/Conv"]  # reads the image: kept in float by the default head+stem level
    assert stem.name in excluded and stem.input[1] not in producers
    body_conv = convs["/model.1/conv/Conv"]
    assert producers[body_conv.input[1]].op_type == "DequantizeLinear"
    assert v.export["int8"]["quantized_ops"] == ["Conv"]
    assert v.export["int8"]["calibration"]["count"] == 16


def test_metadata_round_trip(exported: dict, tiny_model) -> None:
    source = exported["source"]
    record = tiny_model.record
    for v in exported["variants"]:
        raw = ModelMeta.from_onnx(v.path)
        session_meta = ort.InferenceSession(str(v.path), providers=["CPUExecutionProvider"]).get_modelmeta()
        keys = session_meta.custom_metadata_map
        assert set(REQUIRED_KEYS) <= set(keys)
        assert {PREFIX + k for k in SKYINSPECT_KEYS} <= set(keys), v.path.name
        assert raw.names == source.names
        assert raw.domain is taxonomy.Domain.PV_RGB
        assert raw.taxonomy_version == taxonomy.TAXONOMY_VERSION
        assert raw.input_kind == "rgb" and raw.normalisation == "0-1"
        assert raw.thermal_window_c == (0.0, 100.0)
        assert raw.imgsz == source.imgsz
        assert raw.model_version == f"local-{sha256_file(tiny_model.weights)[:12]}"
        assert raw.dataset_version == record["dataset"]["version"]
        assert raw.metrics["map50"] == pytest.approx(record["metrics"]["map50"])
        export = raw.extra[PREFIX + "export"]
        assert export["precision"] == v.precision and export["dynamic_batch"] == v.dynamic_batch
        assert export["opset"] == DEFAULT_OPSET and export["imgsz"] == list(source.imgsz)
        assert export["source_sha256"] == sha256_file(tiny_model.weights)
        assert export["tools"]["onnxruntime"] == ort.__version__
        if v.precision == "fp16":
            assert "float16" in export["fp16"]["tool"]


def test_export_record_lists_files_with_checksums(exported: dict) -> None:
    result = exported["result"]
    record = json.loads(result.record_path.read_text())
    assert [r["file"] for r in record["variants"]] == [v.path.name for v in result.variants]
    assert len(record["variants"]) == 4
    for row in record["variants"]:
        assert row["sha256"] == sha256_file(result.record_path.parent / row["file"])

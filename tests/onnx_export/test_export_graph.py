"""onnx_export.graph.decompose_softmax on small real graphs (run by onnxruntime), and on the real export."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from onnx_export.graph import decompose_softmax


def softmax_model(shape: list[int], axis: int, opset: int) -> onnx.ModelProto:
    """x → Softmax(axis) → y; also y2 = x + 1 so the rewrite must leave other nodes alone."""
    nodes = [
        helper.make_node("Softmax", ["x"], ["y"], name="/model.9/dfl/Softmax", axis=axis),
        helper.make_node("Add", ["x", "one"], ["y2"], name="add"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, shape),
            helper.make_tensor_value_info("y2", TensorProto.FLOAT, shape),
        ],
        [helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def run(model: onnx.ModelProto, x: np.ndarray) -> list[np.ndarray]:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})


@pytest.mark.parametrize(
    ("shape", "axis", "opset", "rewritten"),
    [
        ([2, 16, 4, 50], 1, 17, True),  # the DFL softmax: rewritten
        ([2, 16, 4, 50], 1, 18, True),  # opset 18: ReduceMax takes its axes as an input
        ([2, 16, 4, 50], -3, 17, True),  # a negative axis that is not the last
        ([2, 16, 4, 50], -1, 17, False),  # last axis: onnxruntime's fast path, left alone
        ([2, 16, 4, 50], 3, 17, False),
        ([2, 16, 4, 50], 1, 12, False),  # before opset 13 Softmax flattens: left alone
    ],
)
def test_decompose_softmax_keeps_values(shape: list[int], axis: int, opset: int, rewritten: bool) -> None:
    model = softmax_model(shape, axis, opset)
    x = np.random.default_rng(0).normal(0, 8, shape).astype(np.float32)
    want = run(model, x)
    names = decompose_softmax(model)
    onnx.checker.check_model(model, full_check=True)
    ops = [n.op_type for n in model.graph.node]
    assert names == (["/model.9/dfl/Softmax"] if rewritten else [])
    assert ("Softmax" in ops) is not rewritten and ops.count("Add") == 1
    if rewritten:  # named under the softmax (INT8's head exclusion matches "/dfl/")
        assert all(n.name.startswith("/model.9/dfl/Softmax/") for n in model.graph.node if n.op_type != "Add")
    got = run(model, x)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(got[1], want[1])


def test_exported_yolo_has_no_softmax_over_a_middle_axis(exported: dict) -> None:
    """The real export (tiny trained model): every precision carries the rewrite and records it."""
    for variant in exported["variants"]:
        model = onnx.load(str(variant.path))
        assert "Softmax" not in [n.op_type for n in model.graph.node if "/dfl/" in n.name], variant.path.name
        assert any(n.name.endswith("/dfl/Softmax/exp") for n in model.graph.node), variant.path.name
        assert "decompose_softmax" in json.dumps(variant.export.get("graph_edits")), variant.path.name

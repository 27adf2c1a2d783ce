"""Small ONNX graph edits the export needs: pin spatial dims, topological order, metadata, head-node selection."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

HEAD_RE = re.compile(r"^/model\.(\d+)/")
EXCLUDE_LEVELS = ("none", "decode", "head", "head+stem")
"""INT8 nodes kept in float: ``none``; ``decode`` = the head's DFL and box/score decode (every non-Conv head node
and the DFL conv); ``head`` = ``decode`` plus the last conv of each box and class branch (``cv2.i.2``,
``cv3.i.2``), whose outputs are the raw logits/distances the decode turns into boxes and scores; ``head+stem`` =
``head`` plus the stem conv that reads the image (3 input channels: tiny, and the most range-sensitive)."""


def pin_spatial_dims(model: Any, imgsz: tuple[int, int], strides: tuple[int, ...] = (8, 16, 32)) -> None:
    """Make a dynamic (batch, 3, height, width) ONNX input static in H and W, keeping the batch dynamic.

    The output's anchor dimension becomes ``sum(h/s * w/s)``; shapes inside are left to the simplifier.
    """
    h, w = imgsz
    dims = model.graph.input[0].type.tensor_type.shape.dim
    for axis, value in ((2, h), (3, w)):
        dims[axis].Clear()
        dims[axis].dim_value = int(value)
    out = model.graph.output[0].type.tensor_type.shape.dim
    if len(out) == 3:
        out[2].Clear()
        out[2].dim_value = int(sum((h // s) * (w // s) for s in strides))


def topological_sort(graph: Any) -> None:
    """Reorder ``graph.node`` so every node comes after the producers of its inputs (as the ONNX spec requires;
    onnxruntime's float16 converter appends its input casts at the end, which OpenCV's importer rejects).

    Raises:
        ValueError: the graph has a cycle or an input nobody produces (the node is named).
    """
    available = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending = list(graph.node)
    ordered = []
    while pending:
        rest = []
        for node in pending:
            if all(name in available for name in node.input):
                ordered.append(node)
                available.update(node.output)
            else:
                rest.append(node)
        if len(rest) == len(pending):
            missing = sorted({i for n in rest for i in n.input if i not in available})[:5]
            raise ValueError(f"graph cannot be ordered: node {rest[0].name!r} waits for {missing}")
        pending = rest
    del graph.node[:]
    graph.node.extend(ordered)


def set_metadata(model: Any, values: Mapping[str, Any]) -> None:
    """Write ``values`` into ``model.metadata_props`` (replacing keys that exist; dicts/lists as JSON)."""
    text = {k: v if isinstance(v, str) else json.dumps(v, sort_keys=True) for k, v in values.items()}
    keep = [(p.key, p.value) for p in model.metadata_props if p.key not in text]
    del model.metadata_props[:]
    for key, value in [*keep, *text.items()]:
        prop = model.metadata_props.add()
        prop.key, prop.value = key, value


def get_metadata(model: Any) -> dict[str, str]:
    return {p.key: p.value for p in model.metadata_props}


def head_index(model: Any) -> int:
    """The module index of the detection head (the highest ``/model.N/`` in node names).

    Raises:
        ValueError: no ultralytics-style node names.
    """
    found = [int(m.group(1)) for n in model.graph.node if (m := HEAD_RE.match(n.name))]
    if not found:
        raise ValueError("no /model.N/ node names: not an ultralytics export")
    return max(found)


def head_nodes_to_exclude(model: Any, level: str) -> list[str]:
    """Names of the nodes INT8 quantization should leave in float for ``level`` (see :data:`EXCLUDE_LEVELS`).

    Raises:
        ValueError: unknown level.
    """
    if level not in EXCLUDE_LEVELS:
        raise ValueError(f"int8 exclude level {level!r}: expected one of {', '.join(EXCLUDE_LEVELS)}")
    if level == "none":
        return []
    prefix = f"/model.{head_index(model)}/"
    stem = []
    if level == "head+stem":
        inputs = {i.name for i in model.graph.input}
        stem = [n.name for n in model.graph.node if n.op_type == "Conv" and n.input[0] in inputs][:1]
    final_conv = re.compile(r"/cv[23]\.\d+/cv[23]\.\d+\.2/Conv$")
    out = []
    for node in model.graph.node:
        if not node.name.startswith(prefix):
            continue
        decode = node.op_type != "Conv" and not re.search(r"/cv[23]\.\d+/", node.name)
        if decode or "/dfl/" in node.name or (level.startswith("head") and final_conv.search(node.name)):
            out.append(node.name)
    return stem + out


def opset_of(model: Any) -> int:
    """The model's default-domain (``ai.onnx``) opset version."""
    return next((int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def decompose_softmax(model: Any) -> list[str]:
    """Rewrite each ``Softmax`` over a non-last axis as ``Exp(x - ReduceMax(x)) / ReduceSum(...)`` along that axis
    → the names of the rewritten nodes (opset ≥ 13; earlier Softmax flattens, and is left alone).

    YOLOv8/11 heads end in a DFL ``Softmax(axis=1)`` over (B, 16, 4, anchors). onnxruntime's CPU kernel handles a
    non-last axis by transposing around a last-axis softmax: on the default pv-thermal model (P2 head, 34 000
    anchors at 640) that one node was 36 % of the model's time, on a YOLO11n at 640 6 % (onnxruntime's profiler).
    The same arithmetic as reductions along the axis took ~3 % (profiled in an FP16 file whose converter had made
    that rewrite); the model ran 1.35× / 1.05× as fast. The new nodes are named under the
    Softmax's own name, so they stay in the head's decode (kept in float by INT8 export).
    """
    import numpy as np
    from onnx import helper, numpy_helper, shape_inference

    opset = opset_of(model)
    if opset < 13:
        return []
    ranks: dict[str, int] = {}
    inferred = shape_inference.infer_shapes(model)
    for vi in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]:
        t = vi.type.tensor_type
        if t.HasField("shape"):
            ranks[vi.name] = len(t.shape.dim)
    done: list[str] = []
    nodes = []
    for node in model.graph.node:
        axis = next((a.i for a in node.attribute if a.name == "axis"), -1)
        rank = ranks.get(node.input[0]) if node.op_type == "Softmax" else None
        if rank is None or axis in (-1, rank - 1):
            nodes.append(node)
            continue
        x, y = node.input[0], node.output[0]
        base = node.name or y
        axes_name = f"{base}/axes"
        model.graph.initializer.append(numpy_helper.from_array(np.array([axis], np.int64), axes_name))
        if opset >= 18:
            rmax = helper.make_node(
                "ReduceMax", [x, axes_name], [f"{base}/max"], name=f"{base}/max", keepdims=1
            )
        else:
            rmax = helper.make_node(
                "ReduceMax", [x], [f"{base}/max"], name=f"{base}/max", axes=[axis], keepdims=1
            )
        nodes += [
            rmax,
            helper.make_node("Sub", [x, f"{base}/max"], [f"{base}/shifted"], name=f"{base}/sub"),
            helper.make_node("Exp", [f"{base}/shifted"], [f"{base}/exp"], name=f"{base}/exp"),
            helper.make_node(
                "ReduceSum", [f"{base}/exp", axes_name], [f"{base}/sum"], name=f"{base}/sum", keepdims=1
            ),
            helper.make_node("Div", [f"{base}/exp", f"{base}/sum"], [y], name=f"{base}/div"),
        ]
        done.append(base)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return done

"""Whole-graph features for the model-level baselines.

``flops`` counts a multiply-add as two (the same count as the generic fallback model,
``nnmeter_tvm.predictors.fallback.node_flops``).  ``mac`` is the memory access cost of the
*unfused* graph, in bytes: for every node, the float32 bytes of its inputs, its outputs and its
weights (the "MAC" of the ShuffleNetV2 paper, which nn-Meter's FLOPs+MAC baseline uses).
The rest (op counts, FLOPs per compute op, parameter count, input size) feed the model-level
XGBoost, a stand-in for the graph-level predictors (BRP-NAS and friends) nn-Meter compared with.
"""
from __future__ import annotations

import math

from nnmeter_tvm.ops import category
from nnmeter_tvm.predictors.fallback import const_shapes, node_flops

FEATURES = (
    "flops", "mac", "params", "act_bytes", "n_nodes",
    "n_conv", "n_dwconv", "n_gconv", "n_gemm", "n_pool", "n_unary", "n_binary", "n_concat",
    "n_movement", "n_other",
    "conv_flops", "dwconv_flops", "gconv_flops", "gemm_flops", "input_hw", "max_channels",
)


def _numel(shape) -> int:
    return int(math.prod(int(d) for d in shape)) if shape else 1


def graph_features(graph) -> dict[str, float]:
    """The :data:`FEATURES` of a :class:`nnmeter_tvm.graph.Graph`, as floats."""
    f = dict.fromkeys(FEATURES, 0.0)
    for node in graph:
        flops = node_flops(node)
        weights = sum(_numel(s) for s in const_shapes(node))
        outputs = sum(_numel(s) for s in node.output_shapes)
        inputs = sum(_numel(s) for s in node.input_shapes)
        f["flops"] += flops
        f["params"] += weights
        f["act_bytes"] += 4.0 * outputs
        f["mac"] += 4.0 * (inputs + outputs + weights)
        f["n_nodes"] += 1
        op, cat = node.op, category(node.op)
        if op in ("conv", "dwconv", "gconv", "gemm"):
            f[f"n_{op}"] += 1
            f[f"{op}_flops"] += flops
        elif op == "concat":
            f["n_concat"] += 1
        elif cat in ("pool", "unary", "binary", "movement"):
            f[f"n_{cat}"] += 1
        else:
            f["n_other"] += 1
        for shape in node.output_shapes:
            if len(shape) == 4:
                f["max_channels"] = max(f["max_channels"], float(shape[1]))
    shape = graph.inputs[0].shape if graph.inputs else ()
    f["input_hw"] = float(shape[2] * shape[3]) if len(shape) == 4 else 0.0
    return {k: float(v) for k, v in f.items()}

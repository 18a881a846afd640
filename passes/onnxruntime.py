"""Predictions beside onnxruntime: ``estimate(session_or_model, predictor)``.

For a live ``onnxruntime.InferenceSession`` and an ``ort-cpu`` predictor, the kernels are the
ones onnxruntime really runs: its optimised graph (read by the ``ort-cpu`` backend's ground truth,
:mod:`nnmeter_tvm.backends.ort_truth`), including the NCHWc reorders it inserts.  Each is priced
by the predictor's cost models, so the per-kernel table lines up with onnxruntime's profiler.
For a model (path or ``ModelProto``), or another predictor, the predictor partitions the graph
with its own fusion rules, as ``nnmeter-tvm predict`` does.

What it does not do: run or time the model; follow a session's non-default options (a session
not at ``ORT_ENABLE_ALL`` on the CPU provider is estimated as the ``ort-cpu`` backend runs it, and
the report says so).
"""
from __future__ import annotations

import os
import tempfile

from ..graph import Graph
from ..kernels.kernel import Kernel
from ..kernels.partition import anchor_of, kernel_type
from ..onnx_import import load_graph, load_model
from ..predictors import load_predictor
from ..report import Report


def estimate(session_or_model, predictor="ort-cpu", input_shapes=None) -> Report:
    """Predicted latency of an ``InferenceSession``'s model, or of an ONNX model, per kernel."""
    pred = load_predictor(predictor)
    if not _is_session(session_or_model):
        return pred.predict(session_or_model, input_shapes)
    session = session_or_model
    proto = load_model(_session_model(session), input_shapes)
    graph = load_graph(proto)
    if pred.backend != "ort-cpu":
        return pred.predict_graph(graph)
    import dataclasses

    from ..backends import get_backend

    truth = get_backend("ort-cpu").truth(proto, timed=False)
    layout = getattr(pred.rules, "layout", None)  # its channel block: the features' context
    report = pred.predict_kernels(graph, session_kernels(graph, truth, proto,
                                                         getattr(layout, "block", 0) or 0))
    notes = _option_notes(session)
    return dataclasses.replace(report, warnings=report.warnings + notes) if notes else report


def session_kernels(graph: Graph, truth, proto, block: int = 0) -> list[Kernel]:
    """The backend's kernels (``KernelTruth``) as core Kernels on ``graph``; ``block``: the
    channel block of its NCHWc layout (as the predictor's rules say)."""
    reorders = _reorders(proto)  # token names differ between sessions: match by order per type
    kernels = []
    for tk in truth.kernels:
        if (tk.inserted or not tk.nodes) and tk.op_type not in reorders:
            # e.g. a BatchNormalization onnxruntime runs as an NchwcConv of its own
            kernels.append(Kernel(name=tk.name, type=f"inserted-{tk.op_type.lower()}", nodes=(),
                                  anchor=None, ops=("unknown",), inserted=True, rule="onnxruntime",
                                  attrs={"ort_op": tk.op_type}))
            continue
        if tk.inserted or not tk.nodes:
            # the truth names reorders by session-specific tokens: take the tensors in the
            # order of our own dump (per direction); the set of shapes, hence the total, is exact
            queue = reorders[tk.op_type]
            tensor, direction = queue.pop(0) if queue else ("", "unknown")
            shape = _tensor_shape(graph, tensor)
            kernels.append(Kernel(name=tk.name, type="reorder", nodes=(), anchor=None,
                                  ops=("reorder",), inserted=True, rule="onnxruntime",
                                  attrs={"tensor": tensor, "shape": shape, "direction": direction,
                                         "dtype": "float32", "block": 0}))
            continue
        members = [graph.node(n) for n in graph_order(graph, tk.nodes)]
        ops = tuple(n.op for n in members)
        # the layout onnxruntime runs it in (the cost models' context): its NCHWc ops
        # are in their own domain
        blocked = "nchwc" in (tk.detail or "")
        attrs = {"ort_op": tk.op_type, "layout": "nchwc" if blocked else "plain"}
        if blocked:
            attrs["block"] = block
        kernels.append(Kernel(name=tk.name, type=kernel_type(ops), nodes=tuple(n.name for n in members),
                              anchor=anchor_of(members).name, ops=ops, rule="onnxruntime",
                              attrs=attrs))
    return kernels


def graph_order(graph: Graph, names) -> list[str]:
    wanted = set(names)
    return [n.name for n in graph if n.name in wanted]


def _is_session(obj) -> bool:
    return type(obj).__name__ == "InferenceSession" and hasattr(obj, "get_session_options")


def _session_model(session):
    """The ModelProto a live session was created from (by path or by bytes)."""
    import onnx

    path = getattr(session, "_model_path", None)
    if path:
        return onnx.load(path)
    data = getattr(session, "_model_bytes", None)
    if data:
        return onnx.ModelProto.FromString(data)
    raise ValueError("estimate: this InferenceSession does not expose its model (no _model_path "
                     "or _model_bytes); pass the model path or ModelProto instead")


def _option_notes(session) -> tuple[str, ...]:
    import onnxruntime as ort

    notes = []
    so = session.get_session_options()
    if so.graph_optimization_level != ort.GraphOptimizationLevel.ORT_ENABLE_ALL:
        notes.append(f"session graph_optimization_level is {so.graph_optimization_level}; the "
                     "kernels are those of ORT_ENABLE_ALL (the ort-cpu backend)")
    providers = session.get_providers()
    if providers != ["CPUExecutionProvider"]:
        notes.append(f"session providers are {providers}; the prediction is for the CPU provider")
    return tuple(notes)


def _reorders(proto) -> dict[str, list[tuple[str, str]]]:
    """op type -> [(plain tensor, direction)] of the reorders onnxruntime inserts, in order."""
    import onnx
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = so.inter_op_num_threads = 1
    so.log_severity_level = 3
    with tempfile.TemporaryDirectory(prefix="nnmeter-ort-") as tmp:
        so.optimized_model_filepath = os.path.join(tmp, "g2.onnx")
        ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])
        g2 = onnx.load(so.optimized_model_filepath).graph
    out = {"ReorderInput": [], "ReorderOutput": []}
    for node in g2.node:
        if node.op_type == "ReorderInput":
            out[node.op_type].append((node.input[0], "to_blocked"))
        elif node.op_type == "ReorderOutput":
            out[node.op_type].append((node.output[0], "from_blocked"))
    return out


def _tensor_shape(graph: Graph, tensor: str) -> tuple:
    for t in graph.inputs + graph.outputs:
        if t.name == tensor:
            return tuple(t.shape)
    for n in graph:
        for name, shape in zip(n.outputs, n.output_shapes):
            if name == tensor:
                return tuple(shape)
    return ()

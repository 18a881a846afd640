"""ONNX -> core Graph: load, check, infer shapes, fold constants into attributes, normalize ops.

The attribute conventions written here are the ones every other part reads (features, partition,
the Relax adapter must produce the same):

- conv / dwconv / gconv / convtranspose: ``kernel_shape`` (kh, kw), ``strides``, ``pads``
  (top, left, bottom, right), ``dilations``, ``group``, ``cin``, ``cout``, ``has_bias``
- maxpool / avgpool: ``kernel_shape``, ``strides``, ``pads``, ``ceil_mode``
- gemm: ``m``, ``k``, ``n``, ``has_bias``;  matmul: ``batch``, ``m``, ``k``, ``n``
- concat / split / softmax: ``axis``; split: ``split`` sizes; transpose: ``perm``
- relu6 / clip: ``min``, ``max``; binary ops: ``broadcast`` (input shapes differ)
- every node: ``const_inputs`` {input index: shape} for folded initializers / Constant outputs
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from .errors import ModelLoadError, ShapeError
from .graph import Graph, Node, TensorInfo

# ONNX op type -> normalized op, for ops whose normalization needs no look at attributes.
_SIMPLE = {
    "BatchNormalization": "bn", "Relu": "relu", "Sigmoid": "sigmoid", "HardSigmoid": "hardsigmoid",
    "HardSwish": "hardswish", "Tanh": "tanh", "LeakyRelu": "leakyrelu", "Gelu": "gelu",
    "Erf": "erf", "Sqrt": "sqrt", "Exp": "exp", "Identity": "identity", "Dropout": "identity",
    "Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div", "Pow": "pow",
    "Concat": "concat", "Split": "split", "Slice": "slice", "Pad": "pad",
    "Reshape": "reshape", "Flatten": "reshape", "Squeeze": "reshape", "Unsqueeze": "reshape",
    "Transpose": "transpose", "Resize": "resize", "Upsample": "resize", "Gather": "gather",
    "MaxPool": "maxpool", "AveragePool": "avgpool", "GlobalAveragePool": "globalavgpool",
    "GlobalMaxPool": "globalmaxpool", "Softmax": "softmax", "ReduceSum": "reducesum",
    "ReduceMax": "reducemax", "LayerNormalization": "layernorm", "ConvTranspose": "convtranspose",
    "Gemm": "gemm",
}
_DTYPES = {1: "float32", 2: "uint8", 3: "int8", 6: "int32", 7: "int64", 9: "bool", 10: "float16",
           11: "float64", 16: "bfloat16"}


def load_model(model, input_shapes: dict | None = None):
    """Read and check an ONNX model; returns a ModelProto whose inputs all have static shapes.

    The caller's ModelProto is never mutated (it is copied only when a shape must be set).
    """
    import onnx

    label = _label(model)
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if not path.is_file():
            raise ModelLoadError(f"{label}: no such file; give the path of an .onnx model")
        try:
            model = onnx.load(str(path))
        except Exception as exc:  # protobuf's DecodeError and friends
            raise ModelLoadError(f"{label}: not a readable ONNX model ({_first_line(exc)}); "
                                 "is the file truncated or of another format?") from None
    elif not isinstance(model, onnx.ModelProto):
        raise ModelLoadError(f"expected a path or onnx.ModelProto, got {type(model).__name__}")
    if not model.graph.node:
        raise ModelLoadError(f"{label}: the graph has no nodes; is this an ONNX model?")
    try:  # checking the weight-free copy: the checker would serialize every weight otherwise
        onnx.checker.check_model(_without_weights(model)[0])
    except Exception as exc:
        raise ModelLoadError(f"{label}: fails the ONNX checker: {_first_line(exc)}; "
                             "re-export the model") from None
    return _with_input_shapes(model, input_shapes or {}, label)


def load_graph(model, input_shapes: dict | None = None) -> Graph:
    """Load an ONNX model (path or ModelProto) into the framework-neutral Graph."""
    label = _label(model)
    return graph_from_proto(load_model(model, input_shapes), label)


def graph_from_proto(proto, label: str | None = None) -> Graph:
    """Graph of a checked ModelProto with static input shapes (see :func:`load_model`)."""
    from onnx import numpy_helper

    label = label or _label(proto)
    light, big = _without_weights(proto)
    try:
        import onnx

        light = onnx.shape_inference.infer_shapes(light, data_prop=True)
    except Exception as exc:
        raise ModelLoadError(f"{label}: ONNX shape inference failed: {_first_line(exc)}") from None
    g = light.graph
    consts = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    # Weights are only looked at for their shape: a zero-strided view stands in for each.
    consts.update({name: np.broadcast_to(np.float32(0), dims) for name, dims in big.items()})
    shapes = _known_shapes(light)
    nodes = []
    for onode, name in zip(g.node, node_names(g)):
        if onode.op_type == "Constant":
            consts[onode.output[0]] = _constant_value(onode)
        else:
            nodes.append(_make_node(onode, name, consts, shapes, label))
    inputs = tuple(TensorInfo(v.name, shapes[v.name], _elem(v)) for v in g.input if v.name not in consts)
    outputs = tuple(TensorInfo(v.name, _shape_of(v.name, shapes, label, "graph output"), _elem(v))
                    for v in g.output)
    return Graph(name=g.name or label, nodes=tuple(nodes), inputs=inputs, outputs=outputs)


def node_names(graph) -> list[str]:
    """The Graph's name of each node of an ONNX GraphProto, in order (None for Constant nodes).

    A node is named ``name or f"{op_type}_{index}"``, made unique with ``_2``, ``_3``...; every
    adapter that maps back to ONNX nodes must use this one function.
    """
    used = set()
    return [None if n.op_type == "Constant" else unique_name(n.name or f"{n.op_type}_{i}", used)
            for i, n in enumerate(graph.node)]


_WEIGHT_ELEMENTS = 64  # initializers larger than this are weights: only their shape matters


def _without_weights(proto):
    """A copy of ``proto`` whose large initializers are typed graph inputs instead.

    Shape inference then never serializes the weights, which made importing a 20 MB model
    cost a second; small initializers (shapes, pads, clip bounds) stay, as inference needs them.
    """
    import onnx
    from onnx import helper

    g = proto.graph
    big = {t.name: tuple(t.dims) for t in g.initializer if np.prod(t.dims) > _WEIGHT_ELEMENTS}
    declared = {v.name for v in g.input}
    graph = helper.make_graph(
        list(g.node), g.name,
        list(g.input) + [helper.make_tensor_value_info(t.name, t.data_type, t.dims)
                         for t in g.initializer if t.name in big and t.name not in declared],
        list(g.output),
        [t for t in g.initializer if t.name not in big],
        value_info=list(g.value_info))
    light = onnx.ModelProto(ir_version=proto.ir_version, graph=graph)
    light.opset_import.extend(proto.opset_import)
    return light, big


def parse_input_shapes(specs) -> dict:
    """``["x=1,3,224,224", ...]`` (the CLI's --input-shape) -> {"x": (1, 3, 224, 224)}."""
    out = {}
    for spec in specs or ():
        name, sep, dims = spec.partition("=")
        try:
            if not sep or not name:
                raise ValueError
            out[name] = tuple(int(d) for d in dims.split(","))
        except ValueError:
            raise ShapeError(f"--input-shape {spec!r}: expected NAME=D1,D2,... "
                             "e.g. input=1,3,224,224") from None
    return out


# ---- model-level helpers --------------------------------------------------------------------

def _label(model) -> str:
    if isinstance(model, (str, os.PathLike)):
        return str(model)
    graph = getattr(model, "graph", None)
    return getattr(graph, "name", "") or "model"


def _first_line(exc) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _with_input_shapes(model, input_shapes: dict, label: str):
    """Fix every graph input to a static shape, or refuse with the --input-shape hint."""
    import onnx

    if input_shapes:  # shapes are set below: never on the caller's model (a full copy)
        model = onnx.ModelProto.FromString(model.SerializeToString())
    init = {t.name for t in model.graph.initializer}
    names = [v.name for v in model.graph.input if v.name not in init]
    for unknown in set(input_shapes) - set(names):
        raise ShapeError(f"{label}: --input-shape names {unknown!r}, but the model's inputs are "
                         f"{', '.join(names)}")
    for v in model.graph.input:
        if v.name in init:
            continue
        dims = v.type.tensor_type.shape.dim
        if v.name in input_shapes:
            given = input_shapes[v.name]
            if len(given) != len(dims):
                raise ShapeError(f"{label}: input {v.name!r} has rank {len(dims)}, --input-shape "
                                 f"gave {len(given)} dims")
            for d, value in zip(dims, given):
                d.Clear()
                d.dim_value = int(value)
        elif any(not d.HasField("dim_value") or d.dim_value <= 0 for d in dims):
            shown = ",".join(str(d.dim_value) if d.HasField("dim_value") else (d.dim_param or "?")
                             for d in dims)
            raise ShapeError(f"{label}: input {v.name!r} has symbolic shape [{shown}]; give it with "
                             f"--input-shape {v.name}=1,3,224,224 (your dims)")
    return model


def _known_shapes(proto) -> dict:
    shapes = {}
    g = proto.graph
    for v in list(g.input) + list(g.value_info) + list(g.output):
        dims = v.type.tensor_type.shape.dim
        if v.type.tensor_type.HasField("shape") and all(d.HasField("dim_value") for d in dims):
            shapes[v.name] = tuple(int(d.dim_value) for d in dims)
    return shapes


def _shape_of(tensor: str, shapes: dict, label: str, where: str):
    if tensor not in shapes:
        raise ShapeError(f"{label}: {where}: shape of tensor {tensor!r} is unknown after ONNX shape "
                         "inference; give static input shapes with --input-shape")
    return shapes[tensor]


def _elem(value_info) -> str:
    return _DTYPES.get(value_info.type.tensor_type.elem_type, "float32")


def unique_name(name: str, used: set) -> str:
    base, n = name, 1
    while name in used:
        n += 1
        name = f"{base}_{n}"
    used.add(name)
    return name


def _constant_value(onode):
    from onnx import helper, numpy_helper

    for a in onode.attribute:
        if a.name == "value":
            return numpy_helper.to_array(a.t)
        return np.asarray(helper.get_attribute_value(a))
    return np.zeros(0, dtype=np.float32)


# ---- node normalization ---------------------------------------------------------------------

def _make_node(onode, name, consts, shapes, label) -> Node:
    from onnx import helper

    where = f"node {name!r} ({onode.op_type})"
    acts = [(i, t) for i, t in enumerate(onode.input) if t and t not in consts]
    const_inputs = {i: tuple(np.shape(consts[t])) for i, t in enumerate(onode.input) if t in consts}
    raw = {a.name: helper.get_attribute_value(a) for a in onode.attribute}
    raw = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in raw.items()}
    in_shapes = tuple(_shape_of(t, shapes, label, where) for _, t in acts)
    outputs = tuple(t for t in onode.output if t)
    out_shapes = tuple(_shape_of(t, shapes, label, where) for t in outputs)
    cvals = {i: consts[t] for i, t in enumerate(onode.input) if t in consts}
    op, attrs = _normalize(onode.op_type, raw, cvals, in_shapes, out_shapes)
    attrs["const_inputs"] = const_inputs
    if op == "unknown":
        attrs["source_attrs"] = {k: v for k, v in raw.items() if isinstance(v, (int, float, str, list))}
    return Node(name=name, op=op, source_op=onode.op_type, inputs=tuple(t for _, t in acts),
                outputs=outputs, input_shapes=in_shapes, output_shapes=out_shapes,
                dtype=_DTYPES.get(1), attrs=attrs)


def _normalize(op_type, raw, cvals, in_shapes, out_shapes):
    """(normalized op, attrs) for one ONNX node."""
    if op_type in ("Conv", "ConvTranspose"):
        return _conv(op_type, raw, cvals, in_shapes, out_shapes)
    if op_type in ("MaxPool", "AveragePool"):
        k = tuple(raw["kernel_shape"])
        strides = tuple(raw.get("strides", [1] * len(k)))
        pads = _pads(raw, in_shapes[0][2:], k, strides, (1,) * len(k))
        return _SIMPLE[op_type], {
            "kernel_shape": k, "strides": strides, "pads": pads,
            "ceil_mode": effective_ceil_mode(raw.get("ceil_mode", 0), in_shapes[0][2:], k, strides, pads),
            "count_include_pad": int(raw.get("count_include_pad", 0))}
    if op_type == "Gemm":
        a = in_shapes[0]
        b = in_shapes[1] if len(in_shapes) > 1 else _const_shape(cvals, 1)
        m, k = (a[1], a[0]) if raw.get("transA", 0) else (a[0], a[1])
        n = b[0] if raw.get("transB", 0) else b[1]
        return "gemm", {"m": m, "k": k, "n": n, "has_bias": 2 in cvals or len(in_shapes) > 2}
    if op_type == "MatMul":
        a = in_shapes[0]
        if 1 in cvals and np.ndim(cvals[1]) == 2:  # activation x weight: a fully connected layer
            return "gemm", {"m": int(np.prod(a[:-1])), "k": a[-1], "n": int(np.shape(cvals[1])[1]),
                            "has_bias": False}
        b = in_shapes[1] if len(in_shapes) > 1 else _const_shape(cvals, 1)
        out = out_shapes[0]
        return "matmul", {"batch": int(np.prod(out[:-2])) if len(out) > 2 else 1,
                          "m": a[-2] if len(a) > 1 else 1, "k": a[-1], "n": b[-1]}
    if op_type == "Clip":
        lo = _scalar(cvals.get(1), raw.get("min", -math.inf))
        hi = _scalar(cvals.get(2), raw.get("max", math.inf))
        return ("relu6" if (lo, hi) == (0.0, 6.0) else "clip"), {"min": lo, "max": hi}
    if op_type == "ReduceMean":
        axes = raw.get("axes") or (list(cvals[1].tolist()) if 1 in cvals else None)
        rank = len(in_shapes[0])
        axes = sorted(a % rank for a in axes) if axes else list(range(rank))
        op = "globalavgpool" if rank == 4 and axes == [2, 3] else "reducemean"
        return op, {"axes": tuple(axes), "keepdims": int(raw.get("keepdims", 1))}
    op = _SIMPLE.get(op_type, "unknown")
    attrs = {}
    if op in ("add", "sub", "mul", "div", "pow"):
        operand_shapes = list(in_shapes) + [s for s in (np.shape(v) for v in cvals.values())]
        attrs["broadcast"] = len(set(operand_shapes)) > 1
    elif op in ("concat", "softmax", "split", "gather"):
        attrs["axis"] = int(raw.get("axis", -1 if op == "softmax" else 0))
        if op == "split":
            attrs["split"] = tuple(int(s[attrs["axis"]]) for s in out_shapes)
    elif op == "transpose":
        attrs["perm"] = tuple(raw.get("perm", reversed(range(len(in_shapes[0])))))
    elif op == "hardsigmoid":
        attrs.update(alpha=float(raw.get("alpha", 0.2)), beta=float(raw.get("beta", 0.5)))
    elif op == "pad":
        attrs["mode"] = raw.get("mode", "constant")
        if 1 in cvals:
            attrs["pads"] = tuple(int(p) for p in np.ravel(cvals[1]))
    elif op == "slice":
        for idx, key in ((1, "starts"), (2, "ends"), (3, "axes"), (4, "steps")):
            if idx in cvals:
                attrs[key] = tuple(int(v) for v in np.ravel(cvals[idx]))
    elif op == "resize":
        attrs["mode"] = raw.get("mode", "nearest")
    elif op == "bn":
        attrs["epsilon"] = float(raw.get("epsilon", 1e-5))
    elif op in ("reducesum", "reducemax"):
        axes = raw.get("axes") or (list(np.ravel(cvals[1]).tolist()) if 1 in cvals else None)
        rank = len(in_shapes[0])
        attrs["axes"] = tuple(sorted(a % rank for a in axes)) if axes else tuple(range(rank))
        attrs["keepdims"] = int(raw.get("keepdims", 1))
    elif op == "layernorm":
        attrs["axis"] = int(raw.get("axis", -1)) % len(in_shapes[0])
        attrs["epsilon"] = float(raw.get("epsilon", 1e-5))
    return op, attrs


def _conv(op_type, raw, cvals, in_shapes, out_shapes):
    w = _const_shape(cvals, 1) if 1 in cvals else in_shapes[1]
    group = int(raw.get("group", 1))
    k = tuple(raw.get("kernel_shape", w[2:]))
    strides = tuple(raw.get("strides", [1] * len(k)))
    dilations = tuple(raw.get("dilations", [1] * len(k)))
    cin = in_shapes[0][1]
    cout = out_shapes[0][1]
    if op_type == "ConvTranspose":
        op = "convtranspose"
    elif group == 1:
        op = "conv"
    elif group == cin == cout:
        op = "dwconv"
    else:
        op = "gconv"
    attrs = {"kernel_shape": k, "strides": strides, "dilations": dilations,
             "pads": _pads(raw, in_shapes[0][2:], k, strides, dilations),
             "group": group, "cin": cin, "cout": cout,
             "has_bias": 2 in cvals or len(in_shapes) > 2}
    if op == "convtranspose":
        attrs["output_padding"] = tuple(raw.get("output_padding", [0] * len(k)))
    return op, attrs


def _pads(raw, spatial, k, strides, dilations) -> tuple:
    """Explicit (top, left, bottom, right) padding, resolving auto_pad."""
    auto = raw.get("auto_pad", "NOTSET")
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        begin, end = [], []
        for size, kk, s, d in zip(spatial, k, strides, dilations):
            out = -(-size // s)
            total = max(0, (out - 1) * s + (kk - 1) * d + 1 - size)
            small, big = total // 2, total - total // 2
            begin.append(small if auto == "SAME_UPPER" else big)
            end.append(big if auto == "SAME_UPPER" else small)
        return tuple(begin + end)
    return tuple(raw.get("pads", [0] * (2 * len(k))))


def effective_ceil_mode(ceil_mode, spatial, k, strides, pads) -> int:
    """1 only when ceil_mode changes the output shape; otherwise it is no part of the config."""
    if not int(ceil_mode):
        return 0
    n = len(k)
    return int(any((size + pads[i] + pads[i + n] - k[i]) % strides[i]
                   for i, size in enumerate(spatial)))


def _const_shape(cvals, index):
    return tuple(np.shape(cvals[index]))


def _scalar(value, default) -> float:
    if value is None or np.size(value) == 0:
        return float(default)
    return float(np.ravel(value)[0])

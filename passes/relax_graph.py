"""Relax IRModule -> core Graph, with a record of where each graph node lives in the module.

Works on the main function's dataflow at any point before ``FuseTIR``: high-level ops
(``R.nn.conv2d``), ``R.call_tir`` to legalized or ``emit_te`` PrimFuncs, and calls to the
``Primitive`` functions ``FuseOps`` creates (their bodies are read in place).  It reads the
module and never changes it.

The graph must be the one :func:`nnmeter_tvm.onnx_import.load_graph` builds for the ONNX model
the module came from, so that both predict the same.  Three steps get there:

1. every binding becomes a *raw op* (``conv2d``, ``add``, ``maximum``...), with operands that
   are activations or constants.  Bindings computed from constants only (the frontend's
   ``reshape(bias)``, ``where(isnan(0.0), -inf, 0.0)``) are constants, not ops;
2. each raw op is normalized to the op vocabulary (:mod:`nnmeter_tvm.ops`) with the ONNX
   attribute conventions; attributes come from the op's attrs, or from the PrimFunc's TIR
   (:mod:`.tir_ops`) after ``LegalizeOps``;
3. the ONNX frontend's expansions (HardSwish, Clip, Gemm, conv bias...) are folded back into the
   ONNX op they came from (:mod:`.relax_ops`).

What it does not recover: ONNX ``Identity`` (the frontend drops it; ``onnx_import`` keeps it as
an ``identity`` node), ``Flatten`` vs ``Reshape`` (both ``reshape``; Relax always has a shape
operand), ``MatMul + Add`` vs ``Gemm`` (both a biased gemm), and pooling ``ceil_mode`` with
asymmetric explicit pads, or on a stride-1 pool where it changes nothing, after ``LegalizeOps``
(the TIR is identical either way).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import tvm
from tvm import relax

from ..errors import ShapeError
from ..graph import Graph, Node, TensorInfo
from . import tir_ops
from .relax_ops import _C, _T, _Raw, const_inputs, fold_patterns, normalize

# --------------------------------------------------------------------------- the result record


@dataclass(frozen=True)
class Placement:
    """Where one graph node lives: the Relax bindings it covers and their function."""

    bindings: tuple[str, ...]
    function: str | None  # the Primitive function (after FuseOps), None for main


@dataclass(frozen=True)
class TvmKernel:
    """One kernel as TVM runs it after FuseOps: a call to a fused function or a lone call_tir."""

    name: str  # fused function name, or the PrimFunc name of a lone call_tir / op
    var: str  # the binding in main that calls it
    kind: str  # "fused" | "call_tir" | "op"
    nodes: tuple[str, ...]


@dataclass(frozen=True)
class Conversion:
    graph: Graph
    placement: dict = field(default_factory=dict)  # node name -> Placement
    tvm_kernels: tuple = ()  # TvmKernel in main's order
    fused: bool = False  # main calls Primitive functions (FuseOps has run)


_RELAX_KIND = {
    "nn.conv2d": "conv2d", "nn.conv2d_transpose": "conv2d_transpose", "matmul": "matmul",
    "nn.max_pool2d": "max_pool2d", "nn.avg_pool2d": "avg_pool2d",
    "nn.adaptive_avg_pool2d": "adaptive_avg_pool2d", "mean": "mean", "max": "max", "sum": "sum",
    "nn.batch_norm": "batch_norm", "nn.relu": "relu", "sigmoid": "sigmoid", "tanh": "tanh",
    "exp": "exp", "sqrt": "sqrt", "erf": "erf", "nn.gelu": "gelu", "nn.gelu_tanh": "gelu",
    "nn.leakyrelu": "leaky_relu", "nn.dropout": "dropout", "clip": "clip",
    "add": "add", "subtract": "subtract", "multiply": "multiply", "divide": "divide",
    "power": "power", "maximum": "maximum", "minimum": "minimum",
    "concat": "concatenate", "split": "split", "strided_slice": "strided_slice", "take": "take",
    "nn.pad": "pad", "reshape": "reshape", "expand_dims": "expand_dims", "squeeze": "squeeze",
    "flatten": "reshape", "permute_dims": "transpose", "image.resize2d": "resize2d",
    "nn.softmax": "softmax", "nn.layer_norm": "layer_norm",
}
# raw kind -> normalized op, for kinds that need no attributes
_CONST_EVAL = {  # numpy for the constant-only bindings the ONNX frontend emits
    "isnan": lambda a, c: np.isnan(a[0]), "where": lambda a, c: np.where(a[0], a[1], a[2]),
    "add": lambda a, c: a[0] + a[1], "subtract": lambda a, c: a[0] - a[1],
    "multiply": lambda a, c: a[0] * a[1], "divide": lambda a, c: a[0] / a[1],
    "negative": lambda a, c: -a[0], "astype": lambda a, c: a[0],
    "reshape": lambda a, c: np.reshape(a[0], _shape(c.ty)),
    "transpose": lambda a, c: np.reshape(a[0], _shape(c.ty)) if np.size(a[0]) == 1 else None,
}
_SMALL = 4096  # constants up to this many elements keep their value


def relax_to_graph(mod: tvm.IRModule, func_name: str = "main") -> Conversion:
    """Convert ``mod[func_name]``'s dataflow into the core Graph (see the module docstring)."""
    if func_name not in [gv.name_hint for gv in mod.get_global_vars()]:
        raise ShapeError(f"IRModule has no function {func_name!r}; NNMeterEstimate reads the "
                         "entry function of a Relax module (tvm.relax.frontend.onnx.from_onnx "
                         "names it 'main')")
    func = mod[func_name]
    if not isinstance(func, relax.Function):
        raise ShapeError(f"IRModule function {func_name!r} is a {type(func).__name__}, "
                         "expected a relax.Function")
    return _Converter(mod, func_name).run(func)


class _Converter:
    def __init__(self, mod, name):
        self.mod, self.name = mod, name
        self.env = {}  # relax Var -> _T | _C | tuple
        self.raws: list[_Raw] = []
        self.used = set()
        self.tops = []  # ((position, name) of a main binding, kind, callee name)
        self.fused = False

    # ---- walking Relax --------------------------------------------------------------------
    def run(self, func) -> Conversion:
        n_in = func.attrs.get("num_input") if func.attrs is not None and "num_input" in func.attrs else None
        n_in = len(func.params) if n_in is None else int(n_in)
        inputs = []
        for i, p in enumerate(func.params):
            if i < n_in:
                t = _T(self._unique(p.name), _shape(p.ty, p.name), _dtype(p.ty))
                inputs.append(t)
                self.env[p] = t
            else:  # keep_params_in_input=True: weights are parameters
                self.env[p] = _C(_shape(p.ty, p.name))
        self._walk(func.body, site=None)
        outputs = [v for v in _flatten(self._val(func.body.body)) if isinstance(v, _T)]
        return _assemble(self, inputs, outputs)

    def _walk(self, seq, site, top=None):
        for block in seq.blocks:
            for b in block.bindings:
                # main's bindings are told apart by position: two may print the same name
                self._bind(b.var, b.value, site, top or (len(self.tops) + len(self.raws), b.var.name))

    def _val(self, expr):
        if isinstance(expr, relax.Var):
            return self.env[expr]
        if isinstance(expr, tvm.ir.expr.GenericConst):
            shape = tuple(int(d) for d in expr.value.shape)
            value = expr.value.numpy() if int(np.prod(shape)) <= _SMALL else None
            return _C(shape, value)
        if isinstance(expr, relax.Tuple):
            return tuple(self._val(f) for f in expr.fields)
        if isinstance(expr, relax.ShapeExpr):
            return _C((len(expr.values),), np.array([int(v) for v in expr.values]))
        if isinstance(expr, relax.TupleGetItem):
            return self._val(expr.tuple_value)[expr.index]
        if isinstance(expr, (tvm.tirx.IntImm, tvm.tirx.FloatImm)):
            return _C((), np.array(expr.value))
        if isinstance(expr, relax.Call):
            raise AssertionError("calls are bound to vars in normal form")
        return _C(())  # strings, prim values, anything else: a non-tensor constant

    def _bind(self, var, value, site, top):
        if not isinstance(value, relax.Call):
            self.env[var] = self._val(value)
            return
        op = value.op
        if isinstance(op, tvm.ir.GlobalVar):
            callee = self.mod[op]
            if isinstance(callee, relax.Function) and _is_primitive(callee):
                self._inline(var, value, callee, op.name_hint, top)
                return
            kind, source, attrs, operands = "unknown", f"call:{op.name_hint}", None, list(value.args)
        elif op.name in ("relax.call_tir", "relax.call_tir_inplace"):
            gv = value.args[0]
            kind, source = tir_ops.op_name(gv.name_hint), f"call_tir:{gv.name_hint}"
            attrs, operands = self.mod[gv], list(value.args[1].fields)
        else:
            name = op.name.removeprefix("relax.")
            kind, source, attrs = _RELAX_KIND.get(name, name), op.name, value.attrs
            operands = list(value.args)
        vals = list(_flatten([self._val(a) for a in operands]))  # concat takes a tuple
        if not any(isinstance(v, _T) for v in vals):  # computed from constants only
            self.env[var] = _fold(kind, vals, value)
            return
        outs = self._outputs(var, value.ty)
        self.raws.append(_Raw(kind, source, outs[0].name if len(outs) == 1 else var.name,
                              var.name, vals, outs, attrs, site, top))
        self.env[var] = outs[0] if isinstance(value.ty, relax.TensorType) else tuple(outs)
        if site is None:
            self.tops.append((top, "call_tir" if source.startswith("call_tir") else "op",
                              source.split(":")[-1]))

    def _inline(self, var, call, callee, name, top):
        self.fused = True
        for p, a in zip(callee.params, call.args):
            self.env[p] = self._val(a)
        self._walk(callee.body, site=name, top=top)
        self.env[var] = self._val(callee.body.body)
        self.tops.append((top, "fused", name))

    def _outputs(self, var, ty):
        if isinstance(ty, relax.TupleType):
            base = self._unique(var.name)
            return [_T(f"{base}:{i}", _shape(f, var.name), _dtype(f)) for i, f in enumerate(ty.fields)]
        return [_T(self._unique(var.name), _shape(ty, var.name), _dtype(ty))]

    def _unique(self, name):
        base, n = name, 1
        while name in self.used:
            n += 1
            name = f"{base}_{n}"
        self.used.add(name)
        return name


def _is_primitive(func) -> bool:
    return func.attrs is not None and "Primitive" in func.attrs and bool(func.attrs["Primitive"])


def _shape(ty, what="tensor") -> tuple:
    if not isinstance(ty, relax.TensorType) or ty.shape is None:
        raise ShapeError(f"Relax value {what!r} has no static tensor shape ({ty}); NNMeterEstimate "
                         "needs static shapes: give the frontend static input shapes")
    try:
        return tuple(int(d) for d in ty.shape)
    except (TypeError, ValueError):
        raise ShapeError(f"Relax value {what!r} has a symbolic shape {ty}; NNMeterEstimate needs "
                         "static shapes: give the frontend static input shapes") from None


def _dtype(ty) -> str:
    return str(getattr(ty, "dtype", "float32"))


def _flatten(v):
    if isinstance(v, (tuple, list)):
        for x in v:
            yield from _flatten(x)
    else:
        yield v


def _fold(kind, vals, call):
    """The constant a constant-only binding produces (value kept when cheap to compute)."""
    ty = call.ty
    if isinstance(ty, relax.TupleType):
        return tuple(_C(_shape(f)) for f in ty.fields)
    shape = _shape(ty) if isinstance(ty, relax.TensorType) and ty.shape is not None else ()
    args = [v.value if isinstance(v, _C) else None for v in vals]
    value = None
    if kind in _CONST_EVAL and all(a is not None for a in args) and int(np.prod(shape)) <= _SMALL:
        try:
            value = _CONST_EVAL[kind](args, call)
        except (ValueError, TypeError):
            value = None
    return _C(shape, value)


def _assemble(conv: _Converter, inputs, outputs) -> Conversion:
    out_names = {t.name for t in outputs}
    specs = fold_patterns([normalize(r) for r in conv.raws], out_names)
    nodes, placement = [], {}
    for s in specs:
        # bn: batch_norm's running mean and var outputs are not tensors of the ONNX graph
        outs = s.outputs[:1] if s.op == "bn" else s.outputs
        acts = [v for v in s.operands if isinstance(v, _T)]
        attrs = dict(s.attrs)
        attrs["const_inputs"] = const_inputs(s)
        name = outs[0].name
        nodes.append(Node(name=name, op=s.op, source_op=s.raw.source, inputs=tuple(v.name for v in acts),
                          outputs=tuple(o.name for o in outs),
                          input_shapes=tuple(v.shape for v in acts),
                          output_shapes=tuple(o.shape for o in outs), dtype=outs[0].dtype, attrs=attrs))
        placement[name] = Placement(tuple(r.binding for r in s.raws), s.raw.site)
    graph = Graph(name=conv.name, nodes=tuple(nodes),
                  inputs=tuple(TensorInfo(t.name, t.shape, t.dtype) for t in inputs),
                  outputs=tuple(TensorInfo(t.name, t.shape, t.dtype) for t in outputs))
    by_top = {}
    for s, n in zip(specs, nodes):
        by_top.setdefault(s.raw.top, []).append(n.name)
    kernels = tuple(TvmKernel(name, top[1], kind, tuple(by_top[top]))
                    for top, kind, name in conv.tops if by_top.get(top))
    return Conversion(graph, placement, kernels, conv.fused)
